"""Dijkstra's single-source shortest paths (CLRS-30 ``dijkstra``).

Each step extracts the queued node with the smallest tentative distance (lowest index on
ties), marks it final and relaxes its edges to unmarked nodes. A node entering the queue
takes the extracted node as its predecessor; a queued node changes predecessor only on a
strictly shorter distance. The trajectory has one step per extracted node after the initial
state, and ends when the queue is empty. Unreached nodes keep d = 0 and point to themselves,
as does the source.

``best_first`` is shared with Prim's algorithm, which differs only in the key a node gets
through an edge (the edge weight instead of the path length).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nar.algorithms.base import BatchTrace, Graphs, stack_hints
from nar.algorithms.spec import AlgorithmSpec, Field, GraphKind, Location, Stage, Type

SPEC = AlgorithmSpec(
    name="dijkstra",
    fields=(
        Field("pos", Stage.INPUT, Location.NODE, Type.SCALAR),
        Field("s", Stage.INPUT, Location.NODE, Type.MASK_ONE),
        Field("A", Stage.INPUT, Location.EDGE, Type.SCALAR, weight_unit=True),
        Field("adj", Stage.INPUT, Location.EDGE, Type.MASK),
        Field("pi_h", Stage.HINT, Location.NODE, Type.POINTER),
        Field("d", Stage.HINT, Location.NODE, Type.SCALAR, weight_unit=True, along=("pi_h", "path")),
        Field("mark", Stage.HINT, Location.NODE, Type.MASK),
        Field("in_queue", Stage.HINT, Location.NODE, Type.MASK),
        Field("u", Stage.HINT, Location.NODE, Type.MASK_ONE),
        Field("pi", Stage.OUTPUT, Location.NODE, Type.POINTER),
    ),
    graph=GraphKind(weighted=True, directed=False, needs_source=True),
    description="single-source shortest paths by greedy extraction of the closest queued node",
)

# edge_key(key_u, w_u) -> key each out-neighbour would get through u; (B, 1), (B, n) -> (B, n)
EdgeKey = Callable[[np.ndarray, np.ndarray], np.ndarray]


def best_first(g: Graphs, key_name: str, edge_key: EdgeKey) -> BatchTrace:
    """Grow a tree from the source by repeatedly extracting the queued node of smallest key."""
    B, n = g.batch_size, g.num_nodes
    rows = np.arange(B)
    one_hot = np.eye(n, dtype=np.uint8)
    key = np.zeros((B, n))
    mark = np.zeros((B, n), dtype=bool)
    in_queue = np.zeros((B, n), dtype=bool)
    in_queue[rows, g.source] = True
    pi = np.tile(np.arange(n, dtype=np.int64), (B, 1))
    u = g.source.astype(np.int64)
    lengths = np.ones(B, dtype=np.int64)

    def snapshot() -> dict[str, np.ndarray]:
        return {
            "pi_h": pi.copy(),
            key_name: key.copy(),
            "mark": mark.astype(np.uint8),
            "in_queue": in_queue.astype(np.uint8),
            "u": one_hot[u],
        }

    steps = [snapshot()]
    while True:
        active = in_queue.any(axis=1)  # (B,): graphs with a node left to extract
        if not active.any():
            break
        # Finished graphs keep their last u, so their padding repeats the final state.
        u = np.where(active, np.argmin(np.where(in_queue, key, np.inf), axis=1), u)
        mark[rows, u] |= active
        in_queue[rows, u] &= ~active
        out = g.adj[rows, u] & ~mark & active[:, None]  # (B, n): edges u -> v to unmarked v
        cand = edge_key(key[rows, u][:, None], g.A[rows, u])  # (B, n)
        improve = out & (~in_queue | (cand < key))
        key = np.where(improve, cand, key)
        pi = np.where(improve, u[:, None], pi)
        in_queue |= improve
        lengths += active
        steps.append(snapshot())

    return BatchTrace(
        inputs={"pos": g.pos, "s": g.source_one_hot(), "A": g.A, "adj": g.adj_with_self_loops()},
        hints=stack_hints(steps),
        outputs={"pi": pi},
        lengths=lengths,
    )


def run(g: Graphs) -> BatchTrace:
    return best_first(g, "d", lambda d_u, w_u: d_u + w_u)
