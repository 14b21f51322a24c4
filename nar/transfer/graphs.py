"""Natural-task examples as flat (PyG-style) graph batches, and the pointer-forest helpers they need.

A digit grid has 4 neighbours per cell, so a dense (B, N, N, H) message step on a 16 x 16 grid
spends 98 % of its work on pairs that are not edges. Transfer therefore works as the core's
sparse batches (:mod:`nar.models.sparse`) do: the B graphs concatenated into one graph of
V nodes, the message *pairs* listed explicitly in the core's :class:`~nar.models.layers.Pairs`
(the processors' sparse step and the segment ops take it), plus the task's fields::

    pairs   = the directed edges u -> v of every graph, then one self-loop per node
    pairs.senders[p] = u, pairs.receivers[p] = v               global node indices

A pair is also a pointer candidate: node v's predecessor is one of its in-neighbours or v
itself (the source points to itself), exactly the pairs with ``pairs.receivers == v``.

Every per-example array is prepared once per split (:class:`FlatSplit`); a batch is a few
concatenations. Processor steps per graph come from the visible structure only: the hop
eccentricity of the source (BFS depth), scaled (see :func:`processor_steps`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from nar.algorithms.base import hop_depths
from nar.models.layers import Pairs
from nar.natural.store import Example, NaturalDataset
from nar.natural.turns import turn_pairs


def hop_eccentricity(n: int, edge_index: np.ndarray, source: int) -> int:
    """Largest BFS hop count from ``source`` to a node it reaches (0 for a lone node)."""
    return int(hop_depths(n, edge_index, source).max())


def processor_steps(eccentricity: np.ndarray, steps_per_hop: float, extra_steps: int, fixed: int = 0) -> np.ndarray:
    """Processor steps per graph: ``fixed`` when > 0, else ceil(steps_per_hop * hops) + extra.

    Bellman-Ford needs (depth of the shortest-path tree in hops) + 1 iterations; the tree's
    depth is hidden (it depends on the costs) but rarely exceeds the BFS depth by much
    (measured: 1.0-1.1x on average, at most 1.8x on roads), hence a factor a little above 1.
    """
    if fixed > 0:
        return np.full(len(eccentricity), fixed, dtype=np.int64)
    return (np.ceil(steps_per_hop * np.asarray(eccentricity, dtype=np.float64)) + extra_steps).astype(np.int64)


def depths(pi: np.ndarray) -> np.ndarray:
    """(V,) hops from each node to the root of its tree in the pointer forest ``pi`` (roots point
    to themselves), by pointer jumping: O(log depth) vectorised rounds. ``ValueError`` on a cycle."""
    idx = np.arange(len(pi))
    depth = (pi != idx).astype(np.int64)  # hops from v to nxt[v]
    nxt = np.asarray(pi, dtype=np.int64).copy()
    for _ in range(2 + int(np.log2(max(len(pi), 1)))):
        if (nxt[nxt] == nxt).all():
            return depth
        depth, nxt = depth + depth[nxt], nxt[nxt]
    raise ValueError("the pointers contain a cycle")


def subtree_sizes(pi: np.ndarray) -> np.ndarray:
    """(V,) number of nodes in each node's subtree of the pointer forest ``pi``."""
    pi = np.asarray(pi, dtype=np.int64)
    depth = depths(pi)
    size = np.ones(len(pi), dtype=np.int64)
    for d in range(int(depth.max(initial=0)), 0, -1):  # children before parents
        nodes = np.flatnonzero(depth == d)
        np.add.at(size, pi[nodes], size[nodes])
    return size


@dataclass
class FlatBatch:
    """B graphs as one flat graph of V nodes, E edges and P = E + V pairs (edges, then self-loops).

    Inputs (a model may read): ``node_x`` (V, F), ``edge_x`` (E, Fe) or None, ``pairs`` (the core's
    :class:`~nar.models.layers.Pairs`: ``senders`` / ``receivers`` (P,), ``node_graph`` (V,),
    ``graph`` (P,)), ``pair_edge`` (P,) (edge index, -1 for a self-loop), ``is_source`` (V,) bool,
    ``source`` / ``target`` (B,) global indices, ``steps`` (B,) processor steps.
    Targets: ``pi`` (V,) global, ``pi_pair`` (V,) the pair (pi[v] -> v), ``tree_edge`` (E,) 0/1,
    ``tree_usage`` (E,) the number of nodes whose target path uses the edge (bottleneck loss).
    Hidden (oracle, metrics, pictures only): ``edge_cost`` (E,), ``edge_optimal`` (E,).
    """

    indices: np.ndarray  # (B,) example indices in the split
    num_nodes: np.ndarray  # (B,) int64
    num_edges: np.ndarray  # (B,) int64
    node_offset: np.ndarray  # (B,) int64: first global node of each graph
    edge_offset: np.ndarray  # (B,) int64
    node_x: Tensor
    edge_x: Tensor | None
    pairs: Pairs  # the message pairs, as the core's sparse batches hold them
    pair_edge: Tensor
    is_source: Tensor
    source: Tensor
    target: Tensor
    steps: Tensor  # (B,)
    pi: Tensor
    pi_pair: Tensor
    tree_edge: Tensor
    tree_usage: Tensor
    edge_cost: Tensor
    edge_optimal: Tensor
    # turn tasks only: the used turn slots as (T,) pairs of global edge indices e -> f (bottleneck_turns)
    turn_e: Tensor | None = None
    turn_f: Tensor | None = None

    @property
    def num_graphs(self) -> int:
        return len(self.num_nodes)

    @property
    def total_nodes(self) -> int:
        return int(self.node_x.shape[0])

    @property
    def total_edges(self) -> int:
        return int(self.num_edges.sum())

    @property
    def edge_src(self) -> Tensor:
        return self.pairs.senders[: self.total_edges]

    @property
    def edge_dst(self) -> Tensor:
        return self.pairs.receivers[: self.total_edges]

    @property
    def max_steps(self) -> int:
        return int(self.steps.max()) if len(self.steps) else 0


