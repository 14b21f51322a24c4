"""Resource limits: how much memory a step may plan to use, and reading files that could be anything.

Memory
    :func:`memory_limit` is what one command may plan to hold: ``MEMORY_FRACTION`` of the memory the
    machine has available now (``MemAvailable`` in /proc/meminfo, lowered by a cgroup's ``memory.max``),
    or ``NAR_MEMORY_LIMIT`` when set (bytes, with an optional K/M/G/T suffix, e.g. ``8G``; or a percentage
    of the available memory, e.g. ``50%``). :func:`check_memory` refuses an estimate above it with one
    line giving both, before anything is allocated or written. Estimates are upper bounds of the big
    arrays, not of every temporary: the fraction leaves room for the rest.

Files
    Datasets, manifests and registered configs are read by :func:`read_capped`: the path must be a regular
    file (a FIFO would block the reader forever, ``/dev/zero`` never ends, a device can have side effects on
    open), no larger than a cap the caller states; :func:`gunzip_capped` stream-decompresses with a bound, so
    a gzip bomb stops at the bound instead of filling memory. Each refusal is one line naming the file, what
    is wrong and what is allowed.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
import zlib
from pathlib import Path

from nar.errors import NarError, UserError

MEMORY_ENV = "NAR_MEMORY_LIMIT"
# Estimates cover the big arrays; the rest of the process (interpreter, torch, temporaries) needs the remainder.
MEMORY_FRACTION = 0.75
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


class ResourceError(UserError):
    """A step would need more memory (or other resources) than this machine allows."""


def format_bytes(n: float) -> str:
    """``1536`` -> ``1.5 KiB``: sizes in error messages."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def available_memory() -> int | None:
    """Bytes of memory available to this process now, or None where the platform does not say."""
    found: list[int] = []
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    if not found:
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            pass
    # A container's cgroup (v2) limit is what the kernel enforces, whatever the host has free.
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            found.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def memory_limit() -> tuple[int | None, str]:
    """(bytes one command may plan to hold, how that was decided); None: no limit is known."""
    raw = os.environ.get(MEMORY_ENV, "").strip()
    available = available_memory()
    if raw:
        m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?|(\d+(?:\.\d+)?)\s*%", raw, re.IGNORECASE)
        if m is None:
            raise UserError(
                f"{MEMORY_ENV}={raw[:40]!r}: allowed: bytes with an optional K, M, G or T suffix (e.g. 8G), "
                "or a percentage of the available memory (e.g. 50%)"
            )
        if m.group(3) is not None:
            if available is None:
                return None, f"{MEMORY_ENV}={raw}, but this platform does not report available memory"
            share = int(available * float(m.group(3)) / 100)
            return share, f"{MEMORY_ENV}={raw} of {format_bytes(available)} available"
        return int(float(m.group(1)) * _UNITS[m.group(2).upper()]), f"{MEMORY_ENV}={raw}"
    if available is None:
        return None, "available memory unknown"
    return (
        int(available * MEMORY_FRACTION),
        f"{MEMORY_FRACTION:.0%} of the {format_bytes(available)} available; {MEMORY_ENV} overrides",
    )


def check_memory(estimate: int, what: str, error: type[NarError] = ResourceError) -> None:
    """Refuse ``what`` (e.g. ``generate floyd_warshall/test: 32 graphs of 1024 nodes``) when its memory
    ``estimate`` exceeds :func:`memory_limit`, as one line giving the estimate and the limit."""
    limit, why = memory_limit()
    if limit is not None and estimate > limit:
        raise error(
            f"{what} needs about {format_bytes(estimate)} of memory; allowed: at most {format_bytes(limit)} ({why})"
        )


# --------------------------------------------------------------------------- files

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _not_regular(path: Path, mode: int, error: type[NarError]) -> NarError:
    target = ""
    if path.is_symlink():
        target = f" (a symlink to {os.path.realpath(path)})"
    return error(f"{path}: {_kind(mode)}{target}, not a file; allowed: a regular file (or a symlink to one)")


