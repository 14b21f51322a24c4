"""The transfer models: new encoders f~ and decoders g~ around a processor P (Veličković & Blundell 2021).

``TransferModel`` (variants nar_frozen, nar_finetune, e2e; they differ only in P)::

    z_v        = NodeNet(raw node features)                    (V, D)  pixels: a small CNN; roads: an MLP
    node_fts_v = W_n z_v + [v is the source] s                 (V, H)
    pair_fts   = W_e [z_u ‖ z_v ‖ EdgeNet(raw edge features)]  (E, H)  edge u -> v
                 self                                          (V, H)  a learned vector per self-loop
    h^0 = 0;  h^{t+1} = P(node_fts, pair_fts, 0, pairs, h^t)   t < steps of the graph (its hop depth)
    logit(u -> v) = w · ReLU(A [node_fts_u ‖ h_u] + B [node_fts_v ‖ h_v] + C pair_fts_uv)
    pointer of v  = softmax over the pairs into v (its in-neighbours and itself)

``CostModel`` (variant bottleneck) predicts one positive scalar per cell (digit grids: the
cost of entering it) or per segment (roads) from the same raw inputs; an exact solver turns
it into the shortest-path tree (:mod:`nar.transfer.solver`).

``CostsThroughNetwork`` (variant nar_costs) puts f~ in the algorithm's own input space: the same cost
network predicts one positive cost per cell or segment, and the whole frozen pretrained network runs
on those costs as on edge weights (its input encoders and weight scale, its processor and hint loop:
the regime it was trained in); a new pointer decoder g~ reads its input encodings and last state::

    c_e        = CostModel(raw inputs)                         (E,)    mean 1 per graph
    node, pair = f(pos, source, A = c, adj)                    (V, H), (P, H)  frozen encoders
    h^T        = the frozen network's step loop on them         (V, H)  processor + hint decoders/encoders
    logit(u -> v) = g~(node, h^T, pair)                        (P,)

P runs through the core's :class:`~nar.models.runner.ProcessorRunner` (the processors' sparse
step on the batch's core ``Pairs``, the dense adapter for processors without one; each graph for
its own step count): a transfer model is the core processor between new encoders and decoders.
"""

from __future__ import annotations

import heapq
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from nar.models.layers import linear, segment_log_softmax
from nar.models.model import EncodeProcessDecode
from nar.models.processors import Processor
from nar.models.runner import ProcessorRunner
from nar.models.sparse import SparseBatch, mean_edge_weight, pointer_predictions
from nar.transfer.graphs import FlatBatch

PIXEL_SIDE = 8


