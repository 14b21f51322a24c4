"""benchmarks/bench_heuristic_gap.py: the contestable-node bound on a hand-made graph, and its measures on road
examples drawn as `nar natural` draws them (small splits, the whole-network pool included)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nar.natural.config import parse_natural_params
from nar.natural.road import EDGE_FEATURES
from nar.natural.store import Example

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def gap(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import bench_heuristic_gap

    return bench_heuristic_gap


def test_contestable_nodes_of_a_hand_made_graph(gap):
    # s=0 -> a=1, s -> b=2, a -> c=3, b -> c, c -> d=4, d -> a: only c has two in-neighbours reachable from s
    # without passing it; a's second in-neighbour d lies behind a (s -> b -> c -> d), so a is contestable too
    edges = np.array([[0, 1], [0, 2], [1, 3], [2, 3], [3, 4], [4, 1]])
    ex = Example(5, len(edges), {"edge_index": edges, "source": np.array(0), "target": np.array(4)}, {}, {}, {})
    assert gap.alternative_ceiling(ex) == pytest.approx(2 / 4)
    no_cycle = edges[:-1]
    ex = Example(5, len(no_cycle), {"edge_index": no_cycle, "source": np.array(0), "target": np.array(4)}, {}, {}, {})
    assert gap.alternative_ceiling(ex) == pytest.approx(1 / 4)


def test_measures_on_drawn_road_examples(gap):
    params = parse_natural_params(
        {
            "seed": 3,
            "road": {
                "splits": {
                    "train": {"count": 2, "sizes": [16]},
                    "val": {"count": 6, "sizes": [16, 24]},
                    "test": {"count": 2, "sizes": [16]},
                    "ood": {"count": 3, "sizes": [150], "pool": "network"},
                }
            },
        }
    )
    col = EDGE_FEATURES.index(gap.LENGTH)
    for split, count in (("val", 6), ("ood", 3)):
        out = gap.measure(gap._examples_from_params("road", split, params), "bellman_ford", col)
        assert out["examples"] == count and out["oracle_pointer_acc"] == 100.0
        # no cost model can change a pointer that has no alternative: both shares stay under the bound
        assert out["pointer_differ"]["mean"] <= out["alternative_ceiling"]
        assert out["random_cost_differ"] <= out["alternative_ceiling"]
        assert 0.0 < out["heuristic_pointer_acc"] <= 100.0
        assert out["segment_tree_differ"] == 0.0 and out["chain_not_route"] == 0.0  # road: no turns
    # the whole network has route choices the length tree gets wrong (about 12 % of the pointers)
    assert out["heuristic_pointer_acc"] < 100.0 and out["pointer_differ"]["pooled"] > 0.0
