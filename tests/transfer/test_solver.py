import networkx as nx
import numpy as np
import pytest
import torch

from nar.transfer.graphs import FlatSplit, depths, subtree_sizes
from nar.transfer.solver import blackbox_tree, solve_pointers, solve_tree, tree_hinge_loss, usage_loss

from .helpers import make_example

# a diamond: the true costs route 3 through 1; the "predicted" ones through 2
DIAMOND = [(0, 1), (1, 3), (0, 2), (2, 3)]
TRUE_COSTS = [1.0, 1.0, 1.0, 5.0]


def diamond_batch():
    return FlatSplit([make_example(4, DIAMOND, TRUE_COSTS, source=0, target=3)]).batch([0])


def test_solver_matches_networkx_on_random_graphs():
    rng = np.random.default_rng(0)
    sizes = [7, 5, 9]
    src, dst, w, sources, offset = [], [], [], [], 0
    graphs = []
    for n in sizes:
        g = nx.gnp_random_graph(n, 0.5, seed=int(rng.integers(1000)), directed=True)
        edges = list(g.edges())
        cost = rng.uniform(0.5, 2.0, len(edges))
        graphs.append((n, edges, cost))
        for (u, v), c in zip(edges, cost, strict=True):
            src.append(u + offset)
            dst.append(v + offset)
            w.append(c)
        sources.append(offset)
        offset += n
    pi = solve_pointers(np.array(w), np.array(src), np.array(dst), np.array(sources), offset)
    offset = 0
    for n, edges, cost in graphs:
        g = nx.DiGraph()
        g.add_nodes_from(range(n))
        g.add_weighted_edges_from((u, v, c) for (u, v), c in zip(edges, cost, strict=True))
        dist = nx.single_source_dijkstra_path_length(g, 0)
        for v in range(n):
            p = pi[offset + v] - offset
            if v == 0 or v not in dist:
                assert p == v
            else:  # the predecessor lies on a shortest path
                assert dist[p] + g[p][v]["weight"] == pytest.approx(dist[v])
        offset += n


def test_solve_tree_reproduces_the_targets_on_true_costs():
    b = diamond_batch()
    pi, y = solve_tree(b.edge_cost, b)
    assert torch.equal(pi, b.pi)
    assert torch.equal(y, b.tree_usage)
    edges = list(zip(b.edge_src.tolist(), b.edge_dst.tolist(), strict=True))
    # true tree 0 -> 1 -> 3, 0 -> 2: edge 0 -> 1 carries the paths to 1 and 3
    assert dict(zip(edges, y.tolist(), strict=True)) == {(0, 1): 2.0, (1, 3): 1.0, (0, 2): 1.0, (2, 3): 0.0}


def test_depths_and_subtree_sizes_of_a_pointer_forest():
    pi = np.array([0, 0, 1, 2, 1, 5, 5])  # a chain 0-1-2-3 with 4 under 1; a second tree 5 -> 6
    assert depths(pi).tolist() == [0, 1, 2, 3, 2, 0, 1]
    assert subtree_sizes(pi).tolist() == [5, 4, 2, 1, 1, 2, 1]
    with pytest.raises(ValueError, match="cycle"):
        depths(np.array([1, 2, 0]))


def test_blackbox_gradient_lowers_the_cost_of_a_missed_true_path_edge():
    b = diamond_batch()
    edges = list(zip(b.edge_src.tolist(), b.edge_dst.tolist(), strict=True))
    on_true, wrongly_used = edges.index((1, 3)), edges.index((2, 3))
    # predicted costs: 1 -> 3 looks expensive, so the solver goes through 2
    w = torch.tensor([1.0, 1.0, 1.0, 1.0])
    w[on_true] = 5.0
    w.requires_grad_(True)
    y = blackbox_tree(w, b, lam=10.0)
    assert y[on_true] == 0 and y[wrongly_used] == 1
    loss = usage_loss(y, b.tree_usage, b.total_nodes)
    assert loss.item() == pytest.approx(4 / 4)  # true usages 0-1: 2, 1-3: 1, 0-2: 1, 2-3: 0; predicted 1, 0, 2, 1
    loss.backward()
    g = w.grad
    # descent (w - lr * g) lowers the missed true edge's cost and raises the wrongly used one's
    assert g[on_true] > 0 and g[wrongly_used] < 0
    # and a step along it fixes the tree
    with torch.no_grad():
        w2 = w - 100.0 * g / g.abs().max()
    y2 = blackbox_tree(w2.clamp_min(1e-3), b, lam=10.0)
    assert usage_loss(y2, b.tree_usage, b.total_nodes).item() == 0.0


