"""nar.tracked_run: the one way stages write MLflow runs (start, resume, log, end), on a real SQLite store."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException

from nar.tracked_run import METRICS_PER_BATCH, PARAMS_PER_BATCH, PARENT_TAG, TrackedRun, flatten, open_experiment


@pytest.fixture
def store(tmp_path, monkeypatch):
    """(client, experiment id) on a fresh SQLite store in ``tmp_path`` (the workspace default)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    return open_experiment("nar-pretrain", tmp_path)


def test_flatten_nested_mappings_to_dotted_keys():
    assert flatten({"model": {"hidden": 16, "processor": {"kind": "mpnn"}}, "seed": 0, "empty": {}}) == {
        "model.hidden": 16,
        "model.processor.kind": "mpnn",
        "seed": 0,
    }
    assert flatten({"a": 1}, "test.bfs") == {"test.bfs.a": 1}


def test_a_run_logs_params_metrics_tags_artifacts_and_ends(store, tmp_path):
    client, experiment_id = store
    run = TrackedRun.start(client, experiment_id, "tiny", {"git_commit": "abc"})
    # more params and metrics than one log_batch call may carry
    params = {f"p{i}": {"value": i} for i in range(PARAMS_PER_BATCH + 5)}
    run.log_params(params)
    run.log_params({"long": "x" * 600}, max_chars=500)
    run.log_metrics({f"m{i}": float(i) for i in range(METRICS_PER_BATCH + 5)}, step=2)
    run.log_metric_rows([("curve", 0.5, 1), ("curve", 0.25, 2)])
    run.set_tags({"resumed_from": "3"})
    (tmp_path / "a.json").write_text("{}")
    run.log_artifacts([tmp_path / "a.json"], artifact_path="metrics")
    with run.ending():
        pass
    got = client.get_run(run.run_id)
    assert got.info.status == "FINISHED" and got.info.run_name == "tiny"
    assert got.data.params["p7.value"] == "7" and len(got.data.params) == PARAMS_PER_BATCH + 6
    assert got.data.params["long"] == "x" * 500
    assert len(got.data.metrics) == METRICS_PER_BATCH + 5 + 1
    assert [(m.step, m.value) for m in client.get_metric_history(run.run_id, "curve")] == [(1, 0.5), (2, 0.25)]
    assert got.data.tags["git_commit"] == "abc" and got.data.tags["resumed_from"] == "3"
    assert [f.path for f in client.list_artifacts(run.run_id, "metrics")] == ["metrics/a.json"]


def test_a_child_run_is_nested_and_a_failing_block_ends_failed(store):
    client, experiment_id = store
    parent = TrackedRun.start(client, experiment_id, "transfer-road")
    child = parent.child("road/nar_frozen/n8/s0", {"variant": "nar_frozen"})
    assert client.get_run(child.run_id).data.tags[PARENT_TAG] == parent.run_id
    with pytest.raises(KeyboardInterrupt), child.ending():
        raise KeyboardInterrupt
    assert client.get_run(child.run_id).info.status == "FAILED"


def test_resume_or_start_continues_the_run_its_id_file_names(store, tmp_path):
    client, experiment_id = store
    id_file = tmp_path / "mlflow_run_id"
    calls = []

    def tags():
        calls.append(1)
        return {"git_commit": "abc"}

    first = TrackedRun.resume_or_start(client, experiment_id, "tiny", id_file, tags, {"lr": 0.001})
    assert id_file.read_text() == first.run_id and calls == [1]
    assert first.kill("stopped by SIGTERM; resumable")
    assert client.get_run(first.run_id).info.status == "KILLED"
    again = TrackedRun.resume_or_start(client, experiment_id, "tiny", id_file, tags, {"lr": 0.001})
    assert again.run_id == first.run_id and calls == [1]  # tags are computed for a new run only
    assert client.get_run(again.run_id).info.status == "RUNNING"
    assert client.get_run(again.run_id).data.tags["interrupted"] == "stopped by SIGTERM; resumable"
    # deleted in the UI, or unknown to this store: a new run
    client.delete_run(first.run_id)
    assert TrackedRun.resume(client, first.run_id) is None
    assert TrackedRun.resume(client, "0" * 32) is None
    fresh = TrackedRun.resume_or_start(client, experiment_id, "tiny", id_file, tags, {})
    assert fresh.run_id != first.run_id and id_file.read_text() == fresh.run_id


def test_end_if_running_marks_only_a_running_run(store):
    client, experiment_id = store
    running = TrackedRun.start(client, experiment_id, "old")
    finished = TrackedRun.start(client, experiment_id, "done")
    finished.end()
    for run in (running, finished):
        run.end_if_running("KILLED", "superseded", "checkpoint removed")
    assert client.get_run(running.run_id).info.status == "KILLED"
    assert client.get_run(running.run_id).data.tags["superseded"] == "checkpoint removed"
    assert client.get_run(finished.run_id).info.status == "FINISHED"
    TrackedRun(client, "0" * 32).end_if_running("KILLED", "superseded", "gone")  # unknown run: nothing


def test_end_quietly_reports_instead_of_raising(store, monkeypatch, caplog):
    client, experiment_id = store
    run = TrackedRun.start(client, experiment_id, "tiny")

    def refuse(*args, **kwargs):
        raise MlflowException("the store refused")

    monkeypatch.setattr(client.client, "set_terminated", refuse)
    assert run.fail("Diverged: loss is nan") is False
    assert "could not mark MLflow run" in caplog.text
    assert client.get_run(run.run_id).data.tags["failure"] == "Diverged: loss is nan"
