"""The calling convention shared by every algorithm.

An algorithm is a pure function ``Graphs -> BatchTrace``: numpy in, outputs and hints out,
no randomness, no I/O. It runs on a batch of B graphs that all have n nodes, so the work is
vectorised over graphs (this is what makes generation fast); algorithms that are inherently
sequential per graph (DFS) simply loop over the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nar.algorithms.spec import AlgorithmSpec, Trajectory


@dataclass(frozen=True)
class Graphs:
    """B graphs with n nodes each.

    ``adj`` holds the edges u -> v (``adj[b, u, v]``), never self-loops; undirected graphs are
    symmetric. ``A`` holds the weights, 0 where there is no edge. The ``adj`` *input field* an
    algorithm emits adds self-loops (CLRS convention, handy for message passing); the
    algorithms themselves only use ``edges``.
    """

    A: np.ndarray  # (B, n, n) float64
    adj: np.ndarray  # (B, n, n) bool, no self-loops
    pos: np.ndarray  # (B, n) float64, strictly increasing in node index, in [0, 1)
    source: np.ndarray  # (B,) int64

    def __post_init__(self) -> None:
        B, n = self.pos.shape
        if self.A.shape != (B, n, n) or self.adj.shape != (B, n, n) or self.source.shape != (B,):
            raise ValueError(
                f"inconsistent graph batch: A {self.A.shape}, adj {self.adj.shape}, "
                f"pos {self.pos.shape}, source {self.source.shape}"
            )

    @property
    def batch_size(self) -> int:
        return int(self.pos.shape[0])

    @property
    def num_nodes(self) -> int:
        return int(self.pos.shape[1])

    @classmethod
    def single(
        cls,
        A: np.ndarray,
        adj: np.ndarray | None = None,
        source: int = 0,
        pos: np.ndarray | None = None,
    ) -> Graphs:
        """One graph from a weight matrix (and optionally an explicit adjacency)."""
        A = np.asarray(A, dtype=np.float64)
        n = A.shape[0]
        if adj is None:
            adj = A != 0
        adj = np.asarray(adj, dtype=bool) & ~np.eye(n, dtype=bool)
        if pos is None:
            pos = np.arange(n, dtype=np.float64) / max(n, 1)
        return cls(
            A=np.where(adj, A, 0.0)[None],
            adj=adj[None],
            pos=np.asarray(pos, dtype=np.float64)[None],
            source=np.array([source], dtype=np.int64),
        )

    def adj_with_self_loops(self) -> np.ndarray:
        """(B, n, n) uint8: the ``adj`` input field."""
        return (self.adj | np.eye(self.num_nodes, dtype=bool)).astype(np.uint8)

    def source_one_hot(self) -> np.ndarray:
        """(B, n) uint8: the ``s`` input field."""
        s = np.zeros(self.pos.shape, dtype=np.uint8)
        s[np.arange(self.batch_size), self.source] = 1
        return s


@dataclass
class BatchTrace:
    """Outputs and hints of B graphs.

    ``hints[name]`` is (B, T_max, ...); graph b's trajectory is its first ``lengths[b]`` steps
    (later steps repeat its final state). Step 0 is the initial state; the last step of each
    trajectory equals the outputs.
    """

    inputs: dict[str, np.ndarray]  # (B, ...)
    hints: dict[str, np.ndarray]  # (B, T_max, ...)
    outputs: dict[str, np.ndarray]  # (B, ...)
    lengths: np.ndarray  # (B,) int64

    def trajectory(self, b: int) -> Trajectory:
        t = int(self.lengths[b])
        return Trajectory(
            inputs={k: v[b] for k, v in self.inputs.items()},
            hints={k: v[b, :t] for k, v in self.hints.items()},
            outputs={k: v[b] for k, v in self.outputs.items()},
        )

    def trajectories(self) -> list[Trajectory]:
        return [self.trajectory(b) for b in range(len(self.lengths))]


def stack_hints(steps: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """[{name: (B, ...)}] * T  ->  {name: (B, T, ...)}."""
    return {k: np.stack([s[k] for s in steps], axis=1) for k in steps[0]}


def lengths_from_changes(changed: list[np.ndarray]) -> np.ndarray:
    """Trajectory lengths for loop-until-stable algorithms.

    ``changed[i]`` is (B,) bool: did iteration i change graph b's state? A graph's hints are
    recorded at the start of every iteration up to and including the first one that changes
    nothing, so its length is (index of first unchanged iteration) + 1.
    """
    changed_arr = np.stack(changed, axis=1)  # (B, iterations)
    first_stable = np.argmax(~changed_arr, axis=1)
    return (first_stable + 1).astype(np.int64)


@dataclass(frozen=True)
class Algorithm:
    spec: AlgorithmSpec
    run: Callable[[Graphs], BatchTrace]

    @property
    def name(self) -> str:
        return self.spec.name


def hop_depths(num_nodes: int, edges: np.ndarray, source: int) -> np.ndarray:
    """(N,) BFS hops from ``source`` along the directed ``edges`` (E, 2) u -> v; -1 where unreachable.

    The visible structure's depth: what processor-step counts are estimated from where the
    algorithm's own depth depends on hidden weights (transfer, ``nar.execute``).
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import breadth_first_order

    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    adj = csr_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(num_nodes, num_nodes))
    order, pred = breadth_first_order(adj, source, directed=True, return_predecessors=True)
    depth = np.full(num_nodes, -1, dtype=np.int64)
    depth[source] = 0
    for v in order[1:]:  # BFS order: a node's predecessor is numbered before it
        depth[v] = depth[pred[v]] + 1
    return depth