def test_blackbox_gradient_is_zero_when_the_tree_is_right():
    b = diamond_batch()
    w = b.edge_cost.clone().requires_grad_(True)
    loss = usage_loss(blackbox_tree(w, b, lam=10.0), b.tree_usage, b.total_nodes)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.count_nonzero(w.grad) == 0


@pytest.mark.fault(category="numeric", fault="non-positive edge costs given to the exact solver", expected="refused")
def test_solver_refuses_non_positive_costs():
    with pytest.raises(ValueError, match="> 0"):
        solve_pointers(np.array([1.0, 0.0]), np.array([0, 1]), np.array([1, 2]), np.array([0]), 3)


def test_tree_hinge_is_zero_on_the_true_costs_and_names_the_edge_that_breaks_the_tree():
    b = diamond_batch()
    edges = list(zip(b.edge_src.tolist(), b.edge_dst.tolist(), strict=True))
    on_true, shortcut = edges.index((1, 3)), edges.index((2, 3))
    # the true costs make the true tree optimal (1 -> 3 costs 2 from the source, 2 -> 3 would cost 6)
    assert tree_hinge_loss(b.edge_cost, b, margin=0.0).item() == 0.0
    # within the margin: 6 - 2 = 4 of slack, so a margin of 5 charges 1 on the off-tree edge, per node
    assert tree_hinge_loss(b.edge_cost, b, margin=5.0).item() == pytest.approx(1 / 4)
    # predicted costs that route 3 through 2: d*_3 = 1 + 5 = 6 by the true tree, 1 + 1 = 2 through 2
    w = torch.tensor([1.0, 1.0, 1.0, 1.0])
    w[on_true] = 5.0
    w.requires_grad_(True)
    loss = tree_hinge_loss(w, b, margin=0.0)
    assert loss.item() == pytest.approx(4 / 4)
    loss.backward()
    g = w.grad
    # descent lowers the true path's costs (0 -> 1 and 1 -> 3) and raises the shortcut's and its feeder's
    assert g[on_true] > 0 and g[edges.index((0, 1))] > 0
    assert g[shortcut] < 0 and g[edges.index((0, 2))] < 0


def test_tree_hinge_path_sums_match_networkx_on_a_random_tree():
    """d* (the true tree's path sums of the predicted costs) is what the hinge compares: on a random tree
    plus extra edges, an off-tree edge u -> v is charged exactly max(0, d*_v - d*_u - c_uv) (margin 0)."""
    rng = np.random.default_rng(3)
    n = 12
    tree = nx.random_labeled_tree(n, seed=4) if hasattr(nx, "random_labeled_tree") else nx.random_tree(n, seed=4)
    order = list(nx.bfs_tree(tree, 0).edges())  # parent -> child
    extra = [(int(u), int(v)) for u, v in rng.integers(0, n, size=(6, 2)) if u != v and (u, v) not in order]
    extra = [e for e in dict.fromkeys(extra) if (e[1], e[0]) not in order and e[1] != 0]
    edges = order + extra
    tree_costs = [1.0] * len(order) + [50.0] * len(extra)  # the true tree is the BFS tree of `tree`
    b = FlatSplit([make_example(n, edges, tree_costs, source=0, target=n - 1)]).batch([0])
    pred = torch.as_tensor(rng.uniform(0.2, 2.0, len(edges)), dtype=torch.float32)
    got = tree_hinge_loss(pred, b, margin=0.0).item() * n
    g = nx.DiGraph()
    for (u, v), c in zip(zip(b.edge_src.tolist(), b.edge_dst.tolist(), strict=True), pred.tolist(), strict=True):
        g.add_edge(u, v, w=c)
    true_tree = nx.DiGraph([(int(b.pi[v]), v) for v in range(n) if v != 0])
    d = {v: nx.path_weight(g, nx.shortest_path(true_tree, 0, v), "w") for v in range(n)}
    want = sum(max(0.0, d[v] - d[u] - g[u][v]["w"]) for u, v in g.edges() if not true_tree.has_edge(u, v))
    assert got == pytest.approx(want, rel=1e-5, abs=1e-5)
