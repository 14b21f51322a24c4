"""Signals to ``nar transfer`` with two worker processes, through the real command: SIGTERM to the sweep's
process, Ctrl-C to its whole process group (as a terminal sends it), SIGKILL of the sweep's process. The
sweep must stop within seconds, end its workers, say in one line what it kept, and leave nothing
half-written: no outputs, only whole results of the runs that finished (for the next sweep to resume)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml

from .helpers import NAR, env

# 36 short runs on 12-node road graphs: runs finish every second or two, so the signal lands while some
# runs are done, two are in the workers and the rest are queued
TASK = {"width": 8, "batch_size": 4, "max_steps": 400, "eval_every": 100, "patience": 100, "val_examples": 4}
TASK["precision"] = "float32"
STOP_WITHIN = 15.0  # seconds from the signal to the last process gone (was 70-110 s, or never)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A workspace with a tiny road dataset, a saved processor and params for a 2-worker sweep."""
    import torch

    from nar.models.processors import ProcessorConfig, build_processor
    from nar.natural.build import build_natural
    from nar.natural.config import parse_natural_params
    from nar.registry import save_processor

    root = tmp_path_factory.mktemp("transfer-signals")
    splits = {name: {"count": count, "sizes": [12]} for name, count in (("train", 24), ("val", 8), ("test", 8))}
    natural = parse_natural_params({"seed": 3, "shard_size": 64, "road": {"splits": splits}})
    build_natural("road", natural, out_dir=root / "data", progress=False)
    torch.manual_seed(5)
    save_processor(build_processor(ProcessorConfig(kind="mpnn", hidden=16)), root / "processor", name="tiny")
    params = {
        "transfer": {
            "processor": str(root / "processor"),
            "data": "data",
            "variants": ["nar_frozen", "e2e", "oracle"],
            "sizes": [8],
            "seeds": list(range(18)),
            "workers": 2,
            "picture_size": 8,
            "tasks": {"road": TASK},
        }
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


class Sweep:
    """``nar transfer --task road`` in its own session, its stderr collected line by line."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc = subprocess.Popen(
            [NAR, "transfer", "--task", "road", "--no-mlflow"],
            cwd=root,
            env=env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, as a terminal's foreground job has
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def workers(self) -> list[psutil.Process]:
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        found = []
        for p in children:
            try:
                if "resource_tracker" not in " ".join(p.cmdline()):
                    found.append(p)
            except psutil.NoSuchProcess:
                continue
        return found

    def wait_for_finished_runs(self, count: int, timeout: float = 240) -> list[psutil.Process]:
        """Until ``count`` runs have finished (their progress lines) with two workers alive."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"exit {self.proc.returncode} before the signal:\n" + "\n".join(self.lines)
            done = [line for line in self.lines if line.startswith("transfer road [")]
            workers = self.workers()
            if len(done) >= count and len(workers) == 2:
                return workers
            assert time.monotonic() < deadline, "no runs finished:\n" + "\n".join(self.lines)
            time.sleep(0.05)

    def stopped_within(self, processes: list[psutil.Process], seconds: float) -> float:
        """Seconds until the sweep and ``processes`` are all gone (fails the test past ``seconds``)."""
        start = time.monotonic()
        try:
            self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            pytest.fail(f"nar transfer still running {seconds:.0f} s after the signal:\n" + "\n".join(self.lines))
        gone, alive = psutil.wait_procs(processes, timeout=max(0.1, seconds - (time.monotonic() - start)))
        for p in alive:
            p.kill()
        assert not alive, f"workers left running: {alive}"
        self._reader.join(timeout=5)
        return time.monotonic() - start


def assert_nothing_half_written(root: Path, killed: bool = False) -> int:
    """No stage output; the resume store holds only whole results; returns how many. After a SIGKILL a
    ``.tmp`` file being written may remain (the next sweep ignores it), never a cut result."""
    assert not (root / "metrics").exists(), list((root / "metrics").rglob("*"))
    assert not (root / "models").exists(), list((root / "models").rglob("*"))
    if not killed:
        assert not [p for p in root.rglob("*.tmp")], [p for p in root.rglob("*.tmp")]
    kept = list((root / "checkpoints" / "transfer" / "road").glob("*/*.json"))
    for path in kept:
        result = json.loads(path.read_text())  # whole JSON, or the test fails here
        assert result["variant"] in ("nar_frozen", "e2e") and "metrics" in result
    return len(kept)


def one_line(sweep: Sweep, signame: str) -> str:
    """The single ``nar transfer:`` line (no traceback), naming the signal."""
    text = "\n".join(sweep.lines)
    assert "Traceback" not in text, text
    said = [line for line in sweep.lines if line.startswith("nar transfer:")]
    assert len(said) == 1, text
    assert said[0].startswith(f"nar transfer: interrupted by {signame}"), said[0]
    return said[0]


def _reset(root: Path) -> None:
    import shutil

    for name in ("checkpoints", "metrics", "models"):
        shutil.rmtree(root / name, ignore_errors=True)


@pytest.mark.fault(
    category="interrupt",
    fault="SIGTERM to `nar transfer` (workers: 2) after some runs finished, with two in the workers and more queued",
    expected="exit 143 within seconds, the workers ended with it, one line saying how many runs were kept for "
    "resuming; no outputs, only whole results in the resume store",
    lossless=True,
)
def test_sigterm_stops_the_sweep_and_its_workers_within_seconds(workspace):
    _reset(workspace)
    sweep = Sweep(workspace)
    workers = sweep.wait_for_finished_runs(2)
    sweep.proc.send_signal(signal.SIGTERM)  # `kill PID`: the sweep's process only, not its workers
    took = sweep.stopped_within(workers, STOP_WITHIN)
    assert sweep.proc.returncode == 128 + signal.SIGTERM, "\n".join(sweep.lines)
    line = one_line(sweep, "SIGTERM")
    kept = assert_nothing_half_written(workspace)
    assert kept >= 2 and f"{kept} of 36 training runs finished and are kept in" in line, line
    assert "resumes from them" in line
    print(f"stopped in {took:.1f} s; {line}")


@pytest.mark.fault(
    category="interrupt",
    fault="Ctrl-C (SIGINT to the whole process group, as a terminal sends it) during `nar transfer` (workers: 2)",
    expected="exit 130 within seconds (was 70-110 s: the queued runs went on), no worker traceback, one line; "
    "no outputs, only whole results",
    lossless=True,
)
def test_ctrl_c_stops_the_sweep_and_its_workers_within_seconds(workspace):
    _reset(workspace)
    sweep = Sweep(workspace)
    workers = sweep.wait_for_finished_runs(2)
    os.killpg(sweep.proc.pid, signal.SIGINT)
    sweep.stopped_within(workers, STOP_WITHIN)
    assert sweep.proc.returncode == 128 + signal.SIGINT, "\n".join(sweep.lines)
    one_line(sweep, "SIGINT")
    assert assert_nothing_half_written(workspace) >= 2


@pytest.mark.fault(
    category="interrupt",
    fault="SIGKILL of `nar transfer`'s own process (workers: 2): no handler can run",
    expected="the orphaned workers notice the parent is gone and exit within seconds (they used to block on "
    "the pool's pipe forever); no outputs, only whole results",
    lossless=True,
)
def test_workers_exit_when_the_sweep_is_killed(workspace):
    _reset(workspace)
    sweep = Sweep(workspace)
    workers = sweep.wait_for_finished_runs(1)
    sweep.proc.kill()
    sweep.stopped_within(workers, STOP_WITHIN)
    assert assert_nothing_half_written(workspace, killed=True) >= 1
