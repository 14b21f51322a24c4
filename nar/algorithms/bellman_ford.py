"""Bellman-Ford single-source shortest paths (CLRS-30 ``bellman_ford``).

Every iteration relaxes all edges out of reached nodes at once, using the previous
iteration's distances (a synchronous, "parallel" Bellman-Ford, as in CLRS). Ties keep the
current predecessor; a newly reached node takes the lowest-index best predecessor.
The loop stops after the first iteration that changes nothing. Unreached nodes keep d = 0
and point to themselves, as does the source.
"""

from __future__ import annotations

import numpy as np

from nar.algorithms.base import BatchTrace, Graphs, lengths_from_changes, stack_hints
from nar.algorithms.spec import AlgorithmSpec, Field, GraphKind, Location, Stage, Type

SPEC = AlgorithmSpec(
    name="bellman_ford",
    fields=(
        Field("pos", Stage.INPUT, Location.NODE, Type.SCALAR),
        Field("s", Stage.INPUT, Location.NODE, Type.MASK_ONE),
        Field("A", Stage.INPUT, Location.EDGE, Type.SCALAR, weight_unit=True),
        Field("adj", Stage.INPUT, Location.EDGE, Type.MASK),
        Field("pi_h", Stage.HINT, Location.NODE, Type.POINTER),
        Field("d", Stage.HINT, Location.NODE, Type.SCALAR, weight_unit=True, along=("pi_h", "path")),
        Field("msk", Stage.HINT, Location.NODE, Type.MASK),
        Field("pi", Stage.OUTPUT, Location.NODE, Type.POINTER),
    ),
    graph=GraphKind(weighted=True, directed=False, needs_source=True),
    description="single-source shortest paths by synchronous edge relaxation",
)


def run(g: Graphs) -> BatchTrace:
    B, n = g.batch_size, g.num_nodes
    rows = np.arange(B)
    d = np.zeros((B, n))
    msk = np.zeros((B, n), dtype=bool)
    msk[rows, g.source] = True
    pi = np.tile(np.arange(n, dtype=np.int64), (B, 1))

    steps: list[dict[str, np.ndarray]] = []
    changed: list[np.ndarray] = []
    while True:
        steps.append({"pi_h": pi.copy(), "d": d.copy(), "msk": msk.astype(np.uint8)})
        # cand[b, u, v]: distance to v through u, for edges out of reached nodes u.
        cand = np.where(msk[:, :, None] & g.adj, d[:, :, None] + g.A, np.inf)  # (B, n, n)
        best_u = np.argmin(cand, axis=1)  # (B, n): lowest-index best predecessor of each v
        best = np.take_along_axis(cand, best_u[:, None, :], axis=1)[:, 0, :]  # (B, n)
        improve = np.isfinite(best) & (~msk | (best < d))
        d = np.where(improve, best, d)
        pi = np.where(improve, best_u, pi)
        msk |= improve
        changed.append(improve.any(axis=1))
        if not changed[-1].any():
            break

    return BatchTrace(
        inputs={
            "pos": g.pos,
            "s": g.source_one_hot(),
            "A": g.A,
            "adj": g.adj_with_self_loops(),
        },
        hints=stack_hints(steps),
        outputs={"pi": pi},
        lengths=lengths_from_changes(changed),
    )
