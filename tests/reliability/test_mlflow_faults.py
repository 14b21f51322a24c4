"""MLflow faults around the client itself, interrupted pretraining runs and copied workspaces (issue 17 items 8, 9,
16): a locked SQLite store or a bad tracking URI when the client is created, SIGTERM / SIGINT / SIGKILL during
`nar pretrain`, a workspace copied with its mlflow.db. Real SQLite stores, the real command line (in this process
where a traceback is what is tested, in a subprocess for signals), real signals. The signal tests train for real:
run them with ``pytest -m slow tests/reliability/test_mlflow_faults.py``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .helpers import NAR, env, files, nar, one_line_error, tiny, write_params, write_pretrained

# --------------------------------------------------------------------------- a locked store, a bad URI (item 8)

HOLD_LOCK = (
    "import sqlite3, sys, time\n"
    "con = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)\n"
    "con.execute('BEGIN EXCLUSIVE')\n"  # no other connection may read or write until it ends
    "print('held', flush=True)\n"
    "time.sleep(float(sys.argv[2]))\n"
)


@pytest.fixture(scope="module")
def template_db(tmp_path_factory) -> Path:
    """An MLflow SQLite database with its tables (creating them costs seconds: once)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    uri = f"sqlite:///{path}"
    MlflowClient(tracking_uri=uri, registry_uri=uri).search_experiments()
    return path


@pytest.fixture
def store(tmp_path, template_db) -> Path:
    """A fresh copy of the template store (a new path: no MLflow store cached for it in this process)."""
    db = tmp_path / "store" / "mlflow.db"
    db.parent.mkdir()
    shutil.copy(template_db, db)
    return db


@contextmanager
def locked(db: Path, seconds: float) -> Iterator[subprocess.Popen]:
    """Another process holds an exclusive lock on ``db`` for ``seconds`` (stopped by its pid at the end)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(db), str(seconds)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.mark.fault(
    category="registry",
    fault="the SQLite store locked by another process for the whole run of `nar registry list` and `nar register` "
    "(the client's creation already opens the database)",
    expected="bounded retries, then one line naming the URI, the retries and the lock; no traceback, nothing "
    "registered",
    inputs=2,
    lossless=True,
)
def test_a_locked_store_is_retried_then_one_line(tmp_path, store, monkeypatch, capsys):
    root = tmp_path / "ws"
    write_pretrained(root)
    uri = f"sqlite:///{store}"
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("NAR_REGISTRY_RETRIES", "2")
    monkeypatch.setenv("NAR_REGISTRY_RETRY_DELAY", "0.05")
    with locked(store, 120):
        start = time.monotonic()
        message = cli_error(["registry", "list"], capsys)
        assert uri in message and "failed 2 times" in message and "locked" in message, message
        assert time.monotonic() - start < 60
        monkeypatch.setenv("NAR_REGISTRY_RETRIES", "1")
        message = cli_error(["register", "--pretrained", "models/pretrain/tiny"], capsys)
        assert uri in message and "locked" in message, message
    assert not (root / "models" / "registered.json").exists()
    from mlflow import MlflowClient

    assert MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models() == []


def cli_error(argv: list[str], capsys) -> str:
    """``nar <argv>`` in this process: exit 2 and one ``nar <command>: error:`` line, nothing raised."""
    from nar.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith(f"nar {argv[0]}: error: ")]
    assert len(errors) == 1, err[-3000:]
    return errors[0].removeprefix(f"nar {argv[0]}: error: ")


@pytest.mark.fault(
    category="registry",
    fault="the SQLite store locked for 8 s while the registry (list_versions) and pretrain's tracking "
    "(configure_mlflow) create their clients",
    expected="the creation is retried (a warning per retry) and both succeed once the lock is gone",
    inputs=2,
)
def test_a_store_locked_for_a_while_is_waited_for(tmp_path, template_db, monkeypatch, caplog):
    from nar import registry
    from nar.tracking import configure_mlflow

    monkeypatch.setenv("NAR_REGISTRY_RETRIES", "5")
    monkeypatch.setenv("NAR_REGISTRY_RETRY_DELAY", "0.5")
    for what in ("registry", "tracking"):
        db = tmp_path / what / "mlflow.db"
        db.parent.mkdir()
        shutil.copy(template_db, db)
        uri = f"sqlite:///{db}"
        caplog.clear()
        with locked(db, 8):
            if what == "registry":
                assert registry.list_versions(tracking=uri) == []
            else:
                monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
                configure_mlflow(db.parent)
        retried = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
        assert retried and "connecting" in retried[0] and "locked" in retried[0], retried


@pytest.mark.fault(
    category="registry",
    fault="MLFLOW_TRACKING_URI an unsupported scheme (foo://bar) for `nar registry list`, `registry verify`, "
    "`register` and `pretrain`, or a SQLite URI naming a directory",
    expected="one line naming the URI and what to fix, at once; no traceback (was: a 50-line MlflowException "
    "traceback; for the directory, 100 s of MLflow's own engine retries first)",
    inputs=5,
    lossless=True,
)
def test_a_bad_tracking_uri_is_one_line(tmp_path, monkeypatch, capsys):
    from nar.cli import main

    root = tmp_path / "ws"
    root.mkdir()
    write_params(root, tiny())
    write_pretrained(root)
    monkeypatch.chdir(root)
    assert main(["generate", "--algorithm", "bellman_ford", "--no-progress"]) == 0
    before = files(root)
    cases = [
        ("foo://bar", ["registry", "list"]),
        ("foo://bar", ["registry", "verify", "@champion"]),
        ("foo://bar", ["register", "--pretrained", "models/pretrain/tiny"]),
        ("foo://bar", ["pretrain", "--run", "tiny", "--no-progress"]),
        (f"sqlite:///{root}", ["registry", "list"]),  # a directory: never opens (MLflow alone retried 100 s)
    ]
    for uri, argv in cases:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        start = time.monotonic()
        capsys.readouterr()
        message = cli_error(argv, capsys)
        assert uri in message and "MLFLOW_TRACKING_URI" in message, (argv, message)
        assert time.monotonic() - start < 30, argv
    new = set(files(root)) - set(before)
    assert all(f.startswith("checkpoints/") for f in new), new  # nothing but pretrain's resumable state


# --------------------------------------------------------------------------- signals during pretraining (item 9)

LONG = {
    "pretrain.runs.tiny.train.steps": 100000,  # never finishes on its own: every run here is stopped
    "pretrain.runs.tiny.train.eval_every": 5,
    "pretrain.runs.tiny.train.checkpoint_every": 5,
}


@pytest.fixture
def pretrain_ws(tmp_path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    write_params(root, tiny(**LONG))
    assert nar(["generate", "--algorithm", "bellman_ford", "--no-progress"], root).returncode == 0
    return root


def _checkpoint(root: Path) -> tuple[Path | None, int]:
    from nar.training.checkpoint import checkpoint_step

    for last in (root / "checkpoints/pretrain/tiny").glob("*/last.pt"):
        return last.parent, checkpoint_step(last) or 0
    return None, 0


def _as_in_a_terminal() -> None:
    """In the child: Ctrl-C's default action, as a terminal's foreground job has. A shell without job
    control starts background commands (`pytest ... &`) with SIGINT ignored, the child inherits that,
    and `nar pretrain` rightly keeps a signal its parent chose to ignore: the test would hang."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_pretrain(root: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [NAR, "pretrain", "--run", "tiny", "--no-progress"],
        cwd=root,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_as_in_a_terminal,
    )


