from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nar.algorithms import bellman_ford
from nar.algorithms.base import Graphs

from .conftest import assert_shortest_path_pointers, distances, graph_suite


def weights(edges, n, directed=False):
    A = np.zeros((n, n))
    for u, v, w in edges:
        A[u, v] = w
        if not directed:
            A[v, u] = w
    return A


def test_shortcut_found_on_the_second_iteration():
    # 0-2 directly costs 3, through 1 it costs 2.
    A = weights([(0, 1, 1.0), (1, 2, 1.0), (0, 2, 3.0)], 3)
    t = bellman_ford.run(Graphs.single(A)).trajectory(0)
    np.testing.assert_array_equal(t.outputs["pi"], [0, 0, 1])
    np.testing.assert_array_equal(t.hints["pi_h"], [[0, 1, 2], [0, 0, 0], [0, 0, 1]])
    np.testing.assert_array_equal(t.hints["d"], [[0, 0, 0], [0, 1, 3], [0, 1, 2]])
    np.testing.assert_array_equal(t.hints["msk"], [[1, 0, 0], [1, 1, 1], [1, 1, 1]])


def test_tie_keeps_the_lowest_index_predecessor():
    # Node 3 is at distance 2 through 1 and through 2.
    A = weights([(0, 1, 1.0), (0, 2, 1.0), (1, 3, 1.0), (2, 3, 1.0)], 4)
    t = bellman_ford.run(Graphs.single(A)).trajectory(0)
    np.testing.assert_array_equal(t.outputs["pi"], [0, 0, 0, 1])
    np.testing.assert_array_equal(t.hints["d"][-1], [0, 1, 1, 2])


def test_zero_weight_edge_and_unreached_node():
    adj = np.zeros((3, 3), dtype=bool)
    adj[0, 1] = adj[1, 0] = True
    t = bellman_ford.run(Graphs.single(np.zeros((3, 3)), adj, source=1)).trajectory(0)
    np.testing.assert_array_equal(t.outputs["pi"], [1, 1, 2])
    np.testing.assert_array_equal(t.hints["msk"][-1], [1, 1, 0])
    np.testing.assert_array_equal(t.hints["d"][-1], [0, 0, 0])


def test_single_node():
    t = bellman_ford.run(Graphs.single(np.zeros((1, 1)))).trajectory(0)
    np.testing.assert_array_equal(t.outputs["pi"], [0])
    assert t.length == 1


@pytest.mark.parametrize("directed", [False, True])
def test_against_scipy_shortest_paths(directed):
    kind = dataclasses.replace(bellman_ford.SPEC.graph, directed=directed)
    for g in graph_suite(seed=20 + directed, kind=kind):
        trace = bellman_ford.run(g)
        for b in range(g.batch_size):
            A, adj, s, T = g.A[b], g.adj[b], g.source[b], trace.lengths[b]
            dist = distances(A, adj, s)
            reach = np.isfinite(dist)
            assert_shortest_path_pointers(trace.outputs["pi"][b], dist, A, adj, s)
            d, msk = trace.hints["d"][b, T - 1], trace.hints["msk"][b, T - 1]
            np.testing.assert_array_equal(msk, reach)
            np.testing.assert_allclose(d, np.where(reach, dist, 0.0), rtol=0, atol=1e-9)
            # Synchronous relaxation: at most one iteration per edge of the longest shortest path, plus one.
            assert T <= max(reach.sum(), 1) + 1
