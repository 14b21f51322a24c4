from __future__ import annotations

import dataclasses

import networkx as nx
import numpy as np
import pytest

from nar.algorithms import dfs
from nar.algorithms.base import Graphs

from .conftest import graph_suite

U = dfs.TIME_UNIT


def digraph(adj: np.ndarray) -> nx.DiGraph:
    """networkx visits successors in insertion order: insert them sorted."""
    G = nx.DiGraph()
    G.add_nodes_from(range(adj.shape[0]))
    G.add_edges_from(map(tuple, np.argwhere(adj)))
    return G


def reference(adj: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """networkx's DFS forest (roots in index order) as (pi, discovery step, finish step)."""
    n = adj.shape[0]
    pi, disc, fin = np.arange(n), np.zeros(n, dtype=int), np.zeros(n, dtype=int)
    t = 0
    for u, v, kind in nx.dfs_labeled_edges(digraph(adj)):
        if kind == "forward":
            t += 1
            pi[v], disc[v] = u, t
        elif kind == "reverse":
            t += 1
            fin[v] = t
    return pi, disc, fin


def trace_of(edges, n):
    A = np.zeros((n, n))
    for u, v in edges:
        A[u, v] = 1.0
    return dfs.run(Graphs.single(A)).trajectory(0)


def test_two_trees():
    # 0 -> 1 -> 2 and 0 -> 2; node 3 only points back into the first tree.
    t = trace_of([(0, 1), (0, 2), (1, 2), (3, 1)], 4)
    np.testing.assert_array_equal(t.outputs["pi"], [0, 0, 1, 3])
    assert t.length == 9
    np.testing.assert_allclose(t.hints["d"][-1], np.array([1, 2, 3, 7]) * U)
    np.testing.assert_allclose(t.hints["f"][-1], np.array([6, 5, 4, 8]) * U)
    np.testing.assert_allclose(t.hints["time"], np.arange(9) * U)
    np.testing.assert_array_equal(
        np.argmax(t.hints["color"], axis=-1),
        [
            [0, 0, 0, 0],
            [1, 0, 0, 0],  # discover 0
            [1, 1, 0, 0],  # discover 1 from 0
            [1, 1, 1, 0],  # discover 2 from 1
            [1, 1, 2, 0],  # finish 2
            [1, 2, 2, 0],  # finish 1
            [2, 2, 2, 0],  # finish 0
            [2, 2, 2, 1],  # new root 3
            [2, 2, 2, 2],  # finish 3
        ],
    )
    which = {k: np.argmax(t.hints[k], axis=1).tolist() for k in ("s", "u", "v", "s_last")}
    assert which["s"] == [0, 0, 0, 0, 0, 0, 0, 3, 3]
    assert which["u"] == [0, 0, 0, 1, 2, 1, 0, 3, 3]
    assert which["v"] == [0, 0, 1, 2, 2, 1, 0, 3, 3]
    assert which["s_last"] == [0, 0, 1, 2, 1, 0, 0, 3, 3]
    np.testing.assert_array_equal(
        t.hints["s_prev"],
        [[0, 1, 2, 3], [0, 1, 2, 3], [0, 0, 2, 3], [0, 0, 1, 3], [0, 0, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3],
         [0, 1, 2, 3], [0, 1, 2, 3]],
    )  # fmt: skip


def test_single_node():
    t = trace_of([], 1)
    np.testing.assert_array_equal(t.outputs["pi"], [0])
    assert t.length == 3
    np.testing.assert_allclose(t.hints["f"][-1], [2 * U])


@pytest.mark.parametrize("directed", [True, False])
def test_against_networkx(directed):
    kind = dataclasses.replace(dfs.SPEC.graph, directed=directed)
    for g in graph_suite(seed=60 + directed, kind=kind):
        trace = dfs.run(g)
        n = g.num_nodes
        assert (trace.lengths == 2 * n + 1).all()
        steps = np.arange(2 * n + 1)[:, None]
        for b in range(g.batch_size):
            pi, disc, fin = reference(g.adj[b])
            h = {k: v[b] for k, v in trace.hints.items()}
            np.testing.assert_array_equal(trace.outputs["pi"][b], pi)
            np.testing.assert_allclose(h["d"][-1], disc * U, rtol=0, atol=1e-12)
            np.testing.assert_allclose(h["f"][-1], fin * U, rtol=0, atol=1e-12)
            # Colours follow the discovery and finish steps; grey nodes are the stack, linked by s_prev
            # along tree edges, with s_last the most recently discovered grey node.
            color = (steps >= disc).astype(int) + (steps >= fin)
            np.testing.assert_array_equal(np.argmax(h["color"], axis=-1), color)
            grey = color == 1
            np.testing.assert_array_equal(h["s_prev"], np.where(grey, pi, np.arange(n)))
            np.testing.assert_array_equal(h["pi_h"], np.where(steps >= disc, pi, np.arange(n)))
            on_stack = grey.any(axis=1)
            top = np.argmax(np.where(grey, disc, -1), axis=1)
            np.testing.assert_array_equal(np.argmax(h["s_last"], axis=1)[on_stack], top[on_stack])
