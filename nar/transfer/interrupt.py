"""SIGINT and SIGTERM during a transfer sweep: stop promptly, leave nothing half-written.

Why this exists: with ``transfer.workers > 1`` the runs execute in spawned processes of a
``ProcessPoolExecutor``. SIGTERM's default action killed only the parent, and the workers stayed
blocked on the pool's pipe forever; Ctrl-C raised KeyboardInterrupt in every process of the
terminal's group, and the pool then finished the calls already queued (70-110 s) before the
interpreter could exit. Now, for the duration of a sweep:

* :func:`signals_raise`: the first SIGINT or SIGTERM raises :class:`Interrupted` in the main thread
  (later ones are ignored while the sweep stops its workers: a second Ctrl-C must not cut the cleanup);
* :func:`signals_deferred`: around the writes that must be whole (a finished run's result, the
  stage's outputs) a signal waits until the block ends, then is delivered as if it had just arrived;
* the workers ignore SIGINT (the parent decides and terminates them) and exit on their own when
  the parent is gone, even after a SIGKILL (:func:`exit_with_parent`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A sweep stopped by SIGINT or SIGTERM. A KeyboardInterrupt, so code that lets Ctrl-C through
    lets it through too; ``detail`` says what was kept (filled in by the sweep)."""

    def __init__(self, signum: int, detail: str = "") -> None:
        self.signum = signum
        self.detail = detail
        super().__init__(self.message)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # what a shell reports for a process ended by that signal

    @property
    def message(self) -> str:
        return f"interrupted by {self.name}" + (f"; {self.detail}" if self.detail else "")


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """Inside the block, the first SIGINT or SIGTERM raises :class:`Interrupted`; later ones are
    ignored. Outside the main thread (where Python delivers no signals) this does nothing."""
    if not _in_main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if fired:
            return  # already stopping
        fired.append(signum)
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Inside the block SIGINT and SIGTERM are held; the first one is delivered (to the handler that was
    in place before) when the block ends, so a file being written is finished, never cut."""
    if not _in_main_thread():
        yield
        return
    pending: list[int] = []

    def hold(signum: int, frame: object) -> None:
        pending.append(signum)

    previous = {s: signal.signal(s, hold) for s in SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        if pending:
            signal.raise_signal(pending[0])


def worker_signals(parent_pid: int, poll_seconds: float = 1.0) -> None:
    """In a pool worker: ignore SIGINT (Ctrl-C reaches the whole process group; the parent stops the
    workers itself) and exit when the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent(parent_pid, poll_seconds)


def exit_with_parent(parent_pid: int, poll_seconds: float = 1.0) -> threading.Thread:
    """A daemon thread that ends this process once ``parent_pid`` is no longer its parent (the parent
    died, even by SIGKILL, and the process was re-parented): a worker must not outlive its sweep."""

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            time.sleep(poll_seconds)

    thread = threading.Thread(target=watch, name="nar-exit-with-parent", daemon=True)
    thread.start()
    return thread


def stop_pool(pool: object, grace: float = 5.0) -> None:
    """Cancel what a ProcessPoolExecutor has not started and end its workers now: SIGTERM, then
    SIGKILL after ``grace`` seconds. (``terminate_workers`` exists from Python 3.14; before it the
    processes are only reachable through the executor's ``_processes``.)"""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)  # type: ignore[attr-defined]
    for p in processes:
        with contextlib.suppress(Exception):
            if p.is_alive():
                p.terminate()
    deadline = time.monotonic() + grace
    for p in processes:
        with contextlib.suppress(Exception):
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(1.0)
