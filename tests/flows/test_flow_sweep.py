"""The sweep on a 2-worker Dask LocalCluster: a tiny grid as parallel DVC experiments, one table."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from flowtools import BIN, ROOT, artifacts, flow_logs, git_commit, make_repo, sh, task_runs

from flows.sweep import expand_grid, parse_grid, split_values


def test_grid_expansion_and_cli_values():
    assert split_values("0,1, 2") == ["0", "1", "2"]
    assert split_values("[4,7],[16],'a,b'") == ["[4,7]", "[16]", "'a,b'"]
    assert parse_grid(["a.b=1,2", "+c=[1,2]"]) == {"a.b": ["1", "2"], "+c": ["[1,2]"]}
    runs = expand_grid({"seed": [0, 1], "sizes": [[4, 7]], "kind": ["mpnn"]}, [["flag=true"]])
    assert runs == [
        ["seed=0", "sizes=[4, 7]", "kind=mpnn"],
        ["seed=1", "sizes=[4, 7]", "kind=mpnn"],
        ["flag=true"],
    ]
    with pytest.raises(ValueError, match="non-empty list"):
        expand_grid({"seed": []})


@pytest.mark.timeout(300)
def test_sweep_runs_experiments_in_parallel_on_dask_and_tabulates(first_run):
    from flows.sweep import dask_runner, sweep

    repo, _ = first_run
    git_commit(repo, "pipeline state")  # experiments start from HEAD: commit dvc.lock, as a user would
    workspace_params = (repo / "params.yaml").read_text()
    runner = dask_runner(n_workers=2)
    assert runner.cluster_kwargs["n_workers"] == 2
    state = sweep.with_options(task_runner=runner)(
        root=str(repo),
        grid={"+pretrain.runs.tiny.train.seed": [1, 2]},
        targets=["pretrain@tiny"],
        name="tiny",
        metrics=["pretrain/*:ood_score"],
        return_state=True,
    )
    assert state.is_completed(), state
    table = pd.read_csv(repo / "sweeps/tiny.csv")
    assert list(table["experiment"]) == ["tiny-001", "tiny-002"]
    assert list(table["status"]) == ["completed", "completed"]
    assert list(table["pretrain.runs.tiny.train.seed"]) == [1, 2]
    assert table["pretrain/tiny:ood_score"].between(0, 100).all()
    assert [c for c in table.columns if ":" in c] == ["pretrain/tiny:ood_score"]

    runs = task_runs(state.state_details.flow_run_id)
    assert set(runs) == {"tiny-001", "tiny-002"} and all(r.state.is_completed() for r in runs.values())
    # the two experiments overlapped in time: they ran side by side, not one after the other
    a, b = runs["tiny-001"], runs["tiny-002"]
    assert a.start_time < b.end_time and b.start_time < a.end_time
    logs = flow_logs(state.state_details.flow_run_id)
    assert "experiment tiny-001: pretrain@tiny: ran" in logs
    assert "experiment tiny-002: generate@bfs: skipped: unchanged since the last run (dvc.lock)" in logs
    found = artifacts(state.state_details.flow_run_id)
    assert {"nar-sweep-results", "nar-sweep-report"} <= set(found)

    # isolated: the workspace is untouched and the experiments are DVC's own
    assert (repo / "params.yaml").read_text() == workspace_params
    assert "up to date" in sh(["dvc", "status"], repo).stdout
    listed = sh(["dvc", "exp", "ls"], repo).stdout
    assert "tiny-001" in listed and "tiny-002" in listed


def clean_env(prefect_home: Path) -> dict[str, str]:
    """A user's shell, not the test harness's: this venv on PATH and nothing else from the test process; no
    PREFECT_API_URL (the flow starts Prefect's temporary server), no MLflow URI, no Dask address."""
    out = {
        "PATH": f"{BIN}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(prefect_home.parent)),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(ROOT),
        "PREFECT_HOME": str(prefect_home),
        # the 2-core machines need longer than Prefect's 20 s default to start the temporary server (STACK.md)
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DVC_NO_ANALYTICS": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    if "TMPDIR" in os.environ:
        out["TMPDIR"] = os.environ["TMPDIR"]
    return out


@pytest.mark.fault(
    category="orchestration",
    fault="`nar sweep` as the README shows it, with PREFECT_API_URL unset (a LocalCluster of worker threads: "
    "distributed 2026.x refused processes=False with a host, 'Scheduler failed to start')",
    expected="the sweep runs on a loopback LocalCluster and prints and writes its table",
)
@pytest.mark.timeout(300)
def test_nar_sweep_as_in_the_readme_without_a_prefect_api_url(tmp_path):
    repo = make_repo(tmp_path / "repo")
    cmd = [
        str(BIN / "nar"), "sweep",
        "-S", "+pretrain.runs.tiny.train.seed=1,2",
        "--target", "pretrain@tiny", "--metric", "pretrain/*:ood_score", "--workers", "2", "--name", "readme",
    ]  # fmt: skip
    env = clean_env(tmp_path / "prefect-home")
    assert "PREFECT_API_URL" not in env
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=280)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "failed to start" not in out
    table = pd.read_csv(repo / "sweeps/readme.csv")
    assert list(table["experiment"]) == ["readme-001", "readme-002"]
    assert list(table["status"]) == ["completed", "completed"], table.to_string()
    assert table["pretrain/tiny:ood_score"].between(0, 100).all()
    assert "readme-002" in proc.stdout  # the table is printed too
