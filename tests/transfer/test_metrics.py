import numpy as np
import pytest

from nar.transfer.graphs import FlatSplit
from nar.transfer.metrics import node_scores, path_outcome, score_split

from .helpers import TIE_PI, tie_example


@pytest.fixture
def split():
    return FlatSplit([tie_example() for _ in range(4)])


def test_the_hand_made_example_is_what_the_tests_assume():
    ex = tie_example()
    opt = dict(zip(map(tuple, ex.edge_index.tolist()), ex.hidden["edge_optimal"].tolist(), strict=True))
    assert opt == {(0, 1): 1, (0, 2): 1, (1, 2): 1, (1, 3): 0, (2, 3): 1}


def test_node_scores_exact_and_up_to_ties():
    ex = tie_example()
    ei, opt = ex.edge_index, ex.hidden["edge_optimal"]
    assert node_scores(np.array(TIE_PI), ex.pi, 0, ei, opt) == (4, 4)
    assert node_scores(np.array([0, 0, 0, 2]), ex.pi, 0, ei, opt) == (3, 4)  # 0 -> 2 is a tie
    assert node_scores(np.array([0, 0, 1, 1]), ex.pi, 0, ei, opt) == (3, 3)  # 1 -> 3 is not optimal
    assert node_scores(np.array([1, 0, 1, 2]), ex.pi, 0, ei, opt) == (3, 3)  # the source must point to itself
    assert node_scores(np.array([0, 0, 2, 2]), ex.pi, 0, ei, opt) == (3, 3)  # a self-pointer is never a tie


def test_path_outcomes():
    ex = tie_example()
    args = (ex.pi, 0, 3, ex.edge_index, ex.hidden["edge_cost"])
    out = path_outcome(np.array(TIE_PI), *args)
    assert (out.valid, out.match, out.regret, out.optimal) == (True, True, 0.0, True)
    out = path_outcome(np.array([0, 0, 0, 2]), *args)  # 0 -> 2 -> 3: another optimal path
    assert (out.valid, out.match, out.regret, out.optimal) == (True, False, 0.0, True)
    out = path_outcome(np.array([0, 0, 1, 1]), *args)  # 0 -> 1 -> 3 costs 6 against 3
    assert (out.valid, out.match, out.optimal) == (True, False, False)
    assert out.regret == pytest.approx(1.0)
    for bad in ([0, 2, 1, 2], [0, 0, 1, 3], [0, 0, 1, 0]):  # a cycle, a self-pointer, a non-edge pointer
        out = path_outcome(np.array(bad), *args)
        assert (out.valid, out.match, out.regret) == (False, False, None)


def test_score_split_exact(split):
    preds = [np.array(p) for p in ([0, 0, 1, 2], [0, 0, 0, 2], [0, 0, 1, 1], [0, 2, 1, 2])]
    s = score_split(preds, split)
    assert s["pointer_acc"] == pytest.approx((4 + 3 + 3 + 3) / 16)
    assert s["pointer_acc_tie"] == pytest.approx((4 + 4 + 3 + 3) / 16)
    assert s["path_match"] == pytest.approx(1 / 4)
    assert s["path_optimal"] == pytest.approx(2 / 4)
    assert s["regret"] == pytest.approx((0 + 0 + 1) / 3)  # over the three valid paths
    assert s["invalid"] == 1 and s["invalid_rate"] == pytest.approx(1 / 4)
    assert s["regret_all"] == pytest.approx((0 + 0 + 1 + 1) / 4)  # an invalid path charged 1
    assert (s["examples"], s["nodes"]) == (4, 16)


def test_score_split_all_invalid_has_no_regret(split):
    s = score_split([np.array([0, 2, 1, 2])] * 4, split)
    assert s["regret"] is None and s["invalid"] == 4 and s["path_match"] == 0.0