class FlatSplit:
    """A natural split prepared for flat batching: per-example arrays concatenated once.

    ``feature_transform`` (optional) maps raw edge features (E, Fe) before they are stored
    (e.g. standardisation); node features are kept as stored (pixels are already in [0, 1]).
    """

    def __init__(
        self,
        dataset: NaturalDataset | Sequence[Example],
        steps_per_hop: float = 1.25,
        extra_steps: int = 2,
        fixed_steps: int = 0,
        max_examples: int | None = None,
    ) -> None:
        examples = list(dataset) if max_examples is None else [dataset[i] for i in range(max_examples)]
        if not examples:
            raise ValueError("cannot prepare an empty split")
        self.examples = examples
        self.task = getattr(dataset, "task", "")
        # column names of the feature fields (the heuristic reads the visible segment length by name)
        self.feature_names: dict[str, list[str]] = dict(getattr(dataset, "feature_names", None) or {})
        n = np.array([ex.num_nodes for ex in examples], dtype=np.int64)
        e = np.array([ex.num_edges for ex in examples], dtype=np.int64)
        self.num_nodes, self.num_edges = n, e
        self.node_start = np.concatenate([[0], np.cumsum(n)]).astype(np.int64)
        self.edge_start = np.concatenate([[0], np.cumsum(e)]).astype(np.int64)
        for i, ex in enumerate(examples):
            key = ex.edge_index[:, 0].astype(np.int64) * ex.num_nodes + ex.edge_index[:, 1]
            if len(np.unique(key)) != len(key) or (ex.edge_index[:, 0] == ex.edge_index[:, 1]).any():
                raise ValueError(f"example {i}: parallel edges or self-loops are not supported")
        self.node_x = np.concatenate([ex.inputs["node_features"] for ex in examples]).astype(np.float32)
        has_edge_x = "edge_features" in examples[0].inputs
        self.edge_x = (
            np.concatenate([ex.inputs["edge_features"] for ex in examples]).astype(np.float32) if has_edge_x else None
        )
        self.edge_index = np.concatenate([ex.edge_index for ex in examples]).astype(np.int64)  # local indices
        self.source = np.array([ex.source for ex in examples], dtype=np.int64)
        self.target = np.array([ex.target for ex in examples], dtype=np.int64)
        self.pi = np.concatenate([ex.pi for ex in examples]).astype(np.int64)  # local
        self.edge_cost = np.concatenate([ex.hidden["edge_cost"] for ex in examples]).astype(np.float32)
        self.edge_optimal = np.concatenate([ex.hidden["edge_optimal"] for ex in examples]).astype(np.float32)
        # turn tasks (road_turns): a route's time includes a delay per turn (hidden turn_cost (E, K) over the
        # visible turn index turn_next (E, K)); the metrics time predicted walks with them and compare with
        # the fastest route, dist[target] (which may pass a node twice: no pointer chain can spell it)
        self.turn_next: list[np.ndarray] | None = None
        self.turn_cost: list[np.ndarray] | None = None
        self.best_time: np.ndarray | None = None
        if "turn_cost" in examples[0].hidden:
            self.turn_next = [np.asarray(ex.inputs["turn_next"], dtype=np.int64) for ex in examples]
            self.turn_cost = [np.asarray(ex.hidden["turn_cost"], dtype=np.float64) for ex in examples]
            self.best_time = np.array([float(ex.hidden["dist"][ex.target]) for ex in examples], dtype=np.float64)
            # the used turn slots as flat (e -> f) pairs of local edge indices, per example (bottleneck_turns)
            pairs = [turn_pairs(t) for t in self.turn_next]
            self.turn_e = np.concatenate([p[0] for p in pairs]).astype(np.int64)
            self.turn_f = np.concatenate([p[2] for p in pairs]).astype(np.int64)
            self.turn_start = np.concatenate([[0], np.cumsum([len(p[0]) for p in pairs])]).astype(np.int64)
        # tree_edge[e] for e = u -> v: pi[v] == u (local indices, per example)
        u, v = self.edge_index[:, 0], self.edge_index[:, 1]
        node_base = np.repeat(self.node_start[:-1], e)
        self.tree_edge = (self.pi[node_base + v] == u).astype(np.float32)
        # pair of each node's target pointer: the edge pi[v] -> v, or the self-loop (-1)
        self.pi_edge = np.full(len(self.pi), -1, dtype=np.int64)
        ids = np.flatnonzero(self.tree_edge > 0)
        self.pi_edge[node_base[ids] + v[ids]] = ids - np.repeat(self.edge_start[:-1], e)[ids]
        sizes = subtree_sizes(self.pi + np.repeat(self.node_start[:-1], n))  # the whole split as one forest
        self.tree_usage = np.where(self.tree_edge > 0, sizes[node_base + v], 0).astype(np.float32)
        self.eccentricity = np.array(
            [hop_eccentricity(ex.num_nodes, ex.edge_index, ex.source) for ex in examples], dtype=np.int64
        )
        self.steps = processor_steps(self.eccentricity, steps_per_hop, extra_steps, fixed_steps)

    def __len__(self) -> int:
        return len(self.examples)

    def edge_stats(self, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray] | None:
        """Mean and std of the edge features of ``indices``; None without edge features."""
        if self.edge_x is None:
            return None
        rows = np.concatenate([np.arange(self.edge_start[i], self.edge_start[i + 1]) for i in indices])
        x = self.edge_x[rows].astype(np.float64)
        return x.mean(axis=0).astype(np.float32), x.std(axis=0).astype(np.float32)

    def batch(self, indices: Sequence[int] | np.ndarray, device: torch.device | str = "cpu") -> FlatBatch:
        idx = np.asarray(indices, dtype=np.int64)
        n, e = self.num_nodes[idx], self.num_edges[idx]
        node_offset = np.concatenate([[0], np.cumsum(n)[:-1]]).astype(np.int64)
        edge_offset = np.concatenate([[0], np.cumsum(e)[:-1]]).astype(np.int64)
        node_rows = np.concatenate([np.arange(self.node_start[i], self.node_start[i + 1]) for i in idx])
        edge_rows = np.concatenate([np.arange(self.edge_start[i], self.edge_start[i + 1]) for i in idx])
        V, E = int(n.sum()), int(e.sum())
        node_graph = np.repeat(np.arange(len(idx)), n)
        edge_graph = np.repeat(np.arange(len(idx)), e)
        eu = self.edge_index[edge_rows, 0] + node_offset[edge_graph]
        ev = self.edge_index[edge_rows, 1] + node_offset[edge_graph]
        nodes = np.arange(V, dtype=np.int64)
        pair_src = np.concatenate([eu, nodes])
        pair_dst = np.concatenate([ev, nodes])
        pair_edge = np.concatenate([np.arange(E, dtype=np.int64), np.full(V, -1, dtype=np.int64)])
        pi = self.pi[node_rows] + node_offset[node_graph]
        pe = self.pi_edge[node_rows]
        pi_pair = np.where(pe >= 0, pe + edge_offset[node_graph], E + nodes)
        source = self.source[idx] + node_offset
        is_source = np.zeros(V, dtype=bool)
        is_source[source] = True
        steps = self.steps[idx]

        def t(a: np.ndarray) -> Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).to(device)

        turn_e = turn_f = None
        if self.turn_next is not None:
            rows = [np.arange(self.turn_start[i], self.turn_start[i + 1]) for i in idx]
            shift = np.concatenate([np.full(len(r), edge_offset[j]) for j, r in enumerate(rows)]).astype(np.int64)
            rows_all = np.concatenate(rows)
            turn_e, turn_f = t(self.turn_e[rows_all] + shift), t(self.turn_f[rows_all] + shift)

        return FlatBatch(
            indices=idx,
            num_nodes=n,
            num_edges=e,
            node_offset=node_offset,
            edge_offset=edge_offset,
            node_x=t(self.node_x[node_rows]),
            edge_x=None if self.edge_x is None else t(self.edge_x[edge_rows]),
            pairs=Pairs(t(pair_src), t(pair_dst), t(node_graph), len(idx)),
            pair_edge=t(pair_edge),
            is_source=t(is_source),
            source=t(source),
            target=t(self.target[idx] + node_offset),
            steps=t(steps),
            pi=t(pi),
            pi_pair=t(pi_pair),
            tree_edge=t(self.tree_edge[edge_rows]),
            tree_usage=t(self.tree_usage[edge_rows]),
            edge_cost=t(self.edge_cost[edge_rows]),
            edge_optimal=t(self.edge_optimal[edge_rows]),
            turn_e=turn_e,
            turn_f=turn_f,
        )

    def batches(self, batch_size: int, device: torch.device | str = "cpu") -> list[FlatBatch]:
        """The whole split as fixed batches, in order (evaluation)."""
        return [self.batch(range(s, min(s + batch_size, len(self))), device) for s in range(0, len(self), batch_size)]
