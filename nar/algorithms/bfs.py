"""Breadth-first search (CLRS-30 ``bfs``).

Synchronous frontier expansion: every iteration reaches all unreached nodes with an edge
from an already reached node, using the previous iteration's reach set. A newly reached node
takes the lowest-index reached in-neighbour as its parent. The loop stops after the first
iteration that changes nothing. The source and unreached nodes point to themselves.
"""

from __future__ import annotations

import numpy as np

from nar.algorithms.base import BatchTrace, Graphs, lengths_from_changes, stack_hints
from nar.algorithms.spec import AlgorithmSpec, Field, GraphKind, Location, Stage, Type

SPEC = AlgorithmSpec(
    name="bfs",
    fields=(
        Field("pos", Stage.INPUT, Location.NODE, Type.SCALAR),
        Field("s", Stage.INPUT, Location.NODE, Type.MASK_ONE),
        Field("adj", Stage.INPUT, Location.EDGE, Type.MASK),
        Field("reach_h", Stage.HINT, Location.NODE, Type.MASK),
        Field("pi_h", Stage.HINT, Location.NODE, Type.POINTER),
        Field("pi", Stage.OUTPUT, Location.NODE, Type.POINTER),
    ),
    graph=GraphKind(weighted=False, directed=False, needs_source=True),
    description="breadth-first search tree by synchronous frontier expansion",
)


def run(g: Graphs) -> BatchTrace:
    B, n = g.batch_size, g.num_nodes
    reach = np.zeros((B, n), dtype=bool)
    reach[np.arange(B), g.source] = True
    pi = np.tile(np.arange(n, dtype=np.int64), (B, 1))

    steps: list[dict[str, np.ndarray]] = []
    changed: list[np.ndarray] = []
    while True:
        steps.append({"reach_h": reach.astype(np.uint8), "pi_h": pi.copy()})
        # from_reached[b, u, v]: edge u -> v out of a node u reached before this iteration.
        from_reached = reach[:, :, None] & g.adj  # (B, n, n)
        new = from_reached.any(axis=1) & ~reach  # (B, n)
        pi = np.where(new, np.argmax(from_reached, axis=1), pi)  # argmax: lowest-index parent
        reach |= new
        changed.append(new.any(axis=1))
        if not changed[-1].any():
            break

    return BatchTrace(
        inputs={"pos": g.pos, "s": g.source_one_hot(), "adj": g.adj_with_self_loops()},
        hints=stack_hints(steps),
        outputs={"pi": pi},
        lengths=lengths_from_changes(changed),
    )
