"""Topological sort of a DAG by depth-first search (CLRS-30 ``topological_sort``).

The search is DFS's (see :class:`nar.algorithms.dfs.DepthFirstWalk`: start at node 0,
restart at the lowest-index white node, neighbours in increasing index order, one discovery
or finish per step, 2n + 1 steps). Each finished node is prepended to the order, which is
kept CLRS-style as a linked list: ``topo[u]`` is the node after u (the last node points to
itself, as do unfinished ones) and ``topo_head`` marks the first node (node 0 until a node
finishes). Following ``topo`` from the head visits the nodes in reverse finishing order,
so every edge u -> v has u before v.
"""

from __future__ import annotations

import numpy as np

from nar.algorithms.base import BatchTrace, Graphs, stack_hints
from nar.algorithms.dfs import COLORS, DepthFirstWalk
from nar.algorithms.spec import AlgorithmSpec, Field, GraphKind, Location, Stage, Type

SPEC = AlgorithmSpec(
    name="topological_sort",
    fields=(
        Field("pos", Stage.INPUT, Location.NODE, Type.SCALAR),
        Field("A", Stage.INPUT, Location.EDGE, Type.SCALAR),
        Field("adj", Stage.INPUT, Location.EDGE, Type.MASK),
        Field("topo_h", Stage.HINT, Location.NODE, Type.POINTER),
        Field("topo_head_h", Stage.HINT, Location.NODE, Type.MASK_ONE),
        Field("color", Stage.HINT, Location.NODE, Type.CATEGORICAL, num_categories=3),
        Field("s_prev", Stage.HINT, Location.NODE, Type.POINTER),
        Field("s", Stage.HINT, Location.NODE, Type.MASK_ONE),
        Field("u", Stage.HINT, Location.NODE, Type.MASK_ONE),
        Field("v", Stage.HINT, Location.NODE, Type.MASK_ONE),
        Field("s_last", Stage.HINT, Location.NODE, Type.MASK_ONE),
        Field("topo", Stage.OUTPUT, Location.NODE, Type.POINTER),
        Field("topo_head", Stage.OUTPUT, Location.NODE, Type.MASK_ONE),
    ),
    graph=GraphKind(weighted=False, directed=True, acyclic=True, needs_source=False),
    description="topological order of a DAG as a linked list, by depth-first search",
)


def run(g: Graphs) -> BatchTrace:
    walk = DepthFirstWalk(g.adj)
    B, n, oh = g.batch_size, g.num_nodes, walk.one_hot
    rows = np.arange(B)
    topo = np.tile(np.arange(n, dtype=np.int64), (B, 1))
    head = np.zeros(B, dtype=np.int64)
    any_finished = np.zeros(B, dtype=bool)

    def snapshot() -> dict[str, np.ndarray]:
        return {
            "topo_h": topo.copy(),
            "topo_head_h": oh[head],
            "color": COLORS[walk.color],
            "s_prev": walk.s_prev.copy(),
            "s": oh[walk.s],
            "u": oh[walk.u],
            "v": oh[walk.v],
            "s_last": oh[walk.s_last],
        }

    steps = [snapshot()]
    for _ in range(walk.num_steps):
        walk.step()
        # Prepend the node this step finished, if any.
        fin = walk.finished
        u = walk.u[fin]
        topo[rows[fin], u] = np.where(any_finished[fin], head[fin], u)
        head = np.where(fin, walk.u, head)
        any_finished |= fin
        steps.append(snapshot())

    return BatchTrace(
        inputs={"pos": g.pos, "A": g.A, "adj": g.adj_with_self_loops()},
        hints=stack_hints(steps),
        outputs={"topo": topo.copy(), "topo_head": oh[head]},
        lengths=np.full(B, len(steps), dtype=np.int64),
    )
