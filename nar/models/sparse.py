"""Flat graph batches: G graphs as one graph of V nodes with P message pairs (edge lists).

The dense :class:`~nar.data.batching.Batch` pads every graph to N nodes and holds edge
fields as (B, N, N): fine for CLRS's n <= 64, quadratic for the grids and road networks
users have. A :class:`SparseBatch` holds the same fields on the graph's own pairs::

    node fields   (V[, C])      node pointers: global node indices (V,)
    edge fields   (P[, C])      one row per message pair senders[p] -> receivers[p]
    graph fields  (G[, C])
    hints add a time axis after the first: (V, T[, C]), (P, T[, C]), (G, T[, C]).

The pairs are the dense model's message adjacency (``model.message_adjacency``: the input
graph symmetrised, with self-loops), so a model run on a ``SparseBatch`` computes exactly
what it computes densely, except that pointers choose among a node's message pairs (its
neighbours and itself) instead of among all nodes: every pointer of the algorithms that run
sparsely (bfs, bellman_ford, dijkstra, mst_prim) follows an edge, so the true answer is
always a candidate.

Feature conventions match the dense encoders: a node pointer i -> j is a feature of the
pair (sender i, receiver j); the decoders score "i points to j" on the pair (j -> i), i.e.
among the pairs into i, and feed it back on ``pairs.reverse``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from nar.algorithms.spec import AlgorithmSpec, Field, Location, Stage, Type
from nar.data.batching import Batch
from nar.models.layers import NEG_INF, Pairs, segment_argmax, segment_softmax


@dataclass
class SparseBatch:
    """Fields of G graphs on their message pairs (module docstring for the shapes)."""

    algorithm: str
    inputs: dict[str, Tensor]
    hints: dict[str, Tensor]
    outputs: dict[str, Tensor]
    pairs: Pairs
    lengths: Tensor  # (G,) int64, hint steps per graph
    num_nodes: Tensor  # (G,) int64
    weight_scale: Tensor | None = None  # (G,): weight-unit fields are divided by this (``scale_weights``)

    @property
    def node_offset(self) -> Tensor:
        """(G,) first global node of each graph."""
        return torch.cumsum(self.num_nodes, 0) - self.num_nodes


@dataclass
class SparsePrediction:
    """Logits on a flat batch: node (V[, C]), node pointer (P,) (pair j -> i: "i points to j"),
    edge (P[, C]), graph (G[, C]); hints with a step axis after the first (steps 1..S)."""

    outputs: dict[str, Tensor]
    hints: dict[str, Tensor]
    weight_scale: Tensor | None = None  # (G,)
    # what the output decoders read, for a new decoder in their place (``nar.transfer``'s nar_costs):
    # the input encodings node (V, H) and pair (P, H), and each graph's last processor state (V, H)
    encoded: tuple[Tensor, Tensor] | None = None
    last_hidden: Tensor | None = None


def _check_sparse_field(f: Field) -> None:
    if f.location == Location.EDGE and f.type == Type.POINTER:
        raise ValueError(f"field {f.name!r}: edge pointers need every node triple; this algorithm runs densely only")


def from_dense(spec: AlgorithmSpec, batch: Batch, adj: Tensor) -> SparseBatch:
    """The graphs of ``batch`` on the pairs of ``adj`` (B, N, N) bool [sender, receiver].

    Pairs are ordered by (graph, receiver, sender); padded nodes are dropped.
    """
    mask = batch.node_mask  # (B, N)
    B, N = mask.shape
    gid = torch.cumsum(mask.reshape(-1).long(), 0).reshape(B, N) - 1  # (B, N) global index of real nodes
    offset = torch.cumsum(batch.num_nodes, 0) - batch.num_nodes  # (B,)
    real = mask.unsqueeze(2) & mask.unsqueeze(1)
    b, r, s = (adj & real).transpose(1, 2).nonzero(as_tuple=True)  # sorted by (b, r, s)
    node_graph = torch.arange(B, device=mask.device).repeat_interleave(batch.num_nodes)
    pairs = Pairs(gid[b, s], gid[b, r], node_graph, B)

    def convert(f: Field, value: Tensor, timed: bool) -> Tensor:
        _check_sparse_field(f)
        if f.location == Location.GRAPH:
            return value
        if f.location == Location.NODE:
            if f.type == Type.POINTER:
                value = value + offset.view(B, *([1] * (value.dim() - 1)))
            x = value.transpose(1, 2) if timed else value  # (B, N, T, ...) with time
            return x[mask]
        return value[b, :, s, r] if timed else value[b, s, r]

    def group(stage: Stage, values: dict[str, Tensor]) -> dict[str, Tensor]:
        return {f.name: convert(f, values[f.name], stage == Stage.HINT) for f in spec.by_stage(stage)}

    return SparseBatch(
        algorithm=batch.algorithm,
        inputs=group(Stage.INPUT, batch.inputs),
        hints=group(Stage.HINT, batch.hints),
        outputs=group(Stage.OUTPUT, batch.outputs),
        pairs=pairs,
        lengths=batch.lengths,
        num_nodes=batch.num_nodes,
    )


def weight_input(spec: AlgorithmSpec, needed_by: str) -> str:
    """The name of ``spec``'s one edge input in weight units (``Field.weight_unit``: the edge weights)."""
    names = [f.name for f in spec.inputs if f.weight_unit and f.location == Location.EDGE]
    if len(names) != 1:
        raise ValueError(f"{spec.name}: {needed_by} needs one edge input in weight units, found {names}")
    return names[0]


