"""The ``heuristic`` variant: the exact algorithm on the visible proxy cost, no learning (issue 16 item 3)."""

import numpy as np
import pytest

from nar.natural.targets import shortest_path_targets
from nar.transfer.config import TaskTransferParams
from nar.transfer.graphs import FlatSplit
from nar.transfer.metrics import score_split
from nar.transfer.progress import plan_line
from nar.transfer.train import HEURISTIC_FEATURE, RunSpec, TaskData, heuristic_costs, heuristic_predictions, train_run

from .helpers import make_example

FEATURES = {"edge_features": ["lanes", HEURISTIC_FEATURE]}

# 0 -> 1 -> 2 is short (length 1 + 1) but slow (hidden 5 + 5); 0 -> 2 is long (3) but fast (2)
EDGES = [(0, 1), (1, 2), (0, 2)]
HIDDEN = [5.0, 5.0, 2.0]
LENGTH = [1.0, 1.0, 3.0]


def _example():
    feats = np.stack([np.zeros(3), LENGTH], axis=1)
    return make_example(3, EDGES, HIDDEN, source=0, target=2, edge_features=feats)


class _Split(FlatSplit):
    def __init__(self, examples, feature_names):
        super().__init__(examples)
        self.feature_names = feature_names


def test_costs_are_the_visible_length_column_or_uniform():
    ex = _example()
    assert heuristic_costs(ex, FEATURES).tolist() == [1.0, 3.0, 1.0]  # edges sorted: (0,1), (0,2), (1,2)
    assert heuristic_costs(ex, {}).tolist() == [1.0, 1.0, 1.0]  # no named length: uniform
    zero = make_example(2, [(0, 1)], [1.0], 0, 1, edge_features=np.zeros((1, 2)))
    assert heuristic_costs(zero, FEATURES)[0] > 0  # a zero-length segment still costs something


def test_heuristic_follows_the_proxy_not_the_hidden_costs():
    ex = _example()
    assert ex.pi.tolist() == [0, 0, 0]  # the truth: straight to 2 over the fast edge
    split = _Split([ex], FEATURES)
    (pred,) = heuristic_predictions(split, "bellman_ford")
    assert pred.tolist() == [0, 0, 1]  # the length tree: 2 via 1
    m = score_split([pred], split)
    assert m["pointer_acc"] == pytest.approx(2 / 3) and m["path_match"] == 0.0
    assert m["regret"] == pytest.approx(10.0 / 2.0 - 1.0)  # 5 + 5 against 2, on the hidden costs
    uniform = heuristic_predictions(_Split([ex], {}), "bellman_ford")[0]
    assert uniform.tolist() == [0, 0, 0]  # fewest hops


@pytest.mark.parametrize("task", ["digit_grid", "road"])
def test_heuristic_on_the_tiny_tasks(natural_root, task):
    params = TaskTransferParams(width=8, batch_size=4, max_steps=2, val_examples=4, precision="float32")
    data = TaskData.load(str(natural_root), task, params)
    r = train_run(RunSpec(task, "heuristic", 8, 0), params, data, None)
    assert set(r.metrics) == {"val", "test", "ood"} and r.steps == 0 and r.state is None
    split = data.splits["test"]
    preds = heuristic_predictions(split, data.algorithm)
    for ex, pred in zip(split.examples, preds, strict=True):
        if task == "road":  # the exact algorithm on the stored length column, nothing hidden
            col = split.feature_names["edge_features"].index(HEURISTIC_FEATURE)
            w = np.maximum(ex.inputs["edge_features"][:, col], 1e-3)
        else:  # every cell the same cost
            w = np.ones(ex.num_edges, dtype=np.float32)
        want = shortest_path_targets(ex.num_nodes, ex.edge_index, w, ex.source, ex.target, data.algorithm)["pi"]
        assert pred.tolist() == want.tolist()
    assert r.metrics["test"] == score_split(preds, split)
    assert r.metrics["test"]["invalid"] == 0  # a shortest-path tree always gives a valid path


def test_plan_counts_each_untrained_variant_once():
    line = plan_line("road", ["e2e"], [8, 16], [0, 1], 2, ["heuristic", "oracle"])
    assert line.startswith("transfer road: 6 steps: 4 training runs")
    assert "the heuristic (exact algorithm on the visible proxy cost, no training)" in line
    assert line.endswith("12 results in all")
