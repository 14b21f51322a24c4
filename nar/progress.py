"""Progress that suits where it goes: a tqdm bar in a terminal, plain periodic lines in a log.

Why: a tqdm bar redrawn ten times a second writes carriage-return frames; in a log (a DVC or Prefect
run's stderr, a CI job, a file) they pile up (1.36 MB for one run) and read as garbage. When the
stream is not a TTY, :func:`progress_bar` gives a :class:`PlainProgress` instead: one line at most every
``interval`` seconds (default 30) with the count, the percentage, the elapsed time and an ETA, and one
line at the end. Shared by every stage (generate, natural, pretrain; transfer's sweep uses
:func:`duration` for its own lines).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

LOG_INTERVAL = 30.0  # seconds between plain lines in a log


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``: short and exact enough for an ETA."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def is_tty(stream: Any) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


class PlainProgress:
    """tqdm's ``update``/``set_postfix``/``close`` (what the stages call), written as plain lines:
    ``desc: 120/600 graph (20 %), 1 min 02 s elapsed, ETA 4 min 10 s, loss=0.1``."""

    def __init__(
        self,
        total: int | None,
        desc: str = "",
        unit: str = "it",
        initial: int = 0,
        disable: bool = False,
        file: TextIO | None = None,
        interval: float = LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.disable, self.file, self.interval, self.clock = disable, file or sys.stderr, interval, clock
        self._initial = initial
        self._start = self._last = clock()
        self._postfix = ""
        self._closed = False

    def line(self) -> str:
        elapsed = self.clock() - self._start
        count = f"{self.n}/{self.total}" if self.total else str(self.n)
        parts = [f"{self.desc}: {count} {self.unit}" if self.desc else f"{count} {self.unit}"]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f} %)"
        parts.append(f"{duration(elapsed)} elapsed")
        done = self.n - self._initial
        if self.total and 0 < done and self.n < self.total:
            parts.append(f"ETA {duration(elapsed / done * (self.total - self.n))}")
        if self._postfix:
            parts.append(self._postfix)
        return ", ".join(parts)

    def _write(self) -> None:
        if not self.disable:
            print(self.line(), file=self.file, flush=True)
        self._last = self.clock()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.clock() - self._last >= self.interval:
            self._write()

    def set_postfix(self, **values: Any) -> None:
        self._postfix = ", ".join(f"{k}={v}" for k, v in sorted(values.items()))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._write()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress_bar(total: int | None, desc: str = "", file: TextIO | None = None, **options: Any) -> Any:
    """A tqdm bar when ``file`` (default stderr) is a terminal, else a :class:`PlainProgress`.

    ``options``: :class:`PlainProgress`'s ``unit``, ``initial``, ``disable`` and ``interval`` (tqdm takes
    all but ``interval``, which is the plain lines' own)."""
    stream = file or sys.stderr
    if is_tty(stream):
        from tqdm import tqdm

        options.pop("interval", None)
        return tqdm(total=total, desc=desc, file=stream, dynamic_ncols=True, **options)
    return PlainProgress(total, desc, file=stream, **options)
