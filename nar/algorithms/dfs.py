"""Depth-first search (CLRS-30 ``dfs``).

Like CLRS, the search starts at node 0 and restarts from the lowest-index white node
whenever the stack empties; neighbours are visited in increasing index order. Every step is
one atomic action, so every graph has exactly 2n + 1 steps (the initial state, then n
discoveries and n finishes, in lock-step across the batch):

* discover: the top of the stack ``u`` has a white out-neighbour; the lowest-index one ``v``
  turns grey, gets ``pi[v] = u`` and its discovery time, and is pushed (``s_prev[v] = u``,
  ``s_last = v``). With an empty stack, the lowest-index white node is discovered as a new
  root ``s`` instead (``u = v = s``, pointing to itself).
* finish: ``u`` has no white out-neighbour; it turns black, gets its finish time and is
  popped (``s_prev[u] = u``, ``s_last`` = the node below, or ``u`` if it was the root).
  ``v = u`` on these steps.

The stack is the linked list ``s_prev`` from ``s_last`` down to the root. The clock ``time``
advances by ``TIME_UNIT`` per step (CLRS's 0.01; d and f are those times, 0 until set).
"""

from __future__ import annotations

import numpy as np

from nar.algorithms.base import BatchTrace, Graphs, stack_hints
from nar.algorithms.spec import AlgorithmSpec, Field, GraphKind, Location, Stage, Type

SPEC = AlgorithmSpec(
    name="dfs",
    fields=(
        Field("pos", Stage.INPUT, Location.NODE, Type.SCALAR),
        Field("A", Stage.INPUT, Location.EDGE, Type.SCALAR),
        Field("adj", Stage.INPUT, Location.EDGE, Type.MASK),
        Field("pi_h", Stage.HINT, Location.NODE, Type.POINTER),
        Field("color", Stage.HINT, Location.NODE, Type.CATEGORICAL, num_categories=3),
        Field("d", Stage.HINT, Location.NODE, Type.SCALAR),
        Field("f", Stage.HINT, Location.NODE, Type.SCALAR),
        Field("s_prev", Stage.HINT, Location.NODE, Type.POINTER),
        Field("s", Stage.HINT, Location.NODE, Type.MASK_ONE),
        Field("u", Stage.HINT, Location.NODE, Type.MASK_ONE),
        Field("v", Stage.HINT, Location.NODE, Type.MASK_ONE),
        Field("s_last", Stage.HINT, Location.NODE, Type.MASK_ONE),
        Field("time", Stage.HINT, Location.GRAPH, Type.SCALAR),
        Field("pi", Stage.OUTPUT, Location.NODE, Type.POINTER),
    ),
    # Only the edges matter; A is the 0/1 adjacency on the unweighted graphs CLRS samples.
    graph=GraphKind(weighted=False, directed=True, needs_source=False),
    description="depth-first search forest with discovery and finish times",
)

TIME_UNIT = 0.01
WHITE, GREY, BLACK = 0, 1, 2
COLORS = np.eye(3, dtype=np.uint8)  # one-hot rows for the color hint


class DepthFirstWalk:
    """A batch of depth-first searches advanced together, one action per graph per step.

    Shared by DFS and topological sort. Node state is (B, n); per-graph registers are (B,).
    """

    def __init__(self, adj: np.ndarray) -> None:
        self.adj = adj  # (B, n, n) bool
        B, n = adj.shape[:2]
        self.rows = np.arange(B)
        self.one_hot = np.eye(n, dtype=np.uint8)
        self.color = np.zeros((B, n), dtype=np.int64)
        self.pi = np.tile(np.arange(n, dtype=np.int64), (B, 1))
        self.s_prev = self.pi.copy()
        self.d = np.zeros((B, n))  # discovery step, 0 until discovered
        self.f = np.zeros((B, n))  # finish step, 0 until finished
        self.s = np.zeros(B, dtype=np.int64)
        self.u = np.zeros(B, dtype=np.int64)
        self.v = np.zeros(B, dtype=np.int64)
        self.s_last = np.zeros(B, dtype=np.int64)
        self.empty = np.ones(B, dtype=bool)  # is the stack empty
        self.finished = np.zeros(B, dtype=bool)  # did the last step finish a node (u)
        self.t = 0

    @property
    def num_steps(self) -> int:
        """Steps after the initial state: one discovery and one finish per node."""
        return 2 * self.adj.shape[1]

    def step(self) -> None:
        self.t += 1
        rows, top = self.rows, self.s_last
        white = self.color == WHITE
        out = self.adj[rows, top] & white  # (B, n): white out-neighbours of the top
        root = self.empty
        discover = root | out.any(axis=1)
        # Lowest index wins: argmax returns the first True.
        node = np.where(root, np.argmax(white, axis=1), np.where(discover, np.argmax(out, axis=1), top))
        parent = np.where(root, node, top)
        below = self.s_prev[rows, top]

        r, x = rows[discover], node[discover]
        self.color[r, x] = GREY
        self.d[r, x] = self.t
        self.pi[r, x] = parent[discover]
        self.s_prev[r, x] = parent[discover]

        fin = ~discover
        r, x = rows[fin], top[fin]
        self.color[r, x] = BLACK
        self.f[r, x] = self.t
        self.s_prev[r, x] = x

        self.s = np.where(root, node, self.s)
        self.u = np.where(discover, parent, top)
        self.v = np.where(discover, node, top)
        self.s_last = np.where(discover, node, below)
        self.empty = fin & (below == top)
        self.finished = fin


def run(g: Graphs) -> BatchTrace:
    walk = DepthFirstWalk(g.adj)
    B, oh = g.batch_size, walk.one_hot

    def snapshot() -> dict[str, np.ndarray]:
        return {
            "pi_h": walk.pi.copy(),
            "color": COLORS[walk.color],
            "d": walk.d * TIME_UNIT,
            "f": walk.f * TIME_UNIT,
            "s_prev": walk.s_prev.copy(),
            "s": oh[walk.s],
            "u": oh[walk.u],
            "v": oh[walk.v],
            "s_last": oh[walk.s_last],
            "time": np.full(B, walk.t * TIME_UNIT),
        }

    steps = [snapshot()]
    for _ in range(walk.num_steps):
        walk.step()
        steps.append(snapshot())

    return BatchTrace(
        inputs={"pos": g.pos, "A": g.A, "adj": g.adj_with_self_loops()},
        hints=stack_hints(steps),
        outputs={"pi": walk.pi.copy()},
        lengths=np.full(B, len(steps), dtype=np.int64),
    )