def edge_mask_input(spec: AlgorithmSpec) -> str:
    """The name of ``spec``'s one edge mask input (which pairs are edges of the graph)."""
    names = [f.name for f in spec.inputs if f.type == Type.MASK and f.location == Location.EDGE]
    if len(names) != 1:
        raise ValueError(f"{spec.name}: along_slack needs one edge mask input, found {names}")
    return names[0]


def eccentricity_scale(spec: AlgorithmSpec, batch: SparseBatch, edge_weight: str = "mean") -> Tensor:
    """(G,) c = max(1, hop eccentricity of the source) x typical edge weight, per graph.

    Hops follow the message pairs (the graph symmetrised); the source is the node of the
    mask_one input; the weights are the weight-unit edge input on the pairs that are edges.
    ``edge_weight``: "mean", or "rms" (the root mean square, which weighs long edges more: where a
    heavy tail of long edges lets few hops span long distances, as along a Delaunay graph's hull,
    distances in mean-weight units reach 1.3-2 times the hop eccentricity against 1.0-1.25 on grids
    and radius graphs). Distances divided by c are O(1) at any size.
    """
    if edge_weight not in ("mean", "rms"):
        raise ValueError(f"edge_weight {edge_weight!r}; allowed: 'mean', 'rms'")
    pairs = batch.pairs
    G, V = pairs.num_graphs, pairs.num_nodes
    sources = [f.name for f in spec.inputs if f.type == Type.MASK_ONE and f.location == Location.NODE]
    if len(sources) != 1:
        raise ValueError(f"{spec.name}: weight_scale needs one source (mask_one) input, found {sources}")
    weight = weight_input(spec, "weight_scale")
    reach = batch.inputs[sources[0]] > 0.5  # (V,)
    ecc = torch.zeros(G, dtype=torch.float32, device=reach.device)
    while True:
        grown = torch.zeros(V, dtype=torch.bool, device=reach.device)
        grown[pairs.receivers[reach[pairs.senders]]] = True
        new = grown & ~reach
        if not bool(new.any()):
            break
        ecc += torch.zeros(G, device=reach.device).index_add_(0, pairs.node_graph, new.float()).clamp(max=1)
        reach |= new
    w = batch.inputs[weight].float()  # (P,)
    edge = (w > 0) & (pairs.senders != pairs.receivers)  # (P,)
    if edge_weight == "rms":
        typical = mean_edge_weight(w * w, edge, pairs.graph, pairs.num_graphs).sqrt()
    else:
        typical = mean_edge_weight(w, edge, pairs.graph, pairs.num_graphs)
    return ecc.clamp(min=1) * typical


def mean_edge_weight(w: Tensor, edge: Tensor, graph: Tensor, num_graphs: int) -> Tensor:
    """(G,) each graph's mean of ``w`` over the entries where ``edge``; ``w``, ``edge`` and ``graph`` (the
    graph of each entry) alike shaped, flat (P,) or dense (B, N, N). 1 where that mean is not positive (no
    edges, or zero weights), so dividing by it is always safe."""
    graph, edge = graph.reshape(-1), edge.reshape(-1)
    total = torch.zeros(num_graphs, device=w.device).index_add_(0, graph, torch.where(edge, w.reshape(-1), 0.0))
    count = torch.zeros(num_graphs, device=w.device).index_add_(0, graph, edge.float())
    mean = total / count.clamp(min=1)
    return torch.where((count > 0) & (mean > 0), mean, torch.ones_like(mean))


def scale_weights(spec: AlgorithmSpec, batch: SparseBatch, scale: Tensor) -> SparseBatch:
    """``batch`` with every weight-unit field divided by its graph's ``scale`` (G,)."""
    pairs = batch.pairs
    per = {Location.NODE: pairs.node_graph, Location.EDGE: pairs.graph}

    def group(values: dict[str, Tensor], stage: Stage) -> dict[str, Tensor]:
        out = dict(values)
        for f in spec.by_stage(stage):
            if f.weight_unit:
                c = scale if f.location == Location.GRAPH else scale[per[f.location]]
                out[f.name] = values[f.name] / c.view(-1, *([1] * (values[f.name].dim() - 1)))
        return out

    return dataclasses.replace(
        batch,
        inputs=group(batch.inputs, Stage.INPUT),
        hints=group(batch.hints, Stage.HINT),
        outputs=group(batch.outputs, Stage.OUTPUT),
        weight_scale=scale,
    )


