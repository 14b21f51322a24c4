from __future__ import annotations

import numpy as np
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

from nar.algorithms import mst_prim
from nar.algorithms.base import Graphs

from .conftest import assert_rooted_tree, csgraph, graph_suite
from .test_bellman_ford import weights
from .test_dijkstra import check_extraction_order


def test_square_with_a_diagonal():
    # Prim from 0 takes 0-1 (1), then 1-2 (2, replacing 0-2 at 2.5), then 2-3 (1, replacing 0-3 at 3).
    A = weights([(0, 1, 1.0), (1, 2, 2.0), (2, 3, 1.0), (3, 0, 3.0), (0, 2, 2.5)], 4)
    t = mst_prim.run(Graphs.single(A)).trajectory(0)
    np.testing.assert_array_equal(t.outputs["pi"], [0, 0, 1, 2])
    np.testing.assert_array_equal(
        t.hints["key"], [[0, 0, 0, 0], [0, 1, 2.5, 3], [0, 1, 2, 3], [0, 1, 2, 1], [0, 1, 2, 1]]
    )
    np.testing.assert_array_equal(np.argmax(t.hints["u"], axis=1), [0, 0, 1, 2, 3])
    np.testing.assert_array_equal(t.hints["pi_h"][1], [0, 0, 0, 0])


def test_all_tied_triangle_keeps_the_first_parent():
    A = weights([(0, 1, 1.0), (1, 2, 1.0), (0, 2, 1.0)], 3)
    t = mst_prim.run(Graphs.single(A, source=1)).trajectory(0)
    np.testing.assert_array_equal(t.outputs["pi"], [1, 1, 1])
    np.testing.assert_array_equal(np.argmax(t.hints["u"], axis=1), [1, 1, 0, 2])


def test_key_is_the_edge_not_the_path():
    # A path 0-1-2 of weight 1 each: Dijkstra's d would be 2 for node 2, Prim's key is 1.
    A = weights([(0, 1, 1.0), (1, 2, 1.0)], 3)
    t = mst_prim.run(Graphs.single(A)).trajectory(0)
    np.testing.assert_array_equal(t.hints["key"][-1], [0, 1, 1])
    np.testing.assert_array_equal(t.outputs["pi"], [0, 0, 1])


def test_disconnected_and_single_node():
    A = weights([(0, 1, 0.5)], 3)
    t = mst_prim.run(Graphs.single(A)).trajectory(0)
    np.testing.assert_array_equal(t.outputs["pi"], [0, 0, 2])
    np.testing.assert_array_equal(t.hints["key"][-1], [0, 0.5, 0])
    assert t.length == 3
    t = mst_prim.run(Graphs.single(np.zeros((1, 1)))).trajectory(0)
    np.testing.assert_array_equal(t.outputs["pi"], [0])


def test_against_scipy_minimum_spanning_tree():
    for g in graph_suite(seed=40, kind=mst_prim.SPEC.graph):
        trace = mst_prim.run(g)
        for b in range(g.batch_size):
            A, adj, s, T = g.A[b], g.adj[b], g.source[b], trace.lengths[b]
            _, label = connected_components(csgraph(A, adj), directed=False)
            comp = label == label[s]
            pi = trace.outputs["pi"][b]
            assert_rooted_tree(pi, s, comp)
            v = np.flatnonzero(comp & (np.arange(g.num_nodes) != s))
            assert adj[pi[v], v].all(), "a tree pointer is not an edge"
            members = np.flatnonzero(comp)
            best = minimum_spanning_tree(csgraph(A[np.ix_(members, members)], adj[np.ix_(members, members)])).sum()
            np.testing.assert_allclose(A[pi[v], v].sum(), best, rtol=0, atol=1e-9)
            np.testing.assert_array_equal(trace.hints["key"][b, T - 1, v], A[pi[v], v])
            assert T == comp.sum() + 1
            np.testing.assert_array_equal(trace.hints["mark"][b, T - 1], comp)
            check_extraction_order(trace, b, "key")
