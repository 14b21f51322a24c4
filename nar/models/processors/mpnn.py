"""MPNN: message passing with max aggregation over the graph's edges.

Gilmer et al., "Neural Message Passing for Quantum Chemistry", ICML 2017, in the form used
by CLRS-30 (Veličković et al., "The CLRS Algorithmic Reasoning Benchmark", ICML 2022;
their ``PGN`` processor, max aggregation masked by the adjacency)::

    z_i   = [x_i ‖ h_i]                                              (B, N, 2H)
    m_ji  = MLP(ReLU(W_s z_j + W_r z_i + W_e e_ji + W_g g))           (B, N, N, H), j -> i
    a_i   = max_{j : adj_ji} m_ji                                     (B, N, H)
    h_i'  = LN(ReLU(O_1 z_i + O_2 a_i))

x: encoded inputs and hints of the step, h: the previous step's state, e: edge features,
g: graph features. With ``global_max`` the update also reads a max over the whole graph,
q = max_{j in the graph} W_q z_j (B, H), as h_i' = LN(ReLU(O_1 z_i + O_2 a_i + O_3 q)): what
all-pairs messages give a greedy algorithm (the extreme key of the graph) in O(N) a step.
adj includes self-loops, so every node receives at least its own message. The MLP has
``msg_mlp_layers`` linear layers with ReLU between them (CLRS: two).

PyG vocabulary: ``message(x_i, x_j, e_ij, g)``, ``aggregate(msgs, adj)``,
``update(aggr, zp, hidden)``; message tensors are (B, senders, receivers, H) as in CLRS.
The per-node terms of the first message layer are computed on (B, N, H) and only broadcast
over pairs; only the edge term is (B, N, N, H), and it is cached across steps when edges
come as EdgeFeatures. The max over senders adds -inf for non-edges and sends the gradient
to the maximal message only (``layers.masked_max``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nar.models.layers import EdgeFeatures, Pairs, apply_edge, linear, masked_max
from nar.models.processors.base import Processor, ProcessorConfig, ProcessorOutput
from nar.models.processors.gmpnn import Gate


class MPNN(Processor):
    """Max-aggregation MPNN (CLRS-30 PGN); ``gated=True`` adds the gate of :mod:`.gmpnn`.

    All linear maps of z (W_r, W_s, O_1, and the gate's and triplets' terms in subclasses)
    are rows of one matrix ``z_proj``, and all maps of the aggregate (O_2, the gate's) of
    ``a_proj``: one matrix product each instead of one per term (fewer, larger kernels).
    """

    def __init__(self, config: ProcessorConfig) -> None:
        super().__init__(config)
        H = config.hidden
        self.z_parts = {"recv": H, "send": H, "self": H, **self.extra_z_parts()}  # W_r, W_s, O_1, ...
        if config.global_max:
            self.z_parts["pool"] = H  # W_q
            self.pool_out = linear(H, H)  # O_3
        self.a_parts = {"aggr": H}  # O_2
        if config.gated:
            self.z_parts["gate"] = self.a_parts["gate"] = H  # G_1, G_2
            self.gate = Gate(H)
        else:
            self.gate = None
        self.z_proj = linear(2 * H, sum(self.z_parts.values()))
        self.a_proj = linear(H, sum(self.a_parts.values()))
        self.m_edge = linear(H, H)  # W_e
        self.m_graph = linear(H, H)  # W_g
        self.msg_mlp = nn.ModuleList(linear(H, H) for _ in range(config.msg_mlp_layers))
        self.norm = nn.LayerNorm(H) if config.layer_norm else None

    def extra_z_parts(self) -> dict[str, int]:
        """More linear maps of z for subclasses (name -> width)."""
        return {}

    @staticmethod
    def _split(x: Tensor, parts: dict[str, int]) -> dict[str, Tensor]:
        return dict(zip(parts, torch.split(x, list(parts.values()), dim=-1), strict=True))

    # -- PyG vocabulary -------------------------------------------------------------------
    def message(self, x_i: Tensor, x_j: Tensor, e_ij: Tensor, g: Tensor | None) -> Tensor:
        """Messages (B, senders, receivers, H) from the projected parts.

        x_i: receiver term (B, 1, N, H); x_j: sender term (B, N, 1, H);
        e_ij: edge term (B, N, N, H); g: graph term (B, 1, 1, H). On an edge list (the sparse
        step) all are (P, H), one row per pair, and g is None (already added to x_i per node).
        The last MLP layer's bias commutes with the max, so ``aggregate`` adds it on (B, N, H).
        """
        msgs = e_ij + (x_i if g is None else x_i + g) + x_j  # (B, N, N, H)
        for k, layer in enumerate(self.msg_mlp):
            last = k == len(self.msg_mlp) - 1
            msgs = F.linear(msgs.relu(), layer.weight, None if last else layer.bias)
        return msgs

    def aggregate(self, msgs: Tensor, adj: Tensor) -> Tensor:
        """Max over senders with an edge (adj includes self-loops): (B, N, N, H) -> (B, N, H)."""
        neg_bias = torch.zeros(adj.shape, dtype=msgs.dtype, device=msgs.device).masked_fill_(~adj, float("-inf"))
        aggr = masked_max(msgs, neg_bias.unsqueeze(-1))  # (B, N, H)
        if len(self.msg_mlp):
            aggr = aggr + self.msg_mlp[-1].bias.to(aggr.dtype)
        return aggr

    def update(self, aggr: Tensor, zp: dict[str, Tensor], hidden: Tensor, pooled: Tensor | None = None) -> Tensor:
        """h' = LN(ReLU(O_1 z + O_2 a [+ O_3 q])), gated. ``zp``: the projections of z by name; ``pooled``:
        the graph max q of each node's graph, (B, 1, H) dense or (V, H) sparse (``global_max``)."""
        ap = self._split(self.a_proj(aggr), self.a_parts)
        pre = zp["self"] + ap["aggr"]
        if pooled is not None:
            pre = pre + self.pool_out(pooled)
        out = pre.relu()  # (B, N, H)
        if self.norm is not None:
            out = self.norm(out)
        if self.gate is not None:
            out = self.gate(out, zp["gate"] + ap["gate"], hidden)
        return out

    # -------------------------------------------------------------------------------------
    def message_adjacency(self, adj: Tensor, node_mask: Tensor) -> Tensor:
        """(B, N, N) bool: who sends to whom; every real node to every real node with full_adjacency."""
        if not self.config.full_adjacency:
            return adj
        return (node_mask.unsqueeze(2) & node_mask.unsqueeze(1)) | adj

    def step(
        self,
        node_fts: Tensor,
        edge_fts: EdgeFeatures | Tensor,
        graph_fts: Tensor,
        adj: Tensor,
        hidden: Tensor,
        node_mask: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """One message-passing step: (new hidden (B, N, H), projections of z by name). ``node_mask`` (B, N):
        the real nodes, which ``global_max`` pools over (None: every node)."""
        z = _cat(node_fts, hidden)  # (B, N, 2H)
        zp = self._split(self.z_proj(z), self.z_parts)
        x_i = zp["recv"].unsqueeze(1)  # (B, 1, N, H)
        x_j = zp["send"].unsqueeze(2)  # (B, N, 1, H)
        e_ij = apply_edge(self.m_edge, edge_fts)  # (B, N, N, H)
        g = self.m_graph(graph_fts)[:, None, None, :]  # (B, 1, 1, H)
        aggr = self.aggregate(self.message(x_i, x_j, e_ij, g), adj)
        pooled = None
        if self.config.global_max:
            q = zp["pool"]  # (B, N, H); padded nodes take no part in the max
            neg = torch.zeros(q.shape[:2], dtype=q.dtype, device=q.device)
            if node_mask is not None:
                neg = neg.masked_fill(~node_mask, float("-inf"))
            pooled = masked_max(q.unsqueeze(2), neg[:, :, None, None])  # (B, 1, H): senders = all nodes
        return self.update(aggr, zp, hidden, pooled), zp

    def forward(
        self,
        node_fts: Tensor,
        edge_fts: EdgeFeatures | Tensor,
        graph_fts: Tensor,
        adj: Tensor,
        hidden: Tensor,
        node_mask: Tensor,
    ) -> ProcessorOutput:
        out, _ = self.step(node_fts, edge_fts, graph_fts, self.message_adjacency(adj, node_mask), hidden, node_mask)
        return ProcessorOutput(out, None)

    def forward_sparse(
        self, node_fts: Tensor, edge_fts: EdgeFeatures | Tensor, graph_fts: Tensor, pairs: Pairs, hidden: Tensor
    ) -> ProcessorOutput:
        """The same step on an edge list: O(P) time and memory instead of O(N²).

        node_fts (V, H), edge_fts (P, H) (one row per message pair), graph_fts (G, H),
        hidden (V, H); ``pairs`` lists who sends to whom (self-loops included). Gives what
        ``forward`` gives with ``adj`` set on exactly these pairs (tested).
        """
        if not self.supports_sparse:
            raise ValueError(
                f"processor {self.config.kind!r} (full_adjacency {self.config.full_adjacency}) has no sparse step: "
                "sparse messages need kind mpnn or gmpnn with full_adjacency: false"
            )
        z = _cat(node_fts, hidden)  # (V, 2H)
        zp = self._split(self.z_proj(z), self.z_parts)
        g = self.m_graph(graph_fts)  # (G, H)
        recv = zp["recv"] + (g if g.shape[0] == 1 else g[pairs.node_graph])  # (V, H): x_i + g per receiver
        x_i = recv[pairs.receivers]  # (P, H)
        x_j = zp["send"][pairs.senders]  # (P, H)
        e_ij = apply_edge(self.m_edge, edge_fts)  # (P, H)
        msgs = self.message(x_i, x_j, e_ij, None)  # (P, H)
        aggr = pairs.max_into_receivers(msgs)  # (V, H)
        if len(self.msg_mlp):
            aggr = aggr + self.msg_mlp[-1].bias.to(aggr.dtype)
        pooled = None
        if self.config.global_max:  # (G, H) max over each graph's nodes, read by each node of it
            pooled = pairs.max_over_graph(zp["pool"])[pairs.node_graph]  # (V, H)
        return ProcessorOutput(self.update(aggr, zp, hidden, pooled), None)


def _cat(node_fts: Tensor, hidden: Tensor) -> Tensor:
    dtype = torch.promote_types(node_fts.dtype, hidden.dtype)
    return torch.cat([node_fts.to(dtype), hidden.to(dtype)], dim=-1)
