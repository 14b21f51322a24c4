"""The DVC helpers behind the flows: stage selection, output parsing, which failures are retried."""

from __future__ import annotations

import pickle

import pytest

from flows.stages import DvcRun, StageFailed, retry_if_transient, select_stages

ORDER = ["generate@bfs", "generate@dfs", "natural@digit_grid", "natural@road", "pretrain@a", "register"]
UP = {
    "pretrain@a": {"generate@bfs", "generate@dfs"},
    "register": {"pretrain@a", "generate@bfs", "generate@dfs"},
}


def test_select_stages_groups_upstream_and_filters():
    assert select_stages(ORDER, UP) == ORDER
    assert select_stages(ORDER, UP, ["register"]) == ["generate@bfs", "generate@dfs", "pretrain@a", "register"]
    assert select_stages(ORDER, UP, ["register"], with_upstream=False) == ["register"]
    assert select_stages(ORDER, UP, ["natural"]) == ["natural@digit_grid", "natural@road"]
    assert select_stages(ORDER, UP, ["pretrain"], algorithms=["dfs"]) == ["generate@dfs", "pretrain@a"]
    assert select_stages(ORDER, UP, tasks=["road"]) == [s for s in ORDER if s != "natural@digit_grid"]
    with pytest.raises(ValueError, match="stage 'train' is not in dvc.yaml"):
        select_stages(ORDER, UP, ["train"])
    with pytest.raises(ValueError, match="algorithm 'dijkstra' has no stage"):
        select_stages(ORDER, UP, algorithms=["dijkstra"])


def test_outcomes_and_error_lines():
    run = DvcRun(
        returncode=0,
        lines=[
            "Stage 'generate@bfs' didn't change, skipping",
            "Stage 'generate@dfs' is cached - skipping run, checking out outputs",
            "Running stage 'pretrain@a':",
            "> nar pretrain --run a",
        ],
    )
    assert run.outcomes == {"generate@bfs": "skipped", "generate@dfs": "restored", "pretrain@a": "ran"}
    failed = DvcRun(returncode=255, lines=["Running stage 'x':", "> nar x", "nar x: error: bad", "ERROR: failed"])
    assert failed.errors() == ["nar x: error: bad", "ERROR: failed"]


class _State:
    def __init__(self, exc):
        self.exc = exc

    def result(self, raise_on_failure=True):
        return self.exc


@pytest.mark.parametrize(
    ("line", "transient"),
    [
        ("ERROR: Unable to acquire lock. Most likely another DVC process is running", True),
        ("nar register: error: MLflow at http://127.0.0.1:5000: ConnectionError: Connection refused", True),
        ("sqlite3.OperationalError: database is locked", True),
        ("nar generate: error: generate.shard_size: got 0; allowed: an integer >= 1", False),
        ("ERROR: failed to reproduce 'x': failed to run: nar x, exited with 1", False),
    ],
)
@pytest.mark.fault(
    category="orchestration",
    fault="stage failure lines (lock, MLflow unreachable, user error)",
    expected="only transient ones retried",
)
def test_only_transient_failures_are_retried(line, transient):
    exc = StageFailed("stage 'x'", 255, [line])
    assert exc.transient is transient
    assert retry_if_transient(None, None, _State(exc)) is transient
    assert line in str(exc)
    again = pickle.loads(pickle.dumps(exc))  # crosses Dask workers and Prefect's result store
    assert str(again) == str(exc) and again.transient is transient
    assert retry_if_transient(None, None, _State(ValueError("Unable to acquire lock"))) is False
