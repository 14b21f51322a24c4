"""The nar-blueprint flow end to end on the tiny pipeline, under Prefect's test harness."""

from __future__ import annotations

import json

import pytest
from flowtools import artifacts, flow_logs, git_commit, sh, task_runs

STAGES = [
    "generate@bfs",
    "generate@bellman_ford",
    "natural@digit_grid",
    "natural@road",
    "pretrain@tiny",
    "register",
    "transfer@digit_grid",
    "transfer@road",
    "evaluate",
]


def test_first_run_runs_every_stage_in_order_and_publishes(first_run):
    repo, state = first_run
    assert state.is_completed(), state
    result = state.result()
    assert [r["stage"] for r in result["stages"]] == STAGES
    assert {r["status"] for r in result["stages"]} == {"ran"}
    assert json.loads((repo / "models/registered.json").read_text())["version"] == "1"
    assert "up to date" in sh(["dvc", "status"], repo).stdout

    runs = task_runs(state.state_details.flow_run_id)
    assert set(runs) == set(STAGES)
    assert all(r.state.is_completed() and r.run_count == 1 for r in runs.values())

    logs = flow_logs(state.state_details.flow_run_id)
    # DVC's output and the stage's own output reach the flow log exactly once
    assert logs.count("Running stage 'pretrain@tiny':") == 1
    assert logs.count("> nar pretrain --run tiny") == 1
    assert sum("registered: models:/nar-processor/1" in m for m in logs) == 1
    assert "register: ran" in " ".join(logs)

    found = artifacts(state.state_details.flow_run_id)
    report = found["nar-blueprint-report"].data
    assert "## Pretraining" in report and "| tiny | bellman_ford |" in report
    assert "`nar-processor`" in report and "`@champion`" in report
    assert "/#/models/nar-processor/versions/1" in report
    assert "| register | ran |" in report
    assert "](../" not in report and "data:image/png;base64," in report  # figures inline: the UI cannot load paths
    assert "| property | value |" in report
    table = found["nar-blueprint-metrics"].data
    rows = json.loads(table) if isinstance(table, str) else table
    assert {"stage": "pretrain", "item": "tiny", "figure": "ood_score (%)"}.items() <= rows[0].items()
    assert any(r["stage"] == "transfer digit_grid" for r in rows) and len(rows) < 100


def test_second_run_reruns_nothing_and_says_so(first_run):
    from flows.blueprint import blueprint

    repo, _ = first_run
    state = blueprint(root=str(repo), return_state=True)
    assert state.is_completed(), state
    statuses = {r["stage"]: r["status"] for r in state.result()["stages"]}
    assert statuses == dict.fromkeys(STAGES, "skipped")
    logs = flow_logs(state.state_details.flow_run_id)
    assert "Stage 'pretrain@tiny' didn't change, skipping" in logs
    assert "nothing to rerun: every stage was up to date" in logs
    assert not any(m.startswith("Running stage") for m in logs)
    report = artifacts(state.state_details.flow_run_id)["nar-blueprint-report"].data
    assert "| pretrain@tiny | skipped |" in report


def test_selection_by_group_algorithm_and_task(first_run):
    from flows.blueprint import blueprint

    repo, _ = first_run
    result = blueprint(root=str(repo), stages=["generate", "natural"], algorithms=["bfs"], tasks=["road"])
    assert [r["stage"] for r in result["stages"]] == ["generate@bfs", "natural@road"]


def test_overrides_run_as_an_isolated_dvc_experiment(first_run):
    import dvc.api

    from flows.blueprint import blueprint

    repo, _ = first_run
    git_commit(repo, "pipeline state")  # experiments start from HEAD: commit dvc.lock, as a user would
    params = (repo / "params.yaml").read_text()
    lock = (repo / "dvc.lock").read_text()
    state = blueprint(
        root=str(repo),
        stages=["generate@bfs"],
        overrides=["generate.seed=5"],
        experiment_name="seed5",
        return_state=True,
    )
    assert state.is_completed(), state
    result = state.result()
    assert result["experiment"] == "seed5"
    assert {r["stage"]: r["status"] for r in result["stages"]} == {"generate@bfs": "ran"}
    assert dvc.api.params_show(repo=str(repo), rev="seed5")["generate"]["seed"] == 5
    # the workspace is untouched, so the next run or experiment inherits nothing from this one
    assert (repo / "params.yaml").read_text() == params and (repo / "dvc.lock").read_text() == lock
    assert "up to date" in sh(["dvc", "status"], repo).stdout
    logs = flow_logs(state.state_details.flow_run_id)
    assert "experiment seed5: generate@bfs: ran" in logs
    report = artifacts(state.state_details.flow_run_id)["nar-blueprint-report"].data
    assert report.startswith("# NAR blueprint: experiment `seed5`")


@pytest.mark.fault(category="config", fault="`nar blueprint` with an unknown stage", expected="one line, exit 2")
def test_cli_reports_a_bad_selection_in_one_line(first_run, capsys):
    from nar.cli import main

    repo, _ = first_run
    assert main(["blueprint", "--root", str(repo), "--stage", "train"]) == 2
    err = capsys.readouterr().err
    assert "nar blueprint: error: stage 'train' is not in dvc.yaml" in err
