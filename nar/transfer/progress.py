"""What a transfer sweep tells the person watching it: the plan up front, every finished step, an ETA.

Why: the old lines counted ``[60/60]`` training runs and then reported ``75 results`` with no word on
the other 15 (the oracle, scored once and reported in each of its size x seed cells), and gave no
ETA. Now the first line says what will run and what the results will be; the count covers every
step (the training runs and the oracle); each line carries the elapsed time and an ETA.

Between finished steps, a heartbeat says the sweep is alive: in a terminal a status line redrawn in
place; in a log (stderr not a TTY) a plain line every ``interval`` seconds, never carriage-return
frames (a progress bar redrawn ten times a second wrote 1.36 MB of them into a log).
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from nar.progress import duration  # shared with every stage's progress (nar/progress.py)
from nar.transfer.variants import TRANSFER_VARIANTS


def _values(xs: Sequence[Any]) -> str:
    return ", ".join(str(x) for x in xs)


def _untrained(untrained: bool | Sequence[str]) -> list[str]:
    """The untrained variants: a list of names, or (the old signature) True for the oracle alone."""
    if isinstance(untrained, bool):
        return ["oracle"] if untrained else []
    return list(untrained)


def plan_line(
    task: str,
    trained: Sequence[str],
    sizes: Sequence[int],
    seeds: Sequence[int],
    workers: int,
    untrained: bool | Sequence[str],
) -> str:
    """What the sweep runs and how many results it gives, counted the way its lines count.

    ``untrained``: the variants scored once without training (``heuristic``, ``oracle``; True means
    the oracle alone), each reported in every size x seed cell."""
    fixed = _untrained(untrained)
    runs = len(trained) * len(sizes) * len(seeds)
    cells = len(sizes) * len(seeds) * len(fixed)
    steps = runs + len(fixed)
    parts = []
    if runs:
        parts.append(
            f"{runs} training runs = {len(trained)} variants ({_values(trained)}) x {len(sizes)} sizes "
            f"({_values(sizes)}) x {len(seeds)} seeds ({_values(seeds)}), {workers} at a time"
        )
    for v in fixed:
        what = TRANSFER_VARIANTS[v].what if v in TRANSFER_VARIANTS else v
        parts.append(f"{what}, scored once and reported in its {len(sizes) * len(seeds)} size x seed cells")
    return f"transfer {task}: {steps} steps: " + "; then ".join(parts) + f"; {runs + cells} results in all"


class SweepProgress:
    """Lines for one sweep on ``stream`` (stderr by default). ``total_runs`` training runs of which
    ``already_done`` were finished by an earlier, interrupted sweep; each of the ``untrained``
    variants (``heuristic``, ``oracle``; or ``oracle=True``): one more step, reported in ``cells``
    size x seed cells (``oracle_cells`` in the old signature).

    Call :meth:`start`, then :meth:`run_done` per finished run, :meth:`untrained_done` (or
    :meth:`oracle_done`) per untrained variant, :meth:`finish`
    (or :meth:`stop` on the way out of an error). Thread-safe: the heartbeat runs in its own thread.
    """

    def __init__(
        self,
        task: str,
        total_runs: int,
        *,
        already_done: int = 0,
        oracle: bool = False,
        oracle_cells: int = 0,
        untrained: Sequence[str] | None = None,
        cells: int | None = None,
        stream: TextIO | None = None,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        enabled: bool = True,
    ) -> None:
        self.task = task
        self.total_runs = total_runs
        self.already_done = already_done
        self.untrained = list(untrained) if untrained is not None else _untrained(oracle)
        self.oracle = bool(self.untrained)
        self.cells = cells if cells is not None else oracle_cells  # size x seed cells per untrained variant
        self.oracle_cells = self.cells
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        # in a terminal the status line is redrawn every second; in a log one plain line a minute at most
        self.interval = interval if interval is not None else (1.0 if self.tty else 60.0)
        self.clock = clock
        self.enabled = enabled
        self.runs_done = already_done
        self.steps_total = total_runs + len(self.untrained)
        self.steps_done = already_done
        self._started = clock()
        self._last_line = self._started
        self._status_shown = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ what is said

    def eta(self) -> float | None:
        """Seconds until the last training run finishes, from this sweep's pace so far (runs finished
        since it started, workers included); None before the first one."""
        done_here = self.runs_done - self.already_done
        left = self.total_runs - self.runs_done
        if left <= 0:
            return 0.0
        if done_here <= 0:
            return None
        return (self.clock() - self._started) / done_here * left

    def timing(self) -> str:
        eta = self.eta()
        elapsed = duration(self.clock() - self._started)
        if self.runs_done >= self.total_runs:
            return f"elapsed {elapsed}"
        return f"elapsed {elapsed}, ETA " + ("after the first run" if eta is None else f"~{duration(eta)}")

    def status(self) -> str:
        running = ""
        if self.runs_done < self.total_runs:
            running = f", {self.total_runs - self.runs_done} training runs to go"
        return f"transfer {self.task}: {self.steps_done}/{self.steps_total} steps done{running}; {self.timing()}"

    # ------------------------------------------------------------------ output

    def _write(self, line: str) -> None:
        """A whole line (clearing the terminal's status line first)."""
        if not self.enabled:
            return
        with self._lock:
            if self._status_shown:
                self.stream.write("\r\x1b[K")
                self._status_shown = False
            self.stream.write(line + "\n")
            self.stream.flush()
            self._last_line = self.clock()

    def _heartbeat(self) -> None:
        with self._lock:
            if self.tty:
                self.stream.write("\r\x1b[K" + self.status())
                self._status_shown = True
            elif self.clock() - self._last_line >= self.interval:
                self.stream.write(self.status() + "\n")
                self._last_line = self.clock()
            else:
                return
            self.stream.flush()

    def start(self, plan: str, resumed_from: str | None = None) -> None:
        """Say what will run (and what an earlier sweep already finished); start the heartbeat."""
        self._write(plan)
        if self.already_done:
            where = f" ({resumed_from})" if resumed_from else ""
            self._write(
                f"transfer {self.task}: resuming: {self.already_done} of {self.total_runs} training runs "
                f"already done{where}"
            )
        if self.enabled and self.runs_done < self.total_runs:
            self._thread = threading.Thread(target=self._beat, name="nar-transfer-progress", daemon=True)
            self._thread.start()

    def _beat(self) -> None:
        # a step of at most a second, so a log's interval is kept to the second and stop() is prompt
        while not self._stop.wait(min(1.0, self.interval)):
            self._heartbeat()

    def run_done(self, name: str, summary: str) -> None:
        with self._lock:
            self.runs_done += 1
            self.steps_done += 1
            step = self.steps_done
        self._write(f"transfer {self.task} [{step}/{self.steps_total}] {name}: {summary}; {self.timing()}")

    def untrained_done(self, variant: str, summary: str) -> None:
        with self._lock:
            self.steps_done += 1
            step = self.steps_done
        self._write(
            f"transfer {self.task} [{step}/{self.steps_total}] {variant}: {summary} (scored once, no training; "
            f"reported in {self.cells} size x seed cells)"
        )

    def oracle_done(self, summary: str) -> None:
        self.untrained_done("oracle", summary)

    def note(self, line: str) -> None:
        self._write(f"transfer {self.task}: {line}")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self._thread = None
        with self._lock:
            if self._status_shown and self.enabled:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self._status_shown = False

    def finish(self, results: int, trained: int, path: str, seconds: float) -> None:
        self.stop()
        what = f"{trained} trained runs"
        if self.untrained:
            what += f" + {results - trained} {' and '.join(self.untrained)} cells"
        self._write(f"transfer {self.task}: {results} results ({what}) in {duration(seconds)} -> {path}")


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def run_summary(metrics: dict[str, Any], steps: int | None = None, seconds: float | None = None) -> str:
    """``test pointer_acc 0.893, path_match 0.410 (812 steps, 95 s)`` from a run's metrics."""
    m = metrics.get("test", {})
    parts = [
        f"test pointer_acc {m['pointer_acc']:.3f}" if _finite(m.get("pointer_acc")) else "test pointer_acc -",
        f"path_match {m['path_match']:.3f}" if _finite(m.get("path_match")) else "path_match -",
    ]
    extra = []
    if steps is not None:
        extra.append(f"{steps} steps")
    if seconds is not None:
        extra.append(f"{seconds:.0f} s")
    return ", ".join(parts) + (f" ({', '.join(extra)})" if extra else "")