def read_capped(path: str | Path, max_bytes: int, error: type[NarError], what: str = "file") -> bytes:
    """The bytes of ``path``, refused as ``error`` (one line naming the file) unless it is a regular file of at
    most ``max_bytes``. FileNotFoundError passes through (callers say what a missing file means to them)."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode  # follows symlinks: a link to /dev/zero is a character device
    except FileNotFoundError:
        raise  # not an OSError to translate here: the caller knows what a missing file means
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        raise _not_regular(path, mode, error)
    try:
        # O_NONBLOCK: were it swapped for a FIFO since the stat, opening it still returns at once (fstat below
        # then refuses it) instead of waiting for a writer
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise  # as above
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(path, st.st_mode, error)
        if st.st_size > max_bytes:
            raise error(
                f"{path}: {format_bytes(st.st_size)} ({st.st_size} bytes); allowed: a {what} of at most "
                f"{format_bytes(max_bytes)} ({max_bytes} bytes)"
            )
        parts: list[bytes] = []
        size = 0
        want = min(st.st_size, max_bytes) + 1  # read() preallocates what it asks for: the size found, not the cap
        try:
            while chunk := f.read(want):
                parts.append(chunk)
                size += len(chunk)
                if size > max_bytes:  # it grew since the fstat
                    raise error(f"{path}: grew past {max_bytes} bytes while read; allowed: a {what} of at most that")
                want = min(1 << 20, max_bytes + 1 - size)
        except OSError as exc:
            raise error(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return b"".join(parts)


def gunzip_capped(data: bytes, max_bytes: int, where: str, allowed: str, error: type[NarError]) -> bytes:
    """Decompress gzip ``data`` (one or more members), refusing as ``error`` once the output would exceed
    ``max_bytes``: the decompressor never produces more than ``max_bytes + 1`` bytes, so a small file that
    inflates to gigabytes (a gzip bomb) costs at most the bound. ``allowed`` says where the bound comes from."""
    parts: list[bytes] = []
    size = 0
    rest = data
    while True:
        d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip header and trailer, checked
        try:
            out = d.decompress(rest, max_bytes + 1 - size)  # max_length >= 1 here (0 would mean unbounded)
        except zlib.error as exc:
            raise error(f"{where}: not a complete gzip file ({exc})") from None
        size += len(out)
        if size > max_bytes:
            raise error(
                f"{where}: decompresses to more than {format_bytes(max_bytes)} ({max_bytes} bytes); allowed: at most "
                f"{format_bytes(max_bytes)}: {allowed}"
            )
        parts.append(out)
        if not d.eof:  # all input consumed below the bound, yet the member did not end
            raise error(f"{where}: not a complete gzip file (truncated)")
        rest = d.unused_data
        if not rest:
            break
    return parts[0] if len(parts) == 1 else b"".join(parts)


WRITE_ERRNOS = {errno.EROFS, errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG}


def write_problem(exc: OSError) -> str | None:
    """One line for an OSError raised while writing an output (read-only, full, no permission), else None."""
    if exc.errno not in WRITE_ERRNOS:
        return None
    name = exc.filename if exc.filename is not None else "an output file"
    reason = exc.strerror or os.strerror(exc.errno or 0)
    how = {
        errno.ENOSPC: "free space there",
        errno.EDQUOT: "free space there (disk quota)",
        errno.EFBIG: "a file system that allows larger files",
    }.get(exc.errno or 0, "a writable directory")
    return f"cannot write {name}: {reason}; allowed: {how}"


def inside_workspace(path: str | Path, what: str, root: str | Path | None = None) -> Path:
    """Resolve ``path`` (relative to ``root``, default the current directory: the workspace) and refuse it
    if it points outside the workspace."""
    root = Path(root or Path.cwd()).resolve()
    resolved = (root / path).resolve()
    if resolved != root and root not in resolved.parents:
        raise UserError(
            f"{what} {str(path)!r} resolves to {resolved}, outside the workspace {root}; allowed: a path inside it"
        )
    return resolved


def check_writable(directory: str | Path, what: str) -> None:
    """Refuse ``directory`` (created later by the caller) unless a file can be created in it, or in its nearest
    existing parent: one line naming it, before any work. Nothing is left behind."""
    directory = Path(directory)
    probe = directory
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UserError(f"{what} {directory}: {probe} is not a directory; allowed: a writable directory")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".nar-write-check.", dir=probe)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UserError(
            f"{what} {directory}: cannot write in {probe} ({reason}); allowed: a writable directory"
        ) from None
    os.close(fd)
    os.unlink(tmp)
