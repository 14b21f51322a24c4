"""Exact edge-based (line-graph) shortest paths with turn costs.

Routing engines that price turns (OSRM, Valhalla, GraphHopper) search over *segment states*
rather than nodes: a state is "having just driven segment e", so the cost of a turn, which
depends on the pair (incoming segment, outgoing segment), is an ordinary arc cost between two
states. This module is that solver on one example, in pure numpy/heapq (no randomness, no I/O).

Inputs (one graph with ``n`` nodes and ``E`` directed segments, ``edge_index`` (E, 2) u -> v):

``seg_cost`` (E,)
    time to drive each segment (> 0).
``turn_next`` (E, K) int
    the turn index: ``turn_next[e, k]`` is the segment f that can follow e (head(e) == tail(f)),
    or -1 for an empty slot. :func:`turn_slots` builds it from ``edge_index``: slot k of e is
    the k-th segment leaving head(e) in edge order (so every turn at a node is listed,
    U-turns included).
``turn_cost`` (E, K)
    delay of the turn e -> turn_next[e, k] (>= 0; ignored in empty slots).

The route from ``source``: its first segment (any segment leaving the source) costs only its
own time; every later step e -> f costs ``turn_cost[e, k] + seg_cost[f]``. Dijkstra over the
states (heap ordered by (time, segment index), strict improvements only) gives, per segment,
``seg_dist`` (the fastest arrival at head(e) having driven e last) and ``seg_pred`` (the
segment before e on that route, -1 when e leaves the source). At the node level:

``dist[v]``   = min over segments e into v of seg_dist[e] (0 at the source);
``last[v]``   = that arrival segment (ties: the lowest segment index; -1 at the source);
``pi[v]``     = tail(last[v]), the predecessor of v on its fastest route (the source points
                to itself). Pointers always decrease ``dist`` strictly (the route to v passes
                pi[v] earlier, and reaching pi[v] at all takes at least dist[pi[v]]), so the
                chains never cycle and always end at the source. They need not spell the
                fastest route itself, though: the fastest route to v may arrive at pi[v] from
                another side than the fastest route to pi[v] does (e.g. it goes straight
                through pi[v], where pi[v]'s own best arrival is a cheap right turn). The route
                itself is :func:`route_segments` (follows ``seg_pred`` back from ``last``).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

# Relative tolerance of "seg_dist[e] == dist[head(e)]" (float64 sums of float32 costs).
OPTIMAL_RTOL = 1e-9


def turn_slots(n: int, edge_index: np.ndarray, slots: int | None = None) -> np.ndarray:
    """(E, K) int64 turn index: slot k of e is the k-th segment leaving head(e) in edge order, -1 if none.

    ``K`` = ``slots`` or the largest out-degree (at least 1). ``ValueError`` if a node has
    more than ``slots`` out-segments.
    """
    ei = np.asarray(edge_index, dtype=np.int64).reshape(-1, 2)
    E = len(ei)
    out: list[list[int]] = [[] for _ in range(n)]
    for e, u in enumerate(ei[:, 0].tolist()):
        out[u].append(e)
    widest = max((len(o) for o in out), default=0)
    K = max(1, widest) if slots is None else int(slots)
    if widest > K:
        raise ValueError(f"a node has {widest} out-segments, more than the {K} turn slots")
    table = np.full((E, K), -1, dtype=np.int64)
    for e, v in enumerate(ei[:, 1].tolist()):
        table[e, : len(out[v])] = out[v]
    return table


def turn_pairs(turn_next: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The used slots of a turn index as flat arrays ``(e, k, f)``, each (T,) int64, in (e, k) order.

    A per-turn model predicts one value per row (the turn e -> f); ``costs[e, k] = values``
    puts them back into the (E, K) layout :func:`edge_based_tree` reads.
    """
    nxt = np.asarray(turn_next, dtype=np.int64)
    e, k = np.nonzero(nxt >= 0)
    return e.astype(np.int64), k.astype(np.int64), nxt[e, k]


@dataclass(frozen=True)
class TurnTree:
    """The edge-based shortest-path solution from one source (module docstring)."""

    seg_dist: np.ndarray  # (E,) float64 seconds
    seg_pred: np.ndarray  # (E,) int64 previous segment, -1 for a first segment
    dist: np.ndarray  # (n,) float64
    last: np.ndarray  # (n,) int64 arrival segment, -1 at the source
    pi: np.ndarray  # (n,) int64 predecessor node, the source points to itself


