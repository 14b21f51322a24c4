"""Errors a user can fix. The CLI prints them as one line, without a traceback."""


class NarError(Exception):
    """Base class of every user-facing error (bad configuration, bad data, bad argument)."""


class UserError(NarError):
    """A bad command-line argument or a missing input."""
