"""Prim's minimum spanning tree (CLRS-30 ``mst_prim``).

Dijkstra's loop (see :func:`nar.algorithms.dijkstra.best_first`) with a node's key being the
lightest edge that joins it to the tree so far, not its path length. Each step extracts the
queued node of smallest key (lowest index on ties). The output is the tree rooted at the
source; nodes not connected to the source point to themselves and keep key = 0.
"""

from __future__ import annotations

from nar.algorithms.base import BatchTrace, Graphs
from nar.algorithms.dijkstra import best_first
from nar.algorithms.spec import AlgorithmSpec, Field, GraphKind, Location, Stage, Type

SPEC = AlgorithmSpec(
    name="mst_prim",
    fields=(
        Field("pos", Stage.INPUT, Location.NODE, Type.SCALAR),
        Field("s", Stage.INPUT, Location.NODE, Type.MASK_ONE),
        Field("A", Stage.INPUT, Location.EDGE, Type.SCALAR, weight_unit=True),
        Field("adj", Stage.INPUT, Location.EDGE, Type.MASK),
        Field("pi_h", Stage.HINT, Location.NODE, Type.POINTER),
        Field("key", Stage.HINT, Location.NODE, Type.SCALAR, weight_unit=True, along=("pi_h", "edge")),
        Field("mark", Stage.HINT, Location.NODE, Type.MASK),
        Field("in_queue", Stage.HINT, Location.NODE, Type.MASK),
        Field("u", Stage.HINT, Location.NODE, Type.MASK_ONE),
        Field("pi", Stage.OUTPUT, Location.NODE, Type.POINTER),
    ),
    # Spanning trees are defined on undirected graphs.
    graph=GraphKind(weighted=True, directed=False, needs_source=True),
    description="minimum spanning tree of the source's component by Prim's greedy growth",
)


def run(g: Graphs) -> BatchTrace:
    return best_first(g, "key", lambda key_u, w_u: w_u)
