"""Exact answers checked against networkx; pointer scoring with ties."""

import networkx as nx
import numpy as np
import pytest

from nar.scale.reference import ALGORITHMS, applicable, exact, exact_match_fraction, pointer_accuracy, pointer_correct
from nar.scale.suite import FAMILIES, SuiteGraph, graph_rng

CHECKED = ["er_sparse", "grid_rect", "delaunay", "geometric", "tree", "path", "road_directed", "helsinki_region"]


def to_networkx(g: SuiteGraph) -> nx.DiGraph:
    """The suite graph as a networkx DiGraph with ``weight`` on every edge (all N nodes present)."""
    d = nx.DiGraph()
    d.add_nodes_from(range(g.num_nodes))
    d.add_weighted_edges_from(zip(g.edges[:, 0].tolist(), g.edges[:, 1].tolist(), g.weights.tolist(), strict=True))
    return d


def build(family: str, n: int = 64, seed: int = 1) -> SuiteGraph:
    return FAMILIES[family](n, graph_rng(seed, family, n, 0))


def check_tree(ref, g: SuiteGraph) -> None:
    """pi is a tree rooted at the source over the reachable nodes; hops and depth agree with it."""
    nodes = np.arange(g.num_nodes)
    selfish = ref.pi == nodes
    assert np.array_equal(selfish, (nodes == g.source) | ~ref.reachable)
    child = np.flatnonzero(~selfish)
    assert np.all(g.edge_ids(ref.pi[child], child) >= 0)
    assert np.array_equal(ref.hops[child], ref.hops[ref.pi[child]] + 1)
    assert ref.hops[g.source] == 0 and np.all(ref.hops[~ref.reachable] == -1)
    assert ref.depth == ref.hops.max()


@pytest.mark.parametrize("family", CHECKED)
def test_shortest_paths_match_networkx(family: str, request: pytest.FixtureRequest) -> None:
    if family.startswith("helsinki"):
        request.getfixturevalue("helsinki_ok")
    g = build(family)
    d = to_networkx(g)
    ref = exact("bellman_ford", g)
    nx_dist = nx.single_source_dijkstra_path_length(d, g.source, weight="weight")
    want = np.full(g.num_nodes, np.inf)
    want[list(nx_dist)] = list(nx_dist.values())
    assert np.allclose(ref.dist, want, rtol=1e-12, atol=0) and np.array_equal(np.isinf(ref.dist), np.isinf(want))
    check_tree(ref, g)
    child = np.flatnonzero(ref.pi != np.arange(g.num_nodes))
    through = ref.dist[ref.pi[child]] + g.weights[g.edge_ids(ref.pi[child], child)]
    assert np.allclose(through, ref.dist[child], rtol=1e-12)
    dij = exact("dijkstra", g)
    assert np.array_equal(dij.pi, ref.pi) and np.array_equal(dij.dist, ref.dist)
    assert pointer_accuracy("bellman_ford", g, ref.pi) == 1.0


@pytest.mark.parametrize("family", CHECKED)
def test_bfs_matches_networkx(family: str, request: pytest.FixtureRequest) -> None:
    if family.startswith("helsinki"):
        request.getfixturevalue("helsinki_ok")
    g = build(family)
    d = to_networkx(g)
    ref = exact("bfs", g)
    hops = nx.single_source_shortest_path_length(d, g.source)
    want = np.full(g.num_nodes, np.inf)
    want[list(hops)] = list(hops.values())
    assert np.array_equal(ref.dist, want)
    assert np.array_equal(ref.hops, np.where(np.isinf(want), -1, want).astype(np.int64))
    assert ref.depth == max(hops.values())
    # CLRS's parent: the smallest-index node one hop closer with an edge to v
    for v in hops:
        if v != g.source:
            assert ref.pi[v] == min(u for u in d.predecessors(v) if hops.get(u) == hops[v] - 1)
    # networkx's BFS tree is an equally valid answer
    nx_pi = np.arange(g.num_nodes)
    for child, parent in nx.bfs_predecessors(d, g.source):
        nx_pi[child] = parent
    assert pointer_accuracy("bfs", g, nx_pi, ref) == 1.0
    check_tree(ref, g)


@pytest.mark.parametrize("family", ["er_sparse", "grid", "delaunay", "geometric", "tree"])
def test_mst_prim_matches_networkx(family: str) -> None:
    g = build(family)
    ref = exact("mst_prim", g)
    check_tree(ref, g)
    assert ref.reachable.all()
    mst = nx.minimum_spanning_tree(to_networkx(g).to_undirected(), weight="weight")
    child = np.flatnonzero(np.arange(g.num_nodes) != g.source)
    ours = {frozenset((int(ref.pi[v]), int(v))) for v in child}
    assert ours == {frozenset(e) for e in mst.edges()}
    assert np.allclose(ref.dist[child], g.weights[g.edge_ids(ref.pi[child], child)]) and ref.dist[g.source] == 0
    # rooted at the source: the parent is the neighbour on the tree path to the source
    rooted = nx.bfs_predecessors(mst, g.source)
    assert all(ref.pi[v] == u for v, u in rooted)


