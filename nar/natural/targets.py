"""Targets of the natural tasks: the shortest-path tree on the hidden true costs.

The target pointers ``pi`` are the output of a ``nar.algorithms`` shortest-path algorithm
(``bellman_ford`` by default, the one the processor is pretrained on) run on the hidden edge
costs, so an oracle that runs the same algorithm on the same costs reproduces them exactly,
ties included. Ties are real in digit grids (integer cell costs: two routes through the same
digits in another order cost the same), so every example also carries the hidden
``edge_optimal`` mask: u -> v lies on *some* shortest path (d[u] + w(u, v) == d[v]), which a
tie-aware metric can use.

Turn tasks (``road_turns``): the cost of a route is not a sum of per-edge weights, so their
targets come from the exact edge-based solver of :mod:`nar.natural.turns`
(:func:`turn_route_targets`); an example that carries the hidden ``turn_cost`` is routed
there by :func:`oracle_targets` and scored with its turns by :func:`path_regret`.
"""

from __future__ import annotations

import numpy as np

from nar.algorithms import get_algorithm
from nar.algorithms.base import Graphs
from nar.natural.store import FieldSpec
from nar.natural.turns import arrival_optimal, edge_based_tree, route_nodes, route_segments, walk_time

SHORTEST_PATH_ALGORITHMS = ("bellman_ford", "dijkstra")
# Relative tolerance of "d[u] + w == d[v]" for edge_optimal (float64 sums of float32 costs).
OPTIMAL_RTOL = 1e-9


def target_fields(pi_doc: str, cost_doc: str, dist_doc: str) -> tuple[FieldSpec, ...]:
    """The schema fields of every shortest-path task, in schema order: the endpoints (inputs), the targets this
    module computes and the hidden costs they come from. The docs are the task's (they are in its manifests)."""
    return (
        FieldSpec("source", "input", "graph", "int32", index=True),
        FieldSpec("target", "input", "graph", "int32", index=True),
        FieldSpec("pi", "target", "node", "int32", index=True, doc=pi_doc),
        FieldSpec("path", "target", "node", "uint8", doc="nodes on the tree path source -> target"),
        FieldSpec("edge_cost", "hidden", "edge", "float32", doc=cost_doc),
        FieldSpec("dist", "hidden", "node", "float32", doc=dist_doc),
        FieldSpec("edge_optimal", "hidden", "edge", "uint8", doc="edge lies on some shortest path"),
    )


def shortest_path_targets(
    n: int, edge_index: np.ndarray, edge_cost: np.ndarray, source: int, target: int, algorithm: str
) -> dict[str, np.ndarray]:
    """``pi`` (n,), ``path`` (n,) uint8, ``dist`` (n,) float64 and ``edge_optimal`` (E,) uint8.

    ``edge_cost`` should already be what is stored (float32): the targets are computed on
    exactly the values an oracle will read back. Every node must be reachable from
    ``source`` (the samplers guarantee it); ``ValueError`` otherwise.
    """
    if algorithm not in SHORTEST_PATH_ALGORITHMS:
        raise ValueError(f"target algorithm {algorithm!r}: allowed {list(SHORTEST_PATH_ALGORITHMS)}")
    u, v = edge_index[:, 0], edge_index[:, 1]
    w = np.asarray(edge_cost, dtype=np.float64)
    if w.size and w.min() <= 0:
        raise ValueError("edge costs must be > 0")
    A = np.zeros((n, n))
    A[u, v] = w
    adj = np.zeros((n, n), dtype=bool)
    adj[u, v] = True
    pi = get_algorithm(algorithm).run(Graphs.single(A, adj, source)).outputs["pi"][0].astype(np.int64)
    dist = tree_distances(pi, A, source)
    tol = OPTIMAL_RTOL * np.maximum(1.0, dist[v])
    edge_optimal = (np.abs(dist[u] + w - dist[v]) <= tol).astype(np.uint8)
    return {
        "pi": pi,
        "path": path_mask(pi, source, target),
        "dist": dist,
        "edge_optimal": edge_optimal,
    }


def tree_distances(pi: np.ndarray, A: np.ndarray, source: int) -> np.ndarray:
    """Distance of every node along its pointer chain to ``source`` (summed from the source
    outwards, as the algorithms do). ``ValueError`` if a chain does not reach the source."""
    n = len(pi)
    dist = np.full(n, np.nan)
    dist[source] = 0.0
    for v in range(n):
        chain = []
        x = v
        while np.isnan(dist[x]):
            chain.append(x)
            p = int(pi[x])
            if p == x or len(chain) > n:
                raise ValueError(f"node {v} is not reachable from the source {source}")
            x = p
        for y in reversed(chain):
            dist[y] = dist[int(pi[y])] + A[int(pi[y]), y]
    return dist


