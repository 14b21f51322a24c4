"""The sweep on a 2-worker Dask LocalCluster: a tiny grid as parallel DVC experiments, one table."""

from __future__ import annotations

import pandas as pd
import pytest
from flowtools import artifacts, flow_logs, git_commit, sh, task_runs

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
