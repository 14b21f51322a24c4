"""Targets of the natural tasks: distances along the path, the oracle reproducing them, path regret."""

import numpy as np

from nar.natural.store import load_natural


def test_digit_grid_distances_follow_the_path(built):
    """The source cell's distance is 0 and the target's equals the cost of the cells entered on the path."""
    ds = load_natural(built / "digit_grid" / "ood")
    for ex in ds:
        cost, dist = ex.hidden["cell_cost"], ex.hidden["dist"]
        assert dist[ex.source] == 0
        path_cost = (cost * ex.targets["path"]).sum() - cost[ex.source]
        np.testing.assert_allclose(path_cost, dist[ex.target], rtol=1e-6)


def test_oracle_reproduces_targets_and_regret(built):
    from nar.natural.targets import follow_pointers, oracle_targets, path_regret

    for task in ("digit_grid", "road"):
        ds = load_natural(built / task / "test")
        for ex in ds:
            oracle = oracle_targets(ex, ds.algorithm)
            np.testing.assert_array_equal(oracle["pi"], ex.pi)
            np.testing.assert_array_equal(oracle["path"], ex.targets["path"])
            assert path_regret(ex, ex.pi) == 0.0
        ex = ds[0]
        bad = ex.pi.copy()
        bad[ex.target] = ex.target  # a self-pointer off the source: no path
        assert path_regret(ex, bad) is None
        assert follow_pointers(np.arange(ex.num_nodes), ex.source, ex.target, ex.adjacency()) is None
    ex = load_natural(built / "digit_grid" / "train")[0]
    assert follow_pointers(ex.pi, ex.source, ex.source, ex.adjacency()) == [ex.source]


def test_regret_of_a_detour():
    from nar.natural.store import Example
    from nar.natural.targets import path_regret

    # 0 -> 1 -> 3 costs 1 + 1, 0 -> 2 -> 3 costs 2 + 2
    edges = np.array([[0, 1], [0, 2], [1, 3], [2, 3]])
    ex = Example(
        num_nodes=4,
        num_edges=4,
        inputs={"edge_index": edges, "source": np.array(0), "target": np.array(3)},
        targets={"pi": np.array([0, 0, 0, 1]), "path": np.array([1, 1, 0, 1])},
        hidden={"edge_cost": np.array([1.0, 2.0, 1.0, 2.0], dtype=np.float32), "dist": np.array([0, 1, 2, 2.0])},
        meta={},
    )
    assert path_regret(ex, ex.pi) == 0.0
    assert path_regret(ex, np.array([0, 0, 0, 2])) == 1.0
    assert path_regret(ex, np.array([0, 0, 0, 0])) is None  # 0 -> 3 is not an edge
