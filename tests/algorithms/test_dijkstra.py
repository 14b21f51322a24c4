from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nar.algorithms import dijkstra
from nar.algorithms.base import Graphs

from .conftest import assert_shortest_path_pointers, distances, graph_suite
from .test_bellman_ford import weights


def test_triangle_with_a_tie_keeps_the_first_predecessor():
    # 0-2 directly costs 2, as does 0-1-2: node 2 keeps predecessor 0.
    A = weights([(0, 1, 1.0), (1, 2, 1.0), (0, 2, 2.0)], 3)
    t = dijkstra.run(Graphs.single(A)).trajectory(0)
    np.testing.assert_array_equal(t.outputs["pi"], [0, 0, 0])
    np.testing.assert_array_equal(t.hints["pi_h"], [[0, 1, 2], [0, 0, 0], [0, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(t.hints["d"], [[0, 0, 0], [0, 1, 2], [0, 1, 2], [0, 1, 2]])
    np.testing.assert_array_equal(t.hints["mark"], [[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1]])
    np.testing.assert_array_equal(t.hints["in_queue"], [[1, 0, 0], [0, 1, 1], [0, 0, 1], [0, 0, 0]])
    np.testing.assert_array_equal(t.hints["u"], [[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])


def test_path_with_a_shortcut():
    A = weights([(0, 1, 1.0), (1, 2, 1.0), (0, 2, 3.0), (2, 3, 0.5)], 4)
    t = dijkstra.run(Graphs.single(A)).trajectory(0)
    np.testing.assert_array_equal(t.outputs["pi"], [0, 0, 1, 2])
    np.testing.assert_array_equal(t.hints["d"][-1], [0, 1, 2, 2.5])
    np.testing.assert_array_equal(t.hints["pi_h"][2], [0, 0, 1, 3])  # 2 moved to 1 once 1 was extracted


def test_equal_keys_are_extracted_lowest_index_first():
    A = weights([(2, 0, 1.0), (2, 1, 1.0)], 3)
    t = dijkstra.run(Graphs.single(A, source=2)).trajectory(0)
    np.testing.assert_array_equal(np.argmax(t.hints["u"], axis=1), [2, 2, 0, 1])
    np.testing.assert_array_equal(t.outputs["pi"], [2, 2, 2])


def test_disconnected_and_single_node():
    A = weights([(0, 1, 0.5)], 3)
    t = dijkstra.run(Graphs.single(A, source=2)).trajectory(0)
    np.testing.assert_array_equal(t.outputs["pi"], [0, 1, 2])
    assert t.length == 2
    np.testing.assert_array_equal(t.hints["mark"][-1], [0, 0, 1])
    t = dijkstra.run(Graphs.single(np.zeros((1, 1)))).trajectory(0)
    np.testing.assert_array_equal(t.outputs["pi"], [0])
    assert t.length == 2


def check_extraction_order(trace, b, key_name):
    """Each step extracts the queued node of smallest key, lowest index on ties."""
    T = trace.lengths[b]
    key, in_queue, u = (trace.hints[k][b, :T] for k in (key_name, "in_queue", "u"))
    expected = np.argmin(np.where(in_queue[:-1] == 1, key[:-1], np.inf), axis=1)
    np.testing.assert_array_equal(np.argmax(u[1:], axis=1), expected)
    assert not in_queue[-1].any()


@pytest.mark.parametrize("directed", [False, True])
def test_against_scipy_shortest_paths(directed):
    kind = dataclasses.replace(dijkstra.SPEC.graph, directed=directed)
    for g in graph_suite(seed=30 + directed, kind=kind):
        trace = dijkstra.run(g)
        for b in range(g.batch_size):
            A, adj, s, T = g.A[b], g.adj[b], g.source[b], trace.lengths[b]
            dist = distances(A, adj, s)
            reach = np.isfinite(dist)
            assert_shortest_path_pointers(trace.outputs["pi"][b], dist, A, adj, s)
            assert T == reach.sum() + 1
            np.testing.assert_array_equal(trace.hints["mark"][b, T - 1], reach)
            np.testing.assert_allclose(trace.hints["d"][b, T - 1], np.where(reach, dist, 0.0), rtol=0, atol=1e-9)
            check_extraction_order(trace, b, "d")
            order = np.argmax(trace.hints["u"][b, 1:T], axis=1)
            assert sorted(order) == list(np.flatnonzero(reach))
            assert np.all(np.diff(dist[order]) >= -1e-9), "nodes are not extracted in order of distance"
