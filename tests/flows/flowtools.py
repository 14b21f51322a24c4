"""Helpers for the flow tests: a tiny pipeline in a temporary git + DVC repo (the profile and approach of
tests/test_pipeline.py), subprocess environments, and reading runs back from Prefect's API.
(A module of its own: a bare ``conftest`` import could find another directory's conftest.py.)"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

TINY = yaml.safe_load((ROOT / "tests/tiny_params.yaml").read_text())  # shared with tests/test_pipeline.py
GITIGNORE = "mlflow.db\nmlflow.db.lock\nmlruns/\nmlartifacts/\n.prefect/\n*.log\n"


def env() -> dict[str, str]:
    """The environment for subprocesses: this venv first on PATH, the project importable."""
    out = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    out["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return out


def sh(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def git_commit(path: Path, message: str) -> None:
    sh(["git", "add", "-A"], path)
    identity = ["-c", "user.name=nar-tests", "-c", "user.email=tests@nar.invalid"]
    sh(["git", *identity, "commit", "-q", "--allow-empty", "-m", message], path)


def make_repo(path: Path, params: dict | None = None) -> Path:
    """dvc.yaml and a tiny params.yaml in a fresh git + DVC repo with one commit; nar/ is linked so
    stage deps hash the real sources."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dvc.yaml", path)
    (path / "reports").mkdir()
    shutil.copy(ROOT / "reports/transfer_notes.md", path / "reports")  # a dep of evaluate
    (path / "nar").symlink_to(ROOT / "nar", target_is_directory=True)
    (path / "params.yaml").write_text(yaml.safe_dump(params or TINY))
    (path / ".gitignore").write_text(GITIGNORE)
    sh(["git", "init", "-q"], path)
    sh([str(BIN / "dvc"), "init", "-q"], path)
    git_commit(path, "tiny pipeline")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def flow_logs(flow_run_id) -> list[str]:
    """Every log message of a flow run and its tasks (flushed first), oldest first."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), sort=LogSort.TIMESTAMP_ASC
        )
    return [log.message for log in logs]


def task_runs(flow_run_id) -> dict[str, object]:
    """Task runs of a flow run by name."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.name: run for run in runs}


def artifacts(flow_run_id) -> dict[str, object]:
    """Artifacts of a flow run by key."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in found}
