"""Triplet-GMPNN: the gated MPNN plus triplet reasoning over edges.

Ibarz et al., "A Generalist Neural Algorithmic Learner", LoG 2022 (section 3, "triplet
reasoning", after Dudzik & Veličković 2022). Besides the gated node update of
:mod:`.gmpnn`, every step computes edge latents from triplets of nodes (i, j, k) with
small (``triplet_features`` = 8) features, max-reduced over the first node::

    t_ijk  = ψ_1 z_i + ψ_2 z_j + ψ_3 z_k + ψ_e1 e_ij + ψ_e2 e_ik + ψ_e3 e_jk + ψ_g g   (B, N, N, N, 8)
    e'_jk  = ReLU(φ max_i t_ijk)                                                  (B, N, N, H)

As in CLRS's reference code, e' goes to the decoders (concatenated to the edge features),
not into the node messages. The max runs over real nodes only, so padding never leaks.
The 5-D tensor is built as (ψ_1 z_i + ψ_2 z_j + ψ_e1 e_ij)[i, j] + (ψ_3 z_k + ψ_e2 e_ik)[i, k]
and the terms that do not depend on i are added after the max.
"""

from __future__ import annotations

import torch
from torch import Tensor

from nar.models.layers import EdgeFeatures, apply_edge, linear
from nar.models.processors.base import ProcessorConfig, ProcessorOutput
from nar.models.processors.mpnn import MPNN


class TripletGMPNN(MPNN):
    #: elements of one block of the (B, N, N, N, T) triplet tensor: blocks over i keep it in
    #: cache at inference (n = 64: 2 M elements per graph); with gradients one block is used
    block_elems = 1 << 19

    def __init__(self, config: ProcessorConfig) -> None:
        super().__init__(config)
        H, T = config.hidden, config.triplet_features
        self.t_edge = linear(H, 3 * T)  # ψ_e1, ψ_e2, ψ_e3
        self.t_g = linear(H, T)  # ψ_g
        self.t_out = linear(T, H)  # φ
        self.edge_out_dim = H

    def extra_z_parts(self) -> dict[str, int]:
        T = self.config.triplet_features
        return {"t1": T, "t2": T, "t3": T}  # ψ_1, ψ_2, ψ_3

    def triplets(
        self, zp: dict[str, Tensor], edge_fts: EdgeFeatures | Tensor, graph_fts: Tensor, node_mask: Tensor
    ) -> Tensor:
        """Edge latents (B, N, N, H) from max-reduced triplet features."""
        t1, t2, t3 = zp["t1"], zp["t2"], zp["t3"]  # (B, N, T) each
        e1, e2, e3 = apply_edge(self.t_edge, edge_fts).chunk(3, dim=-1)  # (B, N, N, T): [i,j], [i,k], [j,k]
        g = self.t_g(graph_fts)  # (B, T)
        # The max over i runs in float32 with the T features outermost, (B, T, N, N): the
        # broadcast adds then vectorise over the last node axis (several times faster on CPUs
        # than bf16 with T = 8 innermost); the (B, N, N, T) tensors are small.
        a = (e1 + t1.unsqueeze(2) + t2.unsqueeze(1)).float()  # (B, N_i, N_j, T)
        a = a.masked_fill(~node_mask[:, :, None, None], float("-inf"))  # padded i never wins the max
        b = (e2 + t3.unsqueeze(1)).float()  # (B, N_i, N_k, T)
        tri = _max_over_first(a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2), self.block_elems)  # (B, T, N_j, N_k)
        tri = tri.permute(0, 2, 3, 1) + e3 + g[:, None, None, :]  # (B, N_j, N_k, T)
        return self.t_out(tri).relu()  # (B, N, N, H)

    def forward(
        self,
        node_fts: Tensor,
        edge_fts: EdgeFeatures | Tensor,
        graph_fts: Tensor,
        adj: Tensor,
        hidden: Tensor,
        node_mask: Tensor,
    ) -> ProcessorOutput:
        out, zp = self.step(node_fts, edge_fts, graph_fts, self.message_adjacency(adj, node_mask), hidden)
        return ProcessorOutput(out, self.triplets(zp, edge_fts, graph_fts, node_mask))


def _max_over_first(a: Tensor, b: Tensor, block_elems: int) -> Tensor:
    """max_i (a[:, :, i, j] + b[:, :, i, k]) for a, b (B, T, N, N) -> (B, T, N_j, N_k)."""
    B, T, N, _ = a.shape
    step = N if torch.is_grad_enabled() else max(1, block_elems // max(1, B * N * N * T))
    a, b = a.contiguous(), b.contiguous()
    out = None
    for s in range(0, N, step):
        part = (a[:, :, s : s + step].unsqueeze(4) + b[:, :, s : s + step].unsqueeze(3)).amax(dim=2)
        out = part if out is None else torch.maximum(out, part)
    return out
