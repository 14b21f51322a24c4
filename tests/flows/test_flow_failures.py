"""A failing stage inside the flow: its own error in the flow log, retries only when transient, DVC's lock
released, DVC's cache and the MLflow registry left consistent."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from flowtools import env, flow_logs, sh, task_runs


def model_versions(repo: Path) -> int:
    with sqlite3.connect(repo / "mlflow.db") as db:
        return db.execute("select count(*) from model_versions").fetchone()[0]


def assert_lock_free(repo: Path) -> None:
    from dvc.repo import Repo

    with Repo(str(repo)) as r, r.lock:  # raises LockError if anything still holds it
        pass


@pytest.mark.fault(
    category="orchestration",
    fault="a stage failing with a user error inside the flow",
    expected="stage message in the flow log, not retried, DVC lock released, registry unchanged, rerun restores",
    lossless=True,
)
def test_user_error_fails_its_task_once_with_the_stage_message(first_run):
    from flows.blueprint import blueprint

    repo, _ = first_run
    params_file = repo / "params.yaml"
    original = params_file.read_text()
    registered = (repo / "models/registered.json").read_text()
    versions = model_versions(repo)
    params = yaml.safe_load(original)
    params["register"]["gate_metric"] = "no_such_metric"
    params_file.write_text(yaml.safe_dump(params))
    try:
        state = blueprint(
            root=str(repo), stages=["register"], upstream=False, retries=2, retry_delay_seconds=0, return_state=True
        )
        assert state.is_failed(), state
        run = task_runs(state.state_details.flow_run_id)["register"]
        assert run.state.is_failed() and run.run_count == 1  # a user error is not retried
        logs = flow_logs(state.state_details.flow_run_id)
        message = "nar register: error: metrics have no 'no_such_metric'"
        assert any(m.startswith(message) for m in logs), logs  # the stage's own line, streamed
        failure = [m for m in logs if "stage 'register' failed (exit code" in m and "not retried" in m]
        assert failure and message in failure[0]  # and the task's failure carries it
        assert_lock_free(repo)
        assert model_versions(repo) == versions  # nothing half-registered
    finally:
        params_file.write_text(original)
    # Back on the old params the workspace returns to its state: DVC removed register's output before the
    # failed command, and cannot restore an uncached output (registered.json) from its run cache, so the
    # stage runs again; registering the same weights again is a no-op: same version, same record.
    result = blueprint(root=str(repo), stages=["register"], upstream=False)
    assert result["stages"][0]["status"] in {"ran", "skipped", "restored"}
    assert (repo / "models/registered.json").read_text() == registered
    assert "up to date" in sh(["dvc", "status"], repo).stdout
    assert model_versions(repo) == versions


HOLD_LOCK = """
import sys, time
from dvc.repo import Repo
repo = Repo(".")
repo.lock.lock()
print("locked", flush=True)
time.sleep(float(sys.argv[1]))
repo.lock.unlock()
"""


@pytest.mark.timeout(120)
@pytest.mark.fault(
    category="orchestration",
    fault="DVC lock held by another process when a stage starts",
    expected="transient: retried per policy, then succeeds; lock released",
    lossless=True,
)
def test_lock_held_by_another_dvc_process_is_retried(first_run):
    from flows.blueprint import blueprint

    repo, _ = first_run
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, "10"], cwd=repo, env=env(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        state = blueprint(
            root=str(repo),
            stages=["generate@bfs"],
            upstream=False,
            retries=3,
            retry_delay_seconds=3,
            return_state=True,
        )
    finally:
        holder.wait(timeout=30)
    assert state.is_completed(), state
    run = task_runs(state.state_details.flow_run_id)["generate@bfs"]
    assert run.run_count >= 2  # the first attempt met the lock, a retry went through
    logs = flow_logs(state.state_details.flow_run_id)
    assert any("Unable to acquire lock" in m for m in logs)
    assert any("transient failure, may be retried" in m for m in logs)
    assert "generate@bfs: attempt 2" in logs
    assert_lock_free(repo)
    assert json.loads((repo / "models/registered.json").read_text())["version"] == "1"


HOLD_WORKSPACE = """
import sys, time
from filelock import FileLock
lock = FileLock(".dvc/tmp/nar-blueprint.lock")
lock.acquire()
print("locked", flush=True)
time.sleep(float(sys.argv[1]))
lock.release()
"""


@pytest.mark.fault(
    category="orchestration",
    fault="two flow runs on one workspace",
    expected="the second waits; with a short timeout it fails clearly",
    lossless=True,
)
def test_a_second_run_on_the_same_workspace_waits_then_fails_clearly(first_run):
    from flows.blueprint import blueprint

    repo, _ = first_run
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_WORKSPACE, "6"], cwd=repo, env=env(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        impatient = blueprint(
            root=str(repo), stages=["generate@bfs"], upstream=False, lock_timeout=1, return_state=True
        )
        patient = blueprint(root=str(repo), stages=["generate@bfs"], upstream=False, lock_timeout=60, return_state=True)
    finally:
        holder.wait(timeout=30)
    assert impatient.is_failed()
    with pytest.raises(RuntimeError, match="another nar-blueprint run has held .* for over 1 s"):
        impatient.result()
    logs = flow_logs(impatient.state_details.flow_run_id)
    assert any(m.startswith("another nar-blueprint run is using") for m in logs)
    assert patient.is_completed(), patient  # it waited for the lock, then ran
