"""Floyd-Warshall all-pairs shortest paths (CLRS-30 ``floyd_warshall``).

Step k (k = 0 .. n-1) allows node k as an intermediate node: D[i, j] becomes
D[i, k] + D[k, j] where that is strictly shorter, or where j was not yet known to be
reachable from i, and then Pi[i, j] = Pi[k, j]. ``msk`` marks the pairs with a known path.
Pi[i, j] is the predecessor of j on a shortest i -> j path; Pi[i, i] = i, and Pi[i, j] = i
where j is unreachable from i (whose D stays 0), as in CLRS. Step 0 is the initial state
(k shows node 0 there and at step 1, as in CLRS); every graph has n + 1 steps.
"""

from __future__ import annotations

import numpy as np

from nar.algorithms.base import BatchTrace, Graphs
from nar.algorithms.spec import AlgorithmSpec, Field, GraphKind, Location, Stage, Type

SPEC = AlgorithmSpec(
    name="floyd_warshall",
    fields=(
        Field("pos", Stage.INPUT, Location.NODE, Type.SCALAR),
        Field("A", Stage.INPUT, Location.EDGE, Type.SCALAR),
        Field("adj", Stage.INPUT, Location.EDGE, Type.MASK),
        Field("Pi_h", Stage.HINT, Location.EDGE, Type.POINTER),
        Field("D", Stage.HINT, Location.EDGE, Type.SCALAR),
        Field("msk", Stage.HINT, Location.EDGE, Type.MASK),
        Field("k", Stage.HINT, Location.NODE, Type.MASK_ONE),
        Field("Pi", Stage.OUTPUT, Location.EDGE, Type.POINTER),
    ),
    graph=GraphKind(weighted=True, directed=False, needs_source=False),
    description="all-pairs shortest paths by allowing one more intermediate node per step",
)


def run(g: Graphs) -> BatchTrace:
    B, n = g.batch_size, g.num_nodes
    adj = g.adj_with_self_loops()
    # Hints are written in place, step k + 1 from step k: (B, n + 1, n, n) each, the bulk of the work.
    D = np.empty((B, n + 1, n, n))
    Pi = np.empty((B, n + 1, n, n), dtype=np.int64)
    msk = np.empty((B, n + 1, n, n), dtype=bool)
    D[:, 0] = g.A  # the diagonal is 0 (no self-loops)
    Pi[:, 0] = np.arange(n)[:, None]  # Pi[b, i, j] = i
    msk[:, 0] = adj
    for k in range(n):
        d, pi, m = D[:, k], Pi[:, k], msk[:, k]  # (B, n, n) each
        # via[b, i, j]: is there a known path i -> k -> j, and how long is it.
        via = m[:, :, k, None] & m[:, None, k, :]
        cand = d[:, :, k, None] + d[:, None, k, :]
        improve = via & (~m | (cand < d))
        D[:, k + 1] = d
        np.copyto(D[:, k + 1], cand, where=improve)
        Pi[:, k + 1] = pi
        np.copyto(Pi[:, k + 1], pi[:, None, k, :], where=improve)
        np.logical_or(m, via, out=msk[:, k + 1])

    k_hint = np.concatenate([np.eye(n, dtype=np.uint8)[:1], np.eye(n, dtype=np.uint8)])  # (n + 1, n)
    return BatchTrace(
        inputs={"pos": g.pos, "A": g.A, "adj": adj},
        hints={"Pi_h": Pi, "D": D, "msk": msk.view(np.uint8), "k": np.broadcast_to(k_hint, (B, n + 1, n)).copy()},
        outputs={"Pi": Pi[:, n].copy()},
        lengths=np.full(B, n + 1, dtype=np.int64),
    )
