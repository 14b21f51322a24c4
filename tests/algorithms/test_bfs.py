from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nar.algorithms import bfs
from nar.algorithms.base import Graphs

from .conftest import assert_rooted_tree, distances, graph_suite


def trace_of(edges, n, source=0, directed=False):
    A = np.zeros((n, n))
    for u, v in edges:
        A[u, v] = 1.0
        if not directed:
            A[v, u] = 1.0
    return bfs.run(Graphs.single(A, source=source)).trajectory(0)


def test_path():
    t = trace_of([(0, 1), (1, 2), (2, 3)], 4)
    np.testing.assert_array_equal(t.outputs["pi"], [0, 0, 1, 2])
    np.testing.assert_array_equal(t.hints["reach_h"], [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]])
    np.testing.assert_array_equal(t.hints["pi_h"], [[0, 1, 2, 3], [0, 0, 2, 3], [0, 0, 1, 3], [0, 0, 1, 2]])


def test_source_in_the_middle():
    t = trace_of([(0, 1), (1, 2), (2, 3)], 4, source=2)
    np.testing.assert_array_equal(t.outputs["pi"], [1, 2, 2, 2])
    np.testing.assert_array_equal(t.hints["reach_h"], [[0, 0, 1, 0], [0, 1, 1, 1], [1, 1, 1, 1]])


def test_tie_takes_the_lowest_index_parent():
    # The square 0-1-3-2-0: node 3 is reached from 1 and 2 at once.
    t = trace_of([(0, 1), (0, 2), (1, 3), (2, 3)], 4)
    np.testing.assert_array_equal(t.outputs["pi"], [0, 0, 0, 1])
    assert t.length == 3


def test_disconnected_and_single_node():
    t = trace_of([(0, 1)], 3, source=2)
    np.testing.assert_array_equal(t.outputs["pi"], [0, 1, 2])
    np.testing.assert_array_equal(t.hints["reach_h"], [[0, 0, 1]])
    t = trace_of([], 1)
    np.testing.assert_array_equal(t.outputs["pi"], [0])
    assert t.length == 1


def test_directed_edges_are_followed_one_way():
    t = trace_of([(1, 0), (1, 2)], 3, source=0, directed=True)
    np.testing.assert_array_equal(t.outputs["pi"], [0, 1, 2])
    t = trace_of([(1, 0), (1, 2)], 3, source=1, directed=True)
    np.testing.assert_array_equal(t.outputs["pi"], [1, 1, 1])


@pytest.mark.parametrize("directed", [False, True])
def test_against_scipy_hop_distances(directed):
    kind = dataclasses.replace(bfs.SPEC.graph, directed=directed)
    for g in graph_suite(seed=10 + directed, kind=kind):
        trace = bfs.run(g)
        for b in range(g.batch_size):
            adj, s = g.adj[b], g.source[b]
            hop = distances(g.A[b], adj, s, unweighted=True)
            reach = np.isfinite(hop)
            pi = trace.outputs["pi"][b]
            assert_rooted_tree(pi, s, reach)
            # Parent: the lowest-index in-neighbour one hop closer to the source.
            closer = adj & (hop[:, None] == hop[None, :] - 1)  # (u, v)
            v = np.flatnonzero(reach & (np.arange(g.num_nodes) != s))
            np.testing.assert_array_equal(pi[v], np.argmax(closer[:, v], axis=0))
            # One step per BFS level, then the step that changes nothing.
            T = trace.lengths[b]
            assert T == hop[reach].max() + 1
            steps = np.arange(T)[:, None]
            np.testing.assert_array_equal(trace.hints["reach_h"][b, :T], hop[None, :] <= steps)
            expected_pi_h = np.where((hop[None, :] <= steps), pi, np.arange(g.num_nodes))
            np.testing.assert_array_equal(trace.hints["pi_h"][b, :T], expected_pi_h)