def _wait_for_step(proc: subprocess.Popen, root: Path, step: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while _checkpoint(root)[1] < step:
        assert proc.poll() is None, f"nar pretrain ended (exit {proc.returncode}): {proc.stderr.read()[-3000:]}"
        assert time.monotonic() < deadline, f"no checkpoint at step {step} in {timeout} s"
        time.sleep(0.1)


def _stop(proc: subprocess.Popen, signum: int) -> str:
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2, (proc.returncode, stderr[-3000:])
    return stderr


def _client(root: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _runs(root: Path) -> list:
    client = _client(root)
    experiment = client.get_experiment_by_name("nar-pretrain")
    return client.search_runs([experiment.experiment_id]) if experiment else []


@pytest.mark.slow  # real training processes: about 25 s
@pytest.mark.fault(
    category="interrupt",
    fault="SIGTERM to `nar pretrain` mid-training, then the command it prints, then SIGINT (Ctrl-C) to that",
    expected="each: exit 2 with one line naming the signal, the kept checkpoint directory, its step and the command "
    "that resumes; the MLflow run KILLED (not RUNNING forever); the resumed run is the same MLflow run, RUNNING "
    "again, continuing from the checkpoint's step (no validation step logged twice)",
    lossless=True,
)
def test_sigterm_and_sigint_mark_the_run_killed_and_say_how_to_resume(pretrain_ws):
    root = pretrain_ws
    proc = _start_pretrain(root)
    _wait_for_step(proc, root, 10)
    stderr = _stop(proc, signal.SIGTERM)
    ckpt_dir, step = _checkpoint(root)
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("nar pretrain: error: ")]
    assert len(errors) == 1, stderr[-3000:]
    line = errors[0]
    assert line.startswith("nar pretrain: error: SIGTERM: ")
    assert str(ckpt_dir.relative_to(root)) in line and f"at step {step} of 100000" in line, line
    assert "`nar pretrain --run tiny`" in line and "marked KILLED" in line, line
    (run,) = _runs(root)
    assert run.info.status == "KILLED" and run.data.tags["interrupted"].startswith("stopped by SIGTERM")
    assert (ckpt_dir / "mlflow_run_id").read_text() == run.info.run_id

    proc = _start_pretrain(root)  # the command the line gave
    _wait_for_step(proc, root, step + 10)
    assert _client(root).get_run(run.info.run_id).info.status == "RUNNING"
    stderr = _stop(proc, signal.SIGINT)
    later = _checkpoint(root)[1]
    expected = f"nar pretrain: error: SIGINT: pretraining 'tiny' stopped; checkpoint {ckpt_dir.relative_to(root)} kept"
    assert f"{expected} at step {later} of 100000" in stderr, stderr[-3000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-3000:]
    (again,) = _runs(root)  # one MLflow run across both processes
    assert again.info.run_id == run.info.run_id and again.info.status == "KILLED"
    history = [m.step for m in _client(root).get_metric_history(run.info.run_id, "val_score")]
    assert len(history) == len(set(history)) and max(history) > step, history  # continued, not restarted


@pytest.mark.slow  # real training processes: about 30 s
@pytest.mark.fault(
    category="interrupt",
    fault="SIGKILL of `nar pretrain` mid-training (its MLflow run cannot be told), then a config change "
    "(a new run key) and a run to the end",
    expected="the new run names the earlier configuration's checkpoint as not resumed; when it finishes the "
    "orphaned checkpoint directory is removed and its MLflow run, left RUNNING by the SIGKILL, is marked KILLED "
    "(tag superseded); the new run FINISHED",
    lossless=True,
)
def test_an_orphaned_checkpoint_of_an_earlier_config_is_cleaned(pretrain_ws):
    root = pretrain_ws
    proc = _start_pretrain(root)
    _wait_for_step(proc, root, 5)
    proc.kill()
    proc.communicate(timeout=30)
    old_dir, _ = _checkpoint(root)
    (old,) = _runs(root)
    assert old.info.status == "RUNNING"  # what a SIGKILL leaves

    write_params(root, tiny(**{**LONG, "pretrain.runs.tiny.train.steps": 10}))
    done = nar(["pretrain", "--run", "tiny", "--no-progress"], root, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{old_dir.relative_to(root)} holds a checkpoint of an earlier configuration" in done.stderr
    assert not old_dir.exists() and not any((root / "checkpoints/pretrain/tiny").iterdir())
    runs = {r.info.run_id: r for r in _runs(root)}
    assert runs[old.info.run_id].info.status == "KILLED" and "superseded" in runs[old.info.run_id].data.tags
    (new,) = [r for r in runs.values() if r.info.run_id != old.info.run_id]
    assert new.info.status == "FINISHED"
    metrics = json.loads((root / "metrics/pretrain/details/tiny.json").read_text())  # per algorithm: a detail
    assert metrics["algorithms"]["bellman_ford"]["ood_score"] == pytest.approx(metrics["ood_score"])  # in %


# --------------------------------------------------------------------------- a copied workspace (item 16)


@pytest.mark.fault(
    category="registry",
    fault="a workspace copied with its mlflow.db (its experiments name the original's absolute mlruns/), then "
    "`nar register` and pretrain's tracking setup in the copy",
    expected="refused before anything is written, as one line naming both directories and how to give the copy "
    "its own store; the original's mlruns/ untouched; after following it the copy registers into its own mlruns/",
    inputs=2,
    lossless=True,
)
def test_a_copied_workspace_does_not_write_into_the_original(tmp_path, monkeypatch):
    from nar.tracking import WorkspaceMismatch, configure_mlflow

    original = tmp_path / "original"
    write_pretrained(original, "tiny")
    assert nar(["register", "--pretrained", "models/pretrain/tiny"], original).returncode == 0
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    configure_mlflow(original)  # the nar-pretrain experiment, as a pretraining run leaves it
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    artifacts_before = files(original / "mlruns")
    db_before = (original / "mlflow.db").read_bytes()

    write_pretrained(copy, "other", seed=1)
    proc = nar(["register", "--pretrained", "models/pretrain/other"], copy)
    message = one_line_error(proc, "register")
    assert "belongs to another workspace" in message and str(original / "mlruns") in message, message
    assert f"mv {copy / 'mlflow.db'}" in message, message
    assert f"MLFLOW_TRACKING_URI=sqlite:///{original / 'mlflow.db'}" in message, message
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # configure_mlflow(original) exported it
    with pytest.raises(WorkspaceMismatch, match="belongs to another workspace"):
        configure_mlflow(copy)
    assert files(original / "mlruns") == artifacts_before and (original / "mlflow.db").read_bytes() == db_before
    assert [str(v.version) for v in _client(copy).search_model_versions("name='nar-processor'")] == ["1"]

    # what the line says: the copy's own store
    os.rename(copy / "mlflow.db", copy / "mlflow.db.copied")
    os.rename(copy / "mlruns", copy / "mlruns.copied")
    proc = nar(["register", "--pretrained", "models/pretrain/other"], copy)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list((copy / "mlruns").glob("models/m-*/artifacts/data/processor/processor.safetensors"))
    assert files(original / "mlruns") == artifacts_before