def edge_based_tree(
    n: int,
    edge_index: np.ndarray,
    seg_cost: np.ndarray,
    turn_next: np.ndarray,
    turn_cost: np.ndarray,
    source: int,
) -> TurnTree:
    """Dijkstra over segment states (module docstring). ``ValueError`` if a node is unreachable."""
    ei = np.asarray(edge_index, dtype=np.int64).reshape(-1, 2)
    w = np.asarray(seg_cost, dtype=np.float64)
    nxt = np.asarray(turn_next, dtype=np.int64)
    tc = np.asarray(turn_cost, dtype=np.float64)
    E = len(ei)
    if w.shape != (E,) or nxt.shape != tc.shape or nxt.shape[0] != E:
        raise ValueError(
            f"shapes: edge_index {ei.shape}, seg_cost {w.shape}, turn_next {nxt.shape}, turn_cost {tc.shape}"
        )
    if E and not (np.isfinite(w).all() and w.min() > 0):
        raise ValueError("segment costs must be finite and > 0")
    used = nxt >= 0
    if not (np.isfinite(tc[used]).all() and (tc[used] >= 0).all()):
        raise ValueError("turn costs must be finite and >= 0")
    if used.any() and (ei[nxt[used], 0] != np.repeat(ei[:, 1], used.sum(axis=1))).any():
        raise ValueError("turn_next holds a segment that does not leave the head of its segment")

    seg_dist = np.full(E, np.inf)
    seg_pred = np.full(E, -1, dtype=np.int64)
    heap: list[tuple[float, int]] = []
    for e in np.flatnonzero(ei[:, 0] == source).tolist():
        seg_dist[e] = w[e]
        heap.append((w[e], e))
    heapq.heapify(heap)
    done = np.zeros(E, dtype=bool)
    rows = [(nxt[e][used[e]].tolist(), tc[e][used[e]].tolist()) for e in range(E)]
    while heap:
        d, e = heapq.heappop(heap)
        if done[e]:
            continue
        done[e] = True
        for f, c in zip(*rows[e], strict=True):
            nd = d + c + w[f]
            if nd < seg_dist[f]:
                seg_dist[f] = nd
                seg_pred[f] = e
                heapq.heappush(heap, (nd, f))

    dist = np.full(n, np.inf)
    last = np.full(n, -1, dtype=np.int64)
    # lowest segment index among the tied minima: visit segments by (time, index)
    for e in np.lexsort((np.arange(E), seg_dist)).tolist():
        v = int(ei[e, 1])
        if seg_dist[e] < dist[v]:
            dist[v] = seg_dist[e]
            last[v] = e
    dist[source] = 0.0
    last[source] = -1
    if not np.isfinite(dist).all():
        raise ValueError(f"node {int(np.flatnonzero(~np.isfinite(dist))[0])} is not reachable from {source}")
    pi = np.where(last >= 0, ei[np.maximum(last, 0), 0], np.arange(n))
    pi[source] = source
    return TurnTree(seg_dist=seg_dist, seg_pred=seg_pred, dist=dist, last=last, pi=pi.astype(np.int64))


def route_segments(tree: TurnTree, target: int) -> list[int]:
    """The segments of the fastest route source -> ``target``, in driving order ([] at the source)."""
    route = []
    e = int(tree.last[target])
    while e >= 0:
        route.append(e)
        if len(route) > len(tree.seg_pred):  # pragma: no cover - Dijkstra's predecessors form a tree
            raise ValueError("seg_pred has a cycle")
        e = int(tree.seg_pred[e])
    return route[::-1]


def route_nodes(edge_index: np.ndarray, segments: list[int], source: int) -> list[int]:
    """The node walk of a segment route (starting at ``source``); nodes may repeat (around the block)."""
    ei = np.asarray(edge_index)
    return [int(source)] + [int(ei[e, 1]) for e in segments]


def walk_time(
    edge_index: np.ndarray,
    seg_cost: np.ndarray,
    turn_next: np.ndarray | None,
    turn_cost: np.ndarray | None,
    walk: list[int],
) -> float:
    """Time of driving the node walk ``walk`` (segments + the turns between them), float64.

    Without a turn index (``turn_next``, ``turn_cost`` None) the walk costs its segments alone: the
    node-based path cost. ``ValueError`` if two consecutive nodes are not joined by a segment. Use it to
    score a predicted path (on a turn task the node-based sum of ``edge_cost`` leaves the turns out).
    """
    ei = np.asarray(edge_index, dtype=np.int64)
    seg_of = {(int(u), int(v)): e for e, (u, v) in enumerate(ei.tolist())}
    try:
        segs = [seg_of[(walk[i], walk[i + 1])] for i in range(len(walk) - 1)]
    except KeyError as exc:
        raise ValueError(f"the walk uses {exc.args[0]}, which is not a segment") from None
    w = np.asarray(seg_cost, dtype=np.float64)
    total = float(sum(w[e] for e in segs))
    if turn_next is None or turn_cost is None:
        return total
    for e, f in zip(segs, segs[1:], strict=False):
        k = int(np.flatnonzero(np.asarray(turn_next[e]) == f)[0])
        total += float(turn_cost[e, k])
    return total


def arrival_optimal(edge_index: np.ndarray, tree: TurnTree) -> np.ndarray:
    """(E,) bool: segment u -> v is a fastest way to arrive at v (seg_dist[e] == dist[v]).

    The tie-aware pointer score counts a predicted pi[v] = u as right exactly when u -> v is
    such a segment (then u is the predecessor of v on *some* fastest route).
    """
    v = np.asarray(edge_index, dtype=np.int64)[:, 1]
    d = tree.dist[v]
    return np.abs(tree.seg_dist - d) <= OPTIMAL_RTOL * np.maximum(1.0, d)