def test_mst_prim_refuses_directed_graphs() -> None:
    g = build("road_directed")
    assert not applicable("mst_prim", g) and applicable("bellman_ford", g)
    with pytest.raises(ValueError, match=r"road_directed-64: mst_prim needs an undirected graph"):
        exact("mst_prim", g)
    with pytest.raises(ValueError, match="unknown algorithm"):
        exact("dfs", g)


def square(weights=(1.0, 1.0, 1.0, 1.0), extra_node: bool = False) -> SuiteGraph:
    """0 - 1, 0 - 2, 1 - 3, 2 - 3 (a 4-cycle): node 3 has two shortest-path parents when tied."""
    pairs = np.array([[0, 1], [0, 2], [1, 3], [2, 3]])
    edges = np.concatenate([pairs, pairs[:, ::-1]])
    w = np.concatenate([weights, weights])
    return SuiteGraph("hand", "square", 5 if extra_node else 4, edges, w, False, 0)


def test_pointer_accuracy_accepts_tied_bfs_parent_and_penalises_wrong_ones() -> None:
    g = square(weights=(1.0, 5.0, 1.0, 1.0))
    ref = exact("bfs", g)
    assert ref.pi.tolist() == [0, 0, 0, 1] and ref.depth == 2
    assert pointer_accuracy("bfs", g, np.array([0, 0, 0, 1])) == 1.0
    assert pointer_accuracy("bfs", g, np.array([0, 0, 0, 2])) == 1.0  # the other BFS parent
    assert pointer_accuracy("bfs", g, np.array([0, 0, 0, 0])) == 0.75  # 0 -> 3 is no edge
    assert pointer_accuracy("bfs", g, np.array([0, 3, 0, 1])) == 0.75  # 3 is farther than 1
    assert pointer_accuracy("bfs", g, np.array([1, 0, 0, 1])) == 0.75  # the source points to itself
    # with weights the tie is gone: 0 -> 2 costs 5, so 2 is reached through 3 (0 -> 1 -> 3 -> 2 costs 3)
    assert exact("bellman_ford", g).pi.tolist() == [0, 0, 3, 1]
    assert pointer_accuracy("bellman_ford", g, np.array([0, 0, 3, 2])) == 0.75
    assert pointer_accuracy("bellman_ford", g, np.array([0, 0, 0, 1])) == 0.75  # 0 -> 2 is an edge, not shortest
    assert pointer_accuracy("bellman_ford", square(), np.array([0, 0, 0, 2])) == 1.0  # all weights equal: a tie
    # mst_prim: exact match only
    mst = exact("mst_prim", g)
    assert pointer_accuracy("mst_prim", g, mst.pi, mst) == 1.0
    wrong = mst.pi.copy()
    assert mst.pi.tolist() == [0, 0, 3, 1]
    wrong[2] = 0  # an edge, but not in the tree
    assert pointer_accuracy("mst_prim", g, wrong, mst) == 0.75


def test_unreachable_nodes_must_point_to_themselves() -> None:
    g = square(extra_node=True)  # node 4 has no edges
    for algorithm in ALGORITHMS:
        ref = exact(algorithm, g)
        assert ref.pi[4] == 4 and not ref.reachable[4] and ref.hops[4] == -1 and np.isinf(ref.dist[4])
        pred = ref.pi.copy()
        assert pointer_accuracy(algorithm, g, pred, ref) == 1.0
        pred[4] = 3
        assert pointer_accuracy(algorithm, g, pred, ref) == 0.8


def test_scoring_on_a_suite_graph_and_exact_match() -> None:
    g = build("grid", 256)
    ref = exact("bellman_ford", g)
    wrong = ref.pi.copy()
    child = int(np.flatnonzero(ref.pi != np.arange(256))[0])
    wrong[child] = child  # a reachable node pointing to itself
    assert pointer_accuracy("bellman_ford", g, wrong, ref) == pytest.approx(255 / 256)
    assert pointer_correct("dijkstra", g, wrong, ref).sum() == 255  # a Bellman-Ford reference serves Dijkstra
    assert exact_match_fraction("bellman_ford", [g, g], [ref.pi, wrong]) == 0.5
    with pytest.raises(ValueError, match=r"\(256,\) integer array"):
        pointer_accuracy("bellman_ford", g, ref.pi[:10], ref)
    with pytest.raises(ValueError, match=r"\[0, 256\)"):
        pointer_accuracy("bellman_ford", g, np.full(256, 256), ref)
    with pytest.raises(ValueError, match="not bfs"):
        pointer_accuracy("bfs", g, ref.pi, ref)
