from __future__ import annotations

import networkx as nx
import numpy as np

from nar.algorithms import topological_sort
from nar.algorithms.base import Graphs

from .conftest import graph_suite
from .test_dfs import digraph


def order_of(topo: np.ndarray, head: int) -> list[int]:
    """Follow the linked list from its head to the node that points to itself."""
    order = [head]
    while topo[order[-1]] != order[-1] and len(order) <= len(topo):
        order.append(int(topo[order[-1]]))
    return order


def trace_of(edges, n):
    A = np.zeros((n, n))
    for u, v in edges:
        A[u, v] = 1.0
    return topological_sort.run(Graphs.single(A)).trajectory(0)


def test_small_dag():
    # DFS from 0 finishes 2 then 0; the new root 1 finishes last: order 1, 0, 2.
    t = trace_of([(0, 2), (1, 0), (1, 2)], 3)
    np.testing.assert_array_equal(t.outputs["topo"], [2, 0, 2])
    np.testing.assert_array_equal(t.outputs["topo_head"], [0, 1, 0])
    assert order_of(t.outputs["topo"], 1) == [1, 0, 2]
    np.testing.assert_array_equal(
        t.hints["topo_h"], [[0, 1, 2], [0, 1, 2], [0, 1, 2], [0, 1, 2], [2, 1, 2], [2, 1, 2], [2, 0, 2]]
    )
    np.testing.assert_array_equal(np.argmax(t.hints["topo_head_h"], axis=1), [0, 0, 0, 2, 0, 0, 1])


def test_chain_and_single_node():
    t = trace_of([(2, 1), (1, 0)], 3)
    assert order_of(t.outputs["topo"], int(np.argmax(t.outputs["topo_head"]))) == [2, 1, 0]
    t = trace_of([], 1)
    np.testing.assert_array_equal(t.outputs["topo"], [0])
    np.testing.assert_array_equal(t.outputs["topo_head"], [1])


def test_against_networkx():
    for g in graph_suite(seed=70, kind=topological_sort.SPEC.graph):
        trace = topological_sort.run(g)
        n = g.num_nodes
        for b in range(g.batch_size):
            adj = g.adj[b]
            topo, head = trace.outputs["topo"][b], int(np.argmax(trace.outputs["topo_head"][b]))
            order = order_of(topo, head)
            assert sorted(order) == list(range(n)), "the list is not a permutation of the nodes"
            rank = np.empty(n, dtype=int)
            rank[order] = np.arange(n)
            u, v = np.nonzero(adj)
            assert (rank[u] < rank[v]).all(), "an edge points backwards"
            G = digraph(adj)
            assert order == list(reversed(list(nx.dfs_postorder_nodes(G))))
            # Before the end, the list holds exactly the black (finished) nodes.
            color = np.argmax(trace.hints["color"][b], axis=-1)
            for t in (n, 3 * n // 2):
                black = np.flatnonzero(color[t] == 2)
                if len(black):
                    h = int(np.argmax(trace.hints["topo_head_h"][b, t]))
                    assert sorted(order_of(trace.hints["topo_h"][b, t], h)) == list(black)
