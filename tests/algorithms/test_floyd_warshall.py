from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nar.algorithms import floyd_warshall
from nar.algorithms.base import Graphs

from .conftest import distances, graph_suite
from .test_bellman_ford import weights


def test_path():
    A = weights([(0, 1, 1.0), (1, 2, 2.0)], 3)
    t = floyd_warshall.run(Graphs.single(A)).trajectory(0)
    np.testing.assert_array_equal(t.outputs["Pi"], [[0, 0, 1], [1, 1, 1], [1, 2, 2]])
    np.testing.assert_array_equal(t.hints["D"][-1], [[0, 1, 3], [1, 0, 2], [3, 2, 0]])
    np.testing.assert_array_equal(t.hints["k"], [[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    # Through node 0 nothing new; through node 1 the pair (0, 2) is joined.
    np.testing.assert_array_equal(t.hints["msk"][1], [[1, 1, 0], [1, 1, 1], [0, 1, 1]])
    np.testing.assert_array_equal(t.hints["msk"][2], np.ones((3, 3)))
    np.testing.assert_array_equal(t.hints["Pi_h"][0], [[0, 0, 0], [1, 1, 1], [2, 2, 2]])
    np.testing.assert_array_equal(t.hints["Pi_h"][2], t.outputs["Pi"])
    np.testing.assert_array_equal(t.hints["D"][0], A)


def test_tie_keeps_the_direct_edge():
    A = weights([(0, 1, 1.0), (1, 2, 1.0), (0, 2, 2.0)], 3)
    t = floyd_warshall.run(Graphs.single(A)).trajectory(0)
    np.testing.assert_array_equal(t.outputs["Pi"], [[0, 0, 0], [1, 1, 1], [2, 2, 2]])


def test_unreachable_pairs_point_to_the_row_node():
    A = weights([(0, 1, 0.5)], 3)
    t = floyd_warshall.run(Graphs.single(A)).trajectory(0)
    np.testing.assert_array_equal(t.outputs["Pi"], [[0, 0, 0], [1, 1, 1], [2, 2, 2]])
    np.testing.assert_array_equal(t.hints["msk"][-1], [[1, 1, 0], [1, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(t.hints["D"][-1], A)


def test_directed_path():
    A = weights([(0, 1, 1.0), (1, 2, 1.0)], 3, directed=True)
    t = floyd_warshall.run(Graphs.single(A)).trajectory(0)
    np.testing.assert_array_equal(t.outputs["Pi"], [[0, 0, 1], [1, 1, 1], [2, 2, 2]])
    np.testing.assert_array_equal(t.hints["msk"][-1], [[1, 1, 1], [0, 1, 1], [0, 0, 1]])


def test_single_node():
    t = floyd_warshall.run(Graphs.single(np.zeros((1, 1)))).trajectory(0)
    np.testing.assert_array_equal(t.outputs["Pi"], [[0]])
    assert t.length == 2


@pytest.mark.parametrize("directed", [False, True])
def test_against_scipy_all_pairs_shortest_paths(directed):
    kind = dataclasses.replace(floyd_warshall.SPEC.graph, directed=directed)
    for g in graph_suite(seed=50 + directed, kind=kind):
        trace = floyd_warshall.run(g)
        n = g.num_nodes
        assert (trace.lengths == n + 1).all()
        np.testing.assert_array_equal(trace.hints["k"][:, 1:], np.broadcast_to(np.eye(n), (g.batch_size, n, n)))
        rows = np.arange(n)[:, None]
        for b in range(g.batch_size):
            A, adj = g.A[b], g.adj[b]
            dist = distances(A, adj)  # (n, n)
            reach = np.isfinite(dist)
            Pi, D, msk = trace.outputs["Pi"][b], trace.hints["D"][b, -1], trace.hints["msk"][b, -1]
            np.testing.assert_array_equal(msk, reach)
            np.testing.assert_allclose(D, np.where(reach, dist, 0.0), rtol=0, atol=1e-9)
            np.testing.assert_array_equal(Pi[~reach], np.broadcast_to(rows, (n, n))[~reach])
            np.testing.assert_array_equal(np.diag(Pi), np.arange(n))
            # Every predecessor is an edge on a shortest path ...
            i, j = np.nonzero(reach & ~np.eye(n, dtype=bool))
            p = Pi[i, j]
            assert adj[p, j].all(), "a predecessor is not an edge"
            np.testing.assert_allclose(dist[i, p] + A[p, j], dist[i, j], rtol=0, atol=1e-9)
            # ... and following predecessors from j leads back to i.
            x = np.broadcast_to(np.arange(n), (n, n))
            for _ in range(n):
                x = np.take_along_axis(Pi, x, axis=1)
            np.testing.assert_array_equal(x, np.broadcast_to(rows, (n, n)))