def sparse_features(f: Field, value: Tensor, pairs: Pairs) -> Tensor:
    """One step of a field in the float form the encoders take (``encoders.to_features``, flat).

    A node pointer (V,) becomes a (P,) indicator: pair s -> r is 1 where pointer[s] == r.
    """
    _check_sparse_field(f)
    if f.type == Type.POINTER:
        return (value[pairs.senders] == pairs.receivers).to(torch.float32)
    return value.to(torch.float32)


def feature_graph(f: Field, pairs: Pairs) -> Tensor | None:
    """The graph of each row of ``f``'s feature form: nodes (V,), pairs (P,) for edge fields and
    node pointers (a pointer is a pair feature), None for graph fields (their rows are the graphs)."""
    if f.location == Location.GRAPH:
        return None
    if f.location == Location.NODE and f.type != Type.POINTER:
        return pairs.node_graph
    return pairs.graph


def sparse_postprocess(f: Field, logits: Tensor, hard: bool, pairs: Pairs) -> Tensor:
    """Decoded logits -> the feature form fed back as the next step's hint (flat ``postprocess``)."""
    if f.type == Type.SCALAR:
        return logits.detach() if hard else logits
    if f.type == Type.MASK:
        return (logits > 0).to(logits.dtype) if hard else torch.sigmoid(logits)
    if f.type == Type.CATEGORICAL:
        if hard:
            return F.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
        return torch.softmax(logits, dim=-1)
    if f.type != Type.POINTER:  # mask_one: a distribution over each graph's nodes
        return _segment_choice(logits, hard, pairs.node_graph, pairs.num_graphs)
    # a pointer: choice[p] on pair p = (j -> i) is P(i points to j), a feature of pair (i -> j). A pair whose
    # reverse is no message pair (a one-way edge j -> i of a flat batch that lists edges only) gets 0: i
    # cannot point to j there, as j -> i would have to be a pair
    choice = pointer_choice(logits, hard, pairs)
    return torch.where(pairs.reverse >= 0, choice[pairs.reverse.clamp(min=0)], torch.zeros_like(choice))


def pointer_choice(logits: Tensor, hard: bool, pairs: Pairs) -> Tensor:
    """(P,) pointer logits -> (P,) on pair j -> i the probability that i points to j (one-hot when ``hard``)."""
    return _segment_choice(logits, hard, pairs.receivers, pairs.num_nodes)


def _segment_choice(logits: Tensor, hard: bool, index: Tensor, size: int) -> Tensor:
    """A distribution over the rows of each segment of ``index``: softmax, or one-hot at the argmax when ``hard``."""
    if hard:
        best = segment_argmax(logits.detach(), index, size)
        return torch.zeros_like(logits).index_fill_(0, best, 1.0)
    return segment_softmax(logits, index, size)


def pointer_predictions(logits: Tensor, pairs: Pairs) -> Tensor:
    """(P,) pointer logits -> (V,) the global node each node points to."""
    return pairs.senders[pairs.argmax_into_receivers(logits)]


def to_dense(spec: AlgorithmSpec, pred: SparsePrediction, sb: SparseBatch, node_mask: Tensor) -> dict[str, dict]:
    """Scatter flat logits back to the dense layout of ``Prediction`` (padding as the dense decoders)."""
    B, N = node_mask.shape
    pairs = sb.pairs
    offset = sb.node_offset
    local = torch.arange(pairs.num_nodes, device=node_mask.device) - offset[pairs.node_graph]  # (V,)
    b, r, s = pairs.graph, local[pairs.receivers], local[pairs.senders]

    def scatter(f: Field, x: Tensor, timed: bool) -> Tensor:
        if f.location == Location.GRAPH:
            return x
        tail = tuple(x.shape[1:])  # ([S,] [C])
        if f.location == Location.NODE and f.type != Type.POINTER:
            fill = NEG_INF if f.type == Type.MASK_ONE else 0.0
            out = x.new_full((B, N, *tail), fill)
            out[node_mask] = x
            return out.transpose(1, 2) if timed else out  # (B, [S,] N, ...)
        fill = NEG_INF if f.type == Type.POINTER else 0.0
        if timed:
            out = x.new_full((B, tail[0], N, N, *tail[1:]), fill)
            idx = (b, slice(None), r, s) if f.type == Type.POINTER else (b, slice(None), s, r)
        else:
            out = x.new_full((B, N, N, *tail), fill)
            idx = (b, r, s) if f.type == Type.POINTER else (b, s, r)
        out[idx] = x
        return out

    fields = {f.name: f for f in spec.fields}
    return {
        "outputs": {k: scatter(fields[k], v, False) for k, v in pred.outputs.items()},
        "hints": {k: scatter(fields[k], v, True) for k, v in pred.hints.items()},
    }
