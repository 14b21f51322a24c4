"""SIGKILL in the middle of each stage of the real pipeline (temporary git + DVC repo, tiny profile, local
MLflow), then ``dvc repro`` again: it must finish, reuse what was completed (finished stages, pretraining
checkpoints), and the killed stage must never look complete to DVC or to a later stage. Slow: run with
``pytest -m slow tests/reliability``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from .helpers import DVC, env, make_repo, sh, tiny

pytestmark = pytest.mark.slow

PARAMS = tiny(
    **{
        "generate.splits.train.count": 20000,
        "generate.shard_size": 1000,
        "pretrain.runs.tiny.train.steps": 100,
        "pretrain.runs.tiny.train.eval_every": 50,
        "pretrain.runs.tiny.train.checkpoint_every": 5,
        "transfer.tasks.digit_grid.max_steps": 150,  # long enough to be killed in the middle
        "transfer.tasks.digit_grid.eval_every": 50,
    }
)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return make_repo(tmp_path_factory.mktemp("interrupt") / "repo", PARAMS)


def repro(repo: Path, *targets: str) -> str:
    return sh([DVC, "repro", *targets], repo).stdout


def stage_running(command: str, seconds: float) -> Callable[[psutil.Process], bool]:
    """A kill point: ``nar <command>`` has been running under dvc for ``seconds``."""

    def ready(dvc: psutil.Process) -> bool:
        for p in dvc.children(recursive=True):
            try:
                cmd = p.cmdline()
                if any(c.endswith("/nar") or c == "nar" for c in cmd[:2]) and command in cmd:
                    return time.time() - p.create_time() >= seconds
            except psutil.NoSuchProcess:
                continue
        return False

    return ready


def kill_during(repo: Path, targets: list[str], ready: Callable[..., bool], timeout: float = 300) -> None:
    """Start ``dvc repro targets``; once ``ready()`` (or ``ready(dvc_process)``), SIGKILL dvc and every
    process under it."""
    proc = subprocess.Popen(
        [DVC, "repro", *targets],
        cwd=repo,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    dvc = psutil.Process(proc.pid)
    takes_process = ready.__code__.co_argcount == 1
    try:
        while not (ready(dvc) if takes_process else ready()):
            assert proc.poll() is None, f"dvc repro {targets} ended (exit {proc.returncode}) before the kill point"
            assert time.monotonic() < deadline, "kill point not reached"
            time.sleep(0.05)
    finally:
        try:
            tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        for p in tree:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        proc.wait(timeout=30)
        psutil.wait_procs(tree, timeout=30)


def changed(repo: Path) -> str:
    return sh([DVC, "status"], repo).stdout


def assert_up_to_date(repo: Path) -> None:
    assert "up to date" in changed(repo)


@pytest.mark.fault(
    category="interrupt",
    fault="SIGKILL of `dvc repro generate` while generate@bellman_ford writes its train shards",
    expected="no manifest.json (split not complete-looking), DVC sees the stage changed; next repro skips the "
    "finished generate@bfs, reuses the finished bellman_ford shards and writes the rest; data loads and matches "
    "the params",
    lossless=True,
)
def test_sigkill_during_generate(repo):
    repro(repo, "generate@bfs")
    train = repo / "data/synthetic/bellman_ford/train"
    kill_during(repo, ["generate"], lambda: len(list(train.glob("shard-*"))) >= 2)
    assert not (train / "manifest.json").exists()
    # the shards the partial manifest records (a shard is renamed into place before it is recorded: one
    # written in the instant before the kill is complete but not recorded, and is written again)
    recorded = json.loads((train / "manifest.partial.json").read_text())["shards"]
    finished = {s["file"]: (train / s["file"]).stat().st_mtime_ns for s in recorded}
    assert finished
    assert "generate@bellman_ford:" in changed(repo)
    out = repro(repo, "generate")
    assert "Stage 'generate@bfs' didn't change, skipping" in out, out
    assert "Running stage 'generate@bellman_ford'" in out
    from nar.data.dataset import load_dataset

    for split, count in (("train", 20000), ("val", 8), ("test", 4)):
        assert len(load_dataset(repo / "data/synthetic/bellman_ford" / split)) == count
    assert not list(train.glob("manifest.partial*")) and not list(train.glob(".*.tmp"))
    # the shards the killed run finished were verified and kept, not written again
    assert {name: (train / name).stat().st_mtime_ns for name in finished} == finished


def _last_step(repo: Path) -> int:
    from nar.training import load_checkpoint

    for last in (repo / "checkpoints/pretrain/tiny").glob("*/last.pt"):
        try:
            return int(load_checkpoint(last)["step"])
        except Exception:
            return 0
    return 0


@pytest.mark.fault(
    category="interrupt",
    fault="SIGKILL of `dvc repro pretrain@tiny` after 20+ of 100 training steps",
    expected="no model or metrics written; next repro resumes from the last checkpoint (resumed_from > 0), "
    "finishes all steps and removes the checkpoint",
    lossless=True,
)
def test_sigkill_during_pretrain(repo):
    kill_during(repo, ["pretrain@tiny"], lambda: _last_step(repo) >= 20)
    killed_at = _last_step(repo)
    assert 20 <= killed_at < 100
    assert not (repo / "metrics/pretrain/tiny.json").exists()
    assert not (repo / "models/pretrain/tiny/processor.safetensors").exists()
    assert "pretrain@tiny:" in changed(repo)
    out = repro(repo, "pretrain@tiny")
    assert "Running stage 'pretrain@tiny'" in out and "Running stage 'generate" not in out
    metrics = json.loads((repo / "metrics/pretrain/details/tiny.json").read_text())  # steps: a detail
    run_record = json.loads((repo / "runs/pretrain/tiny.json").read_text())  # git-ignored: not in metrics
    assert metrics["steps"] == 100 and run_record["resumed_from"] >= killed_at, run_record
    assert not list((repo / "checkpoints/pretrain/tiny").glob("*/last.pt"))


def _versions(repo: Path) -> list[tuple[str, str]]:
    import sqlite3

    db = repo / "mlflow.db"
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        try:
            rows = con.execute("select version, status from model_versions").fetchall()
        except sqlite3.OperationalError:
            return []
    return [(str(v), s) for v, s in rows]


@pytest.mark.fault(
    category="registry",
    fault="SIGKILL of `dvc repro register` once MLflow holds the new version (or 2 s into `nar register`)",
    expected="any version left unfinished is 'pending' and refused on load; registered.json absent or whole; "
    "next repro leaves only ready versions, champion loads and verifies",
    lossless=True,
)
def test_sigkill_during_register(repo):
    from nar import registry
    from nar.registry import RegistryError

    in_register = stage_running("register", 2.0)
    kill_during(repo, ["register"], lambda dvc: bool(_versions(repo)) or in_register(dvc))
    record = repo / "models/registered.json"
    if record.exists():
        json.loads(record.read_text())  # written last and atomically: whole, or not there
    cwd = os.getcwd()
    os.chdir(repo)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        for v in registry.list_versions() if (repo / "mlflow.db").exists() else []:
            if v.status != "ready":
                with pytest.raises(RegistryError, match="pending"):
                    registry.load_processor(f"models:/nar-processor/{v.version}")
        repro(repo, "register")
        record_data = json.loads(record.read_text())
        versions = registry.list_versions(record_data["name"])
        assert versions and all(v.status == "ready" for v in versions), [(v.version, v.status) for v in versions]
        loaded = registry.load_registered(f"models:/{record_data['name']}@champion")
        assert loaded.sha256 == record_data["sha256"]
    finally:
        os.chdir(cwd)
    assert_up_to_date_for(repo, "register")


def assert_up_to_date_for(repo: Path, stage: str) -> None:
    status = changed(repo)
    assert not any(line.startswith(f"{stage}:") for line in status.splitlines()), status


@pytest.mark.fault(
    category="interrupt",
    fault="SIGKILL of `dvc repro transfer@digit_grid` 4 s into its training runs",
    expected="no metrics/transfer/digit_grid.json; DVC sees the stage changed; next repro skips natural and "
    "register, reruns transfer to completion",
    lossless=True,
)
def test_sigkill_during_transfer(repo):
    repro(repo, "natural@digit_grid")
    kill_during(repo, ["transfer@digit_grid"], stage_running("transfer", 4.0))
    assert not (repo / "metrics/transfer/digit_grid.json").exists()  # written last, atomically
    assert not (repo / "models/transfer/digit_grid/index.json").exists()
    assert "transfer@digit_grid:" in changed(repo)
    out = repro(repo, "transfer@digit_grid")
    assert "Stage 'natural@digit_grid' didn't change, skipping" in out and "Running stage 'register'" not in out
    sweep = json.loads((repo / "metrics/transfer/digit_grid.json").read_text())
    assert set(sweep["variants"]) >= {"nar_frozen", "oracle"}


@pytest.mark.fault(
    category="interrupt",
    fault="SIGKILL of `dvc repro evaluate` 1 s into `nar evaluate`",
    expected="DVC sees evaluate changed (no report taken as current); next `dvc repro` reruns only evaluate, "
    "then everything is up to date",
    lossless=True,
)
def test_sigkill_during_evaluate(repo):
    repro(repo, "transfer@road")
    kill_during(repo, ["evaluate"], stage_running("evaluate", 1.0))
    assert "evaluate:" in changed(repo)
    out = repro(repo)
    assert "Running stage 'evaluate'" in out
    assert out.count("Running stage") == 1 + out.count("Running stage 'natural@road'"), out
    assert (repo / "reports/blueprint.md").is_file()
    assert set(json.loads((repo / "metrics/evaluate.json").read_text())) == {"digit_grid", "road"}
    assert_up_to_date(repo)
    assert "Running stage" not in repro(repo)