def path_mask(pi: np.ndarray, source: int, target: int) -> np.ndarray:
    """(n,) uint8: the nodes on the pointer path from ``source`` to ``target`` (both included)."""
    walk = follow_pointers(pi, source, target)
    if walk is None:
        raise ValueError(f"target {target} is not reachable from the source {source}")
    mask = np.zeros(len(pi), dtype=np.uint8)
    mask[walk] = 1
    return mask


def turn_route_targets(
    n: int,
    edge_index: np.ndarray,
    seg_cost: np.ndarray,
    turn_next: np.ndarray,
    turn_cost: np.ndarray,
    source: int,
    target: int,
) -> dict[str, np.ndarray]:
    """Targets of a turn task from the edge-based solver (:mod:`nar.natural.turns`).

    ``pi`` (n,) predecessor on each node's fastest route, ``path`` (n,) uint8 the nodes of the
    fastest route source -> target, ``dist`` (n,) float64, ``edge_optimal`` (E,) uint8 (the
    segment is a fastest arrival at its head), ``seg_dist`` (E,) float64, ``seg_pred`` (E,)
    and ``last_segment`` (n,) int64 (the line-graph tree). Costs should be the stored float32.
    """
    tree = edge_based_tree(n, edge_index, seg_cost, turn_next, turn_cost, source)
    path = np.zeros(n, dtype=np.uint8)
    path[route_nodes(edge_index, route_segments(tree, target), source)] = 1
    return {
        "pi": tree.pi,
        "path": path,
        "dist": tree.dist,
        "edge_optimal": arrival_optimal(edge_index, tree).astype(np.uint8),
        "seg_dist": tree.seg_dist,
        "seg_pred": tree.seg_pred,
        "last_segment": tree.last,
    }


def oracle_targets(example, algorithm: str) -> dict[str, np.ndarray]:
    """The exact algorithm on an example's hidden true costs (the oracle baseline).

    With the split's own algorithm (``NaturalDataset.algorithm``) this reproduces the stored
    ``pi`` and ``path`` exactly, ties included. An example with turn delays (hidden
    ``turn_cost``) is solved by the edge-based solver instead (``algorithm`` unused), which
    reproduces its targets exactly too.
    """
    if "turn_cost" in example.hidden:
        return turn_route_targets(
            example.num_nodes,
            example.edge_index,
            example.hidden["edge_cost"],
            example.inputs["turn_next"],
            example.hidden["turn_cost"],
            example.source,
            example.target,
        )
    return shortest_path_targets(
        example.num_nodes, example.edge_index, example.hidden["edge_cost"], example.source, example.target, algorithm
    )


def follow_pointers(pi: np.ndarray, source: int, target: int, adj: np.ndarray | None = None) -> list[int] | None:
    """The path source -> target given by (predicted) pointers, or None if it is invalid.

    Invalid: the chain from ``target`` revisits a node or points outside the graph, stops at a
    self-pointer other than the source, or (given ``adj`` (n, n) bool) uses a pointer that is not
    an edge (``adj[pi[v], v]`` false).
    """
    n = len(pi)
    walk = [int(target)]
    seen = {int(target)}
    while walk[-1] != source:
        v = walk[-1]
        u = int(pi[v])
        if u == v or not (0 <= u < n) or (adj is not None and not adj[u, v]) or u in seen:
            return None
        walk.append(u)
        seen.add(u)
    return walk[::-1]


def path_regret(example, pred_pi: np.ndarray) -> float | None:
    """Relative regret of the predicted path to the target on the hidden costs:
    cost(predicted path) / cost(true path) - 1, both summed in float64 (0 when optimal, None
    when the predicted pointers give no valid path, 0 when the target is the source).

    With turn delays (hidden ``turn_cost``) the predicted walk is timed with its turns and
    compared with the fastest route's time ``dist[target]``.
    """
    adj = example.adjacency()
    walk = follow_pointers(np.asarray(pred_pi), example.source, example.target, adj)
    if walk is None:
        return None
    h = example.hidden
    turns = (example.inputs["turn_next"], h["turn_cost"]) if "turn_cost" in h else (None, None)
    time = walk_time(example.edge_index, h["edge_cost"], *turns, walk)
    if turns[0] is not None:
        best = float(oracle_targets(example, "")["dist"][example.target])
    else:
        truth = follow_pointers(example.pi, example.source, example.target, adj)
        assert truth is not None, "the stored targets always hold a valid path"
        best = walk_time(example.edge_index, h["edge_cost"], None, None, truth)
    return 0.0 if best == 0 else time / best - 1.0
