"""Padding natural examples into torch tensors, inputs kept apart from the hidden costs."""

import numpy as np
import torch

from nar.natural.store import load_natural


def test_collate_road(built):
    ds = load_natural(built / "road" / "train")
    idx = [0, 1, 2, 3, 4]
    b = ds.collate(idx)
    exs = [ds[i] for i in idx]
    N = max(ex.num_nodes for ex in exs)
    F = len(ds.feature_names["edge_features"])
    assert b.edge_features.shape == (5, N, N, F) and b.edge_features.dtype == torch.float32
    assert b.node_features.shape == (5, N, len(ds.feature_names["node_features"]))
    assert b.adj.dtype == torch.bool and b.pi.dtype == torch.int64 and b.source.shape == (5,)
    assert set(b.inputs) == {"node_features", "edge_features", "source", "target"}
    assert set(b.hidden) == {"edge_cost", "dist", "edge_optimal", "congestion", "incident"}
    for k, ex in enumerate(exs):
        n = ex.num_nodes
        assert b.node_mask[k].sum() == n and not b.node_mask[k, n:].any()
        np.testing.assert_array_equal(b.adj[k, :n, :n].numpy(), ex.adjacency())
        assert b.adj[k].sum() == ex.num_edges
        u, v = ex.edge_index[:, 0], ex.edge_index[:, 1]
        np.testing.assert_array_equal(b.edge_features[k, u, v].numpy(), ex.inputs["edge_features"])
        np.testing.assert_array_equal(b.hidden["edge_cost"][k, u, v].numpy(), ex.hidden["edge_cost"])
        np.testing.assert_array_equal(b.hidden["edge_cost"][k, :n, :n].numpy(), ex.dense_edges(ex.hidden["edge_cost"]))
        assert (b.edge_features[k][~b.adj[k]] == 0).all()
        np.testing.assert_array_equal(b.pi[k, :n].numpy(), ex.pi)
        assert int(b.source[k]) == ex.source and int(b.target[k]) == ex.target
    moved = b.to("cpu")
    assert moved.pi.shape == b.pi.shape


def test_collate_digit_grid(built):
    ds = load_natural(built / "digit_grid" / "ood")
    b = ds.collate()
    assert b.edge_features is None
    assert b.node_features.shape == (len(ds), 144, 64)
    assert b.hidden["digit"].dtype == torch.int64 and b.path.dtype == torch.float32
    assert b.meta["coords"].shape == (len(ds), 144, 2)
    # the source cell's distance is 0 and the target's equals the path cost
    rows = torch.arange(len(ds))
    assert (b.hidden["dist"][rows, b.source] == 0).all()
    path_cost = (b.hidden["cell_cost"] * b.path).sum(1) - b.hidden["cell_cost"][rows, b.source]
    torch.testing.assert_close(path_cost, b.hidden["dist"][rows, b.target])


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