class PixelNet(nn.Module):
    """8x8 grey image (64,) -> (D,): two 3x3 convolutions, a 2x2 max-pool and a linear map."""

    def __init__(self, out: int, channels: int = 16) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.out = linear(2 * channels * (PIXEL_SIDE // 2) ** 2, out)

    def forward(self, x: Tensor) -> Tensor:
        img = x.view(-1, 1, PIXEL_SIDE, PIXEL_SIDE)  # (V, 1, 8, 8)
        return self.out(self.conv(img).flatten(1)).relu()  # (V, D)


class MLP(nn.Module):
    def __init__(self, inp: int, width: int, out: int, layers: int = 2) -> None:
        super().__init__()
        dims = [inp] + [width] * (layers - 1) + [out]
        self.layers = nn.ModuleList(linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x).relu()
        return x


def node_net(kind: Literal["cnn", "mlp"], node_in: int, width: int) -> nn.Module:
    if kind == "cnn":
        if node_in != PIXEL_SIDE**2:
            raise ValueError(f"the pixel CNN reads 8x8 images (64 features), got {node_in}")
        return PixelNet(width)
    return MLP(node_in, width, width)


class Encoder(nn.Module):
    """f~: raw inputs -> node features (V, H) and pair features (P, H); graph features are zero,
    as for the pretrained Bellman-Ford (which has no graph input).

    ``interface="latent"`` (the blueprint): node and edge features are free linear maps of the
    raw-input networks' features. ``interface="scalar"``: everything the raw inputs say goes
    through one scalar per edge, e_uv = softplus(s_uv) a + c (a, c learned vectors), and a node
    only knows whether it is the source: the shape of the inputs the processor saw in
    pretraining (a linear encoding of one weight per edge, a source flag), so a frozen
    processor is not fed features off the manifold it was trained on.
    """

    def __init__(
        self,
        node_kind: Literal["cnn", "mlp"],
        node_in: int,
        edge_in: int,
        width: int,
        hidden: int,
        interface: Literal["latent", "scalar"] = "latent",
    ) -> None:
        super().__init__()
        if interface not in ("latent", "scalar"):
            raise ValueError(f"encoder interface {interface!r}: 'latent' or 'scalar'")
        self.hidden, self.interface = hidden, interface
        self.node_net = node_net(node_kind, node_in, width)
        self.edge_net = MLP(edge_in, width, width) if edge_in else None
        pair_in = 2 * width + (width if edge_in else 0)
        self.source = nn.Parameter(torch.randn(hidden) / hidden**0.5)
        self.self_loop = nn.Parameter(torch.randn(hidden) / hidden**0.5)
        if interface == "latent":
            self.node_out = linear(width, hidden)
            self.pair_out = linear(pair_in, hidden)
        else:
            self.node_bias = nn.Parameter(torch.zeros(hidden))
            self.weight = linear(pair_in, 1)  # the scalar s_uv
            self.weight_in = linear(1, hidden)  # a (weight) and c (bias)

    def forward(self, b: FlatBatch) -> tuple[Tensor, Tensor, Tensor]:
        node, pairs, graph, _ = self.encode(b)
        return node, pairs, graph

    def encode(self, b: FlatBatch) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """Node (V, H), pair (P, H) and graph (G, H) features, and under the scalar interface the per-edge
        scalars softplus(s_uv) (E,) they were made from (None under the latent interface)."""
        z = self.node_net(b.node_x)  # (V, D)
        src, dst = b.edge_src, b.edge_dst
        parts = [z[src], z[dst]]
        if self.edge_net is not None:
            parts.append(self.edge_net(b.edge_x))
        pair_x = torch.cat(parts, dim=-1)  # (E, 2D [+ D])
        flag = b.is_source.unsqueeze(-1) * self.source  # (V, H)
        costs = None
        if self.interface == "latent":
            node = self.node_out(z) + flag  # (V, H)
            edges = self.pair_out(pair_x)  # (E, H)
        else:
            node = flag + self.node_bias
            costs = nn.functional.softplus(self.weight(pair_x))  # (E, 1)
            edges = self.weight_in(costs)  # (E, H)
            costs = costs.squeeze(-1)  # (E,)
        pairs = torch.cat([edges, self.self_loop.expand(b.total_nodes, -1).to(edges.dtype)], dim=0)  # (P, H)
        graph = node.new_zeros(b.num_graphs, self.hidden)
        return node, pairs, graph, costs


class PointerDecoder(nn.Module):
    """g~: one logit per pair u -> v from [node_fts ‖ h] of both ends and the pair features."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.a = linear(2 * hidden, hidden)
        self.b = linear(2 * hidden, hidden)
        self.c = linear(hidden, hidden)
        self.out = linear(hidden, 1)

    def forward(self, node: Tensor, h: Tensor, pairs: Tensor, b: FlatBatch) -> Tensor:
        x = torch.cat([node, h], dim=-1)  # (V, 2H)
        s = self.a(x)[b.pairs.senders] + self.b(x)[b.pairs.receivers] + self.c(pairs)  # (P, H)
        return self.out(s.relu()).squeeze(-1).float()  # (P,), float32 even under bf16 autocast


class TransferModel(nn.Module):
    """f~ -> P (for each graph's number of steps) -> g~ (module docstring)."""

    def __init__(self, encoder: Encoder, processor: Processor, mode: Literal["auto", "sparse", "dense"] = "auto"):
        super().__init__()
        self.encoder = encoder
        self.runner = ProcessorRunner(processor, mode)
        self.decoder = PointerDecoder(processor.config.hidden)

    @property
    def processor(self) -> Processor:
        return self.runner.processor

    def forward(self, b: FlatBatch) -> Tensor:
        """Pointer logits (P,), one per pair u -> v."""
        return self.logits_and_costs(b)[0]

    def logits_and_costs(self, b: FlatBatch) -> tuple[Tensor, Tensor | None]:
        """Pointer logits (P,) and f~'s per-edge scalars (E,) under the scalar interface (else None)."""
        node, pairs, graph, costs = self.encoder.encode(b)
        h = self.runner(node, pairs, graph, b.pairs, b.steps)
        return self.decoder(node, h, pairs, b), costs


class CostsThroughNetwork(nn.Module):
    """nar_costs: f~ = a :class:`CostModel` -> the whole frozen pretrained network on those costs -> g~
    (module docstring). A pointer model to the training code (pointer loss, ``processor`` for the checks
    that it stays frozen)."""

    def __init__(self, costs: CostModel, network: EncodeProcessDecode, algorithm: str) -> None:
        super().__init__()
        from nar.execute import INITIAL_HINTS
        from nar.registry import freeze

        if algorithm not in network.specs or algorithm not in INITIAL_HINTS:
            raise ValueError(f"nar_costs runs {algorithm!r}, which the pretrained network does not execute")
        self.encoder = costs  # f~ (named as TransferModel's, so its edge-feature normalisation is attached)
        self.network = freeze(network)  # no gradients, eval mode: the pretrained f, P, hint loop (and g)
        self.algorithm = algorithm
        self.decoder = PointerDecoder(network.config.hidden)

    @property
    def processor(self) -> Processor:
        return self.network.processor

    def network_batch(self, b: FlatBatch, costs: Tensor) -> SparseBatch:
        """The batch as the pretrained network reads a weighted graph (as ``nar.execute`` encodes one): the
        costs as weights on the edge pairs, 0 on the self-loops; step-0 hints as an execution starts."""
        from nar.execute import initial_hints

        dev, V = costs.device, b.total_nodes
        graph = b.pairs.node_graph  # (V,)
        local = torch.arange(V, device=dev) - torch.as_tensor(b.node_offset, device=dev)[graph]
        n = torch.as_tensor(b.num_nodes, device=dev)
        source = b.is_source.float()  # (V,)
        values = {
            "pos": local.float() / n[graph].float(),
            "s": source,
            "A": torch.cat([costs.float(), costs.new_zeros(V)]),  # (P,): edges, then self-loops
            "adj": torch.ones(b.pairs.senders.shape[0], device=dev),
        }
        spec = self.network.specs[self.algorithm]
        hints = initial_hints(self.algorithm, source)  # {name: (V, 1)}, pointers global over the flat batch
        inputs = {f.name: values[f.name] for f in spec.inputs}
        steps = torch.as_tensor(b.steps, device=dev)
        return SparseBatch(self.algorithm, inputs, hints, {}, b.pairs, steps + 1, n)

    def forward(self, b: FlatBatch) -> Tensor:
        """Pointer logits (P,), one per pair u -> v."""
        return self.logits_and_costs(b)[0]

    def logits_and_costs(self, b: FlatBatch) -> tuple[Tensor, Tensor]:
        """Pointer logits (P,) and f~'s costs (E,) the network ran on."""
        costs = self.encoder(b)
        run = self.network.forward_sparse(self.network_batch(b, costs), keep_hints=False)
        assert run.encoded is not None and run.last_hidden is not None
        node, pairs = run.encoded
        return self.decoder(node, run.last_hidden, pairs, b), costs


def pointer_loss(logits: Tensor, b: FlatBatch) -> Tensor:
    """Mean over nodes of the cross-entropy of the true pointer among each node's candidates."""
    logp = segment_log_softmax(logits, b.pairs.receivers, b.pairs.num_nodes)
    return -logp[b.pi_pair].mean()


def predict_pointers(logits: Tensor, b: FlatBatch) -> Tensor:
    """(V,) global predicted predecessor of each node (the argmax pair's sender)."""
    return pointer_predictions(logits.detach(), b.pairs)


def tree_pointers(logits: Tensor, b: FlatBatch) -> Tensor:
    """(V,) global predecessors that form a tree from each graph's source: grown from the sources, each step
    gives the unreached node with the most probable pointer from a reached node that pointer (Prim on the
    pointer log-probabilities; lowest pair index on ties). Every reached node's chain ends at its source, so
    no predicted path is invalid; a node no source reaches keeps its argmax pointer. Reads the logits only."""
    pairs = b.pairs
    logp = segment_log_softmax(logits.detach().float(), pairs.receivers, pairs.num_nodes).cpu().numpy()  # (P,)
    senders, receivers = pairs.senders.cpu().numpy(), pairs.receivers.cpu().numpy()
    pi = predict_pointers(logits, b).cpu().numpy().copy()  # (V,)
    order = np.argsort(senders, kind="stable")  # pairs grouped by sender
    starts = np.searchsorted(senders[order], np.arange(pairs.num_nodes + 1))  # (V + 1,)
    reached = np.zeros(pairs.num_nodes, dtype=bool)
    heap: list[tuple[float, int]] = []

    def reach(v: int, parent: int) -> None:
        reached[v], pi[v] = True, parent
        for k in order[starts[v] : starts[v + 1]]:
            if not reached[receivers[k]]:
                heapq.heappush(heap, (-float(logp[k]), int(k)))

    for s in torch.nonzero(b.is_source > 0).flatten().tolist():
        reach(s, s)  # the source points to itself
    while heap:
        _, k = heapq.heappop(heap)
        if not reached[receivers[k]]:
            reach(int(receivers[k]), int(senders[k]))
    return torch.as_tensor(pi, device=logits.device)


def graph_edge_mean(values: Tensor, b: FlatBatch) -> Tensor:
    """(E,) for each edge, the mean of ``values`` (E,) over its graph's edges: the cost models' unit (a cost
    of 1 is the graph's average)."""
    graph = b.pairs.graph[: b.total_edges]  # (E,)
    return mean_edge_weight(values, torch.ones_like(graph, dtype=torch.bool), graph, b.num_graphs)[graph]


class ContextRound(nn.Module):
    """One round of neighbour pooling in a cost network: each item (a segment, or a cell) adds what the
    items around it say. Segments meet at nodes: a node's context is the mean of a message from every
    segment touching it (in or out), and a segment reads its two end nodes' context. Cells read the mean
    message of the cells they share an edge with. Why: a per-segment cost sees only its own probes (36 %
    of Helsinki's segments have none), while the congestion field they measure is smooth in space
    (reports/transfer_notes.md §10)::

        m_i  = ReLU(W_m x_i)                                    (I, D)   I items: E segments or V cells
        c_v  = mean of m_i over the items at node v             (V, D)
        x_i += ReLU(W_u [x_i ‖ c_tail(i) ‖ c_head(i)])          (I, F)   cells: [x_v ‖ c_v]
    """

    def __init__(self, dim: int, width: int, per: str) -> None:
        super().__init__()
        self.per = per
        self.message = linear(dim, width)
        self.update = linear(dim + (2 if per == "edge" else 1) * width, dim)

    def forward(self, x: Tensor, b: FlatBatch) -> Tensor:
        m = self.message(x).relu()  # (I, D)
        src, dst = b.edge_src, b.edge_dst  # (E,) global node ids of the real edges
        V = b.total_nodes
        if self.per == "edge":  # segment -> its two end nodes
            at = torch.cat([src, dst])  # (2E,)
            msgs = torch.cat([m, m])  # (2E, D)
        else:  # cell u -> cell v along each edge
            at, msgs = dst, m[src]
        total = m.new_zeros(V, m.shape[1]).index_add(0, at, msgs)
        count = m.new_zeros(V).index_add(0, at, torch.ones_like(at, dtype=m.dtype)).clamp_min(1)
        c = total / count[:, None]  # (V, D)
        ctx = torch.cat([x, c[src], c[dst]], dim=-1) if self.per == "edge" else torch.cat([x, c], dim=-1)
        return x + self.update(ctx).relu()


class CostModel(nn.Module):
    """bottleneck: raw inputs -> one positive cost per edge (digit grids: the cost of entering a cell).

    Costs are softplus outputs divided by their mean over the graph's edges: the solver is
    scale-invariant, and without this the blackbox gradient drifts every cost towards zero (the
    perturbed trees are the true ones, whose paths are longer in hops, so the summed gradient
    is positive). Normalised, a cost of 1 is the graph's average and λ is in those units.
    ``context`` rounds of :class:`ContextRound` let each cost read its neighbours' raw inputs
    (0: each cost from its own segment or cell alone).
    """

    def __init__(
        self, node_kind: Literal["cnn", "mlp"], node_in: int, edge_in: int, width: int, per: str, context: int = 0
    ) -> None:
        super().__init__()
        if per not in ("cell", "edge"):
            raise ValueError(f"cost per {per!r}: 'cell' or 'edge'")
        if context < 0:
            raise ValueError(f"cost network context rounds must be >= 0, got {context}")
        self.per = per
        self.node_net = node_net(node_kind, node_in, width)
        self.edge_net = MLP(edge_in, width, width) if edge_in else None
        inp = width if per == "cell" else 2 * width + (width if edge_in else 0)
        self.context = nn.ModuleList(ContextRound(inp, width, per) for _ in range(context))
        self.out = linear(inp, 1)

    def item_features(self, b: FlatBatch) -> Tensor:
        """(V, D) cell or (E, 2D [+ D]) segment features, after the context rounds."""
        z = self.node_net(b.node_x)  # (V, D)
        if self.per == "cell":
            x = z
        else:
            parts = [z[b.edge_src], z[b.edge_dst]]
            if self.edge_net is not None:
                parts.append(self.edge_net(b.edge_x))
            x = torch.cat(parts, dim=-1)
        for round_ in self.context:
            x = round_(x, b)
        return x

    def forward(self, b: FlatBatch) -> Tensor:
        """(E,) predicted edge costs, mean 1 over each graph's edges."""
        raw = nn.functional.softplus(self.out(self.item_features(b)).squeeze(-1))
        if self.per == "cell":
            raw = raw[b.edge_dst]  # entering v costs cell[v]
        raw = raw + 1e-4
        return raw / graph_edge_mean(raw, b)


class TurnCostModel(CostModel):
    """bottleneck_turns: raw inputs -> one positive cost per segment and one per turn e -> f.

    The segment cost is :class:`CostModel`'s (``per="edge"``); a turn's cost comes from the two
    segments' embeddings [z(tail e), z(head e), x(e)] and the same of f through an MLP (the
    turn angle, the road classes meeting and the junction's control are all in them). Both are
    divided by the graph's mean raw segment cost (scale-free, as the bottleneck's), so the
    exact edge-based solver (:mod:`nar.natural.turns`) runs on the same units.
    """

    def __init__(
        self, node_kind: Literal["cnn", "mlp"], node_in: int, edge_in: int, width: int, context: int = 0
    ) -> None:
        super().__init__(node_kind, node_in, edge_in, width, "edge", context)
        seg = 2 * width + (width if edge_in else 0)
        self.turn_net = MLP(2 * seg, width, width)
        self.turn_out = linear(width, 1)

    def forward(self, b: FlatBatch) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        """((E,) segment costs, (T,) turn costs of the pairs ``b.turn_e`` -> ``b.turn_f``)."""
        if b.turn_e is None or b.turn_f is None:
            raise ValueError("bottleneck_turns needs a turn task (turn_next in the inputs)")
        h = self.item_features(b)  # (E, 3D)
        seg = nn.functional.softplus(self.out(h).squeeze(-1)) + 1e-4
        turn = nn.functional.softplus(self.turn_out(self.turn_net(torch.cat([h[b.turn_e], h[b.turn_f]], dim=-1))))
        scale = graph_edge_mean(seg, b)  # (E,) the graph's mean raw segment cost
        return seg / scale, turn.squeeze(-1) / scale[b.turn_e]
