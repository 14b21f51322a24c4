"""Exact answers for the scale suite (scipy.sparse.csgraph) and the scoring of predicted pointers.

Independent of ``nar.algorithms`` on purpose: the suite checks the project's processors (and,
indirectly, its algorithm code) against a second implementation.

Pointers follow CLRS: ``pi[v]`` is v's parent in the algorithm's tree; the source and every node
the algorithm never reaches point to themselves. Where several parents are equally correct, the
reference picks one (BFS: the smallest index, as CLRS-30's ``bfs`` does; shortest paths: scipy's
Dijkstra tree), and :func:`pointer_accuracy` accepts any of them:

* ``bfs``: u -> v is an edge and hops(u) = hops(v) - 1;
* ``bellman_ford`` / ``dijkstra``: u -> v is an edge and dist(u) + w(u, v) = dist(v) within a
  relative 1e-9 (generic real weights make such ties rare; grids with equal weights would not);
* ``mst_prim``: only the reference parent (with distinct weights the tree is unique);
* the source and unreachable nodes: only the self-pointer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csgraph

from nar.scale.suite import SuiteGraph

ALGORITHMS = ("bfs", "bellman_ford", "dijkstra", "mst_prim")
SHORTEST_PATHS = frozenset({"bellman_ford", "dijkstra"})  # one answer: the shortest-path tree
UNDIRECTED_ONLY = frozenset({"mst_prim"})
TIE_RTOL = 1e-9


@dataclass(frozen=True, eq=False)
class Reference:
    """The exact outputs of one algorithm on one graph (``eq=False``: arrays; compare with numpy)."""

    algorithm: str
    pi: np.ndarray  # (N,) int64 parent; self at the source and at unreachable nodes
    # (N,) float64: hops (bfs), path length (bellman_ford, dijkstra), or for mst_prim Prim's key: the
    # weight of the tree edge to the parent; 0 at the source, inf where unreachable.
    dist: np.ndarray
    reachable: np.ndarray  # (N,) bool, the source included
    hops: np.ndarray  # (N,) int64 tree edges between the node and the source; -1 where unreachable
    depth: int  # max of hops: how many parallel steps the algorithm needs at least

    @property
    def num_reachable(self) -> int:
        return int(self.reachable.sum())


def applicable(algorithm: str, g: SuiteGraph) -> bool:
    """Whether ``exact(algorithm, g)`` is defined (MST-Prim needs an undirected graph)."""
    _known(algorithm)
    return not (algorithm in UNDIRECTED_ONLY and g.directed)


def _known(algorithm: str) -> None:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; the scale suite has {', '.join(ALGORITHMS)}")


def exact(algorithm: str, g: SuiteGraph) -> Reference:
    """The exact answer of ``algorithm`` from ``g.source`` (ValueError for mst_prim on a directed graph)."""
    if not applicable(algorithm, g):
        raise ValueError(f"{g.name}: {algorithm} needs an undirected graph, and this one has one-way edges")
    n, s = g.num_nodes, g.source
    a = g.adjacency()
    nodes = np.arange(n)
    if algorithm == "bfs":
        dist = csgraph.shortest_path(a, method="D", directed=True, unweighted=True, indices=s)  # (N,) hops
        # CLRS's parent: the smallest-index node of the previous frontier with an edge to v.
        u, v = g.edges[:, 0], g.edges[:, 1]
        valid = _tied(algorithm, g, dist, u, v)
        parent = np.full(n, n, dtype=np.int64)
        np.minimum.at(parent, v[valid], u[valid])
        pi = np.where(parent < n, parent, nodes)
    elif algorithm in SHORTEST_PATHS:
        dist, pred = csgraph.dijkstra(a, directed=True, indices=s, return_predecessors=True)
        pi = np.where(pred < 0, nodes, pred).astype(np.int64)
    else:  # mst_prim: the minimum spanning tree of the source's component, rooted at the source
        forest = csgraph.minimum_spanning_tree(a)
        _, pred = csgraph.breadth_first_order(forest + forest.T, s, directed=False, return_predecessors=True)
        pi = np.where(pred < 0, nodes, pred).astype(np.int64)
        dist = np.full(n, np.inf)
        child = np.flatnonzero(pred >= 0)
        dist[child] = g.weights[g.edge_ids(pi[child], child)]
        dist[s] = 0.0
    reachable = np.isfinite(dist)
    hops = _tree_hops(pi)
    hops[~reachable] = -1
    return Reference(algorithm, pi, np.asarray(dist, dtype=np.float64), reachable, hops, int(hops.max()))


def _tree_hops(pi: np.ndarray) -> np.ndarray:
    """(N,) edges from each node up to its root (a self-pointer) by pointer jumping, O(N log depth)."""
    up = pi.copy()
    hops = (pi != np.arange(len(pi))).astype(np.int64)  # hops[v]: edges from v to up[v]
    while np.any(up[up] != up):
        hops = hops + hops[up]
        up = up[up]
    return hops


def _tied(algorithm: str, g: SuiteGraph, dist: np.ndarray, parents: np.ndarray, children: np.ndarray) -> np.ndarray:
    """(K,) bool: parents[k] -> children[k] is an edge on some shortest path (bfs: in hops) to a
    reachable child other than the source. The one definition of an equally valid parent."""
    e = g.edge_ids(parents, children)  # (K,) edge index or -1
    ok = (e >= 0) & np.isfinite(dist[children]) & (children != g.source)
    if algorithm == "bfs":
        return ok & (dist[parents] == dist[children] - 1)
    through = np.where(ok, dist[parents] + g.weights[np.maximum(e, 0)], 0.0)  # (K,)
    target = np.where(ok, dist[children], 0.0)  # (K,) finite: no inf - inf
    return ok & (np.abs(through - target) <= TIE_RTOL * np.abs(target))


def pointer_correct(algorithm: str, g: SuiteGraph, pred_pi: np.ndarray, ref: Reference | None = None) -> np.ndarray:
    """(N,) bool: which predicted pointers are correct (the reference's or an equally valid parent)."""
    ref = _reference_for(algorithm, g, ref)
    n = g.num_nodes
    pred = np.asarray(pred_pi)
    if pred.shape != (n,) or not np.issubdtype(pred.dtype, np.integer):
        raise ValueError(f"{g.name}: predicted pointers must be an ({n},) integer array, got {pred.dtype} {pred.shape}")
    if n and (pred.min() < 0 or pred.max() >= n):
        raise ValueError(f"{g.name}: predicted pointers must lie in [0, {n})")
    pred = pred.astype(np.int64)
    correct = pred == ref.pi
    if algorithm in UNDIRECTED_ONLY:  # the MST with distinct weights is unique: exact match only
        return correct
    return correct | _tied(algorithm, g, ref.dist, pred, np.arange(n))


def pointer_accuracy(algorithm: str, g: SuiteGraph, pred_pi: np.ndarray, ref: Reference | None = None) -> float:
    """Fraction of all N nodes whose predicted pointer is correct (see the module docstring)."""
    return float(pointer_correct(algorithm, g, pred_pi, ref).mean())


def exact_match_fraction(
    algorithm: str,
    graphs: Sequence[SuiteGraph],
    preds: Sequence[np.ndarray],
    refs: Sequence[Reference] | None = None,
) -> float:
    """Fraction of graphs on which every predicted pointer is correct (CLRS's exact-match score)."""
    if len(graphs) != len(preds) or (refs is not None and len(refs) != len(graphs)):
        raise ValueError("exact_match_fraction needs one prediction (and reference) per graph")
    if not graphs:
        raise ValueError("exact_match_fraction needs at least one graph")
    refs_or_none = list(refs) if refs is not None else [None] * len(graphs)
    triples = zip(graphs, preds, refs_or_none, strict=True)
    hits = [bool(pointer_correct(algorithm, g, p, r).all()) for g, p, r in triples]
    return float(np.mean(hits))


def _reference_for(algorithm: str, g: SuiteGraph, ref: Reference | None) -> Reference:
    _known(algorithm)
    if ref is None:
        return exact(algorithm, g)
    same = ref.algorithm == algorithm or {ref.algorithm, algorithm} <= SHORTEST_PATHS
    if not same or len(ref.pi) != g.num_nodes:
        raise ValueError(f"{g.name}: the reference given is {ref.algorithm} on {len(ref.pi)} nodes, not {algorithm}")
    return ref
