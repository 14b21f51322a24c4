"""Gated MPNN: the max-aggregation MPNN with a gated state update.

Ibarz et al., "A Generalist Neural Algorithmic Learner", LoG 2022 (section 3, "gating
mechanisms"): most nodes keep their state at most steps of most algorithms, so the update
is gated, with the gate biased towards keeping the old state at initialisation::

    h̃_i   = LN(ReLU(O_1 z_i + O_2 a_i))                     (as in mpnn)
    γ_i   = σ(G_3 ReLU(G_1 z_i + G_2 a_i)),  G_3 bias = -3
    h_i'  = γ_i ⊙ h̃_i + (1 - γ_i) ⊙ h_i

with z_i = [x_i ‖ h_i] and a_i the max-aggregated messages of :mod:`.mpnn`. The kind "gmpnn" is
:class:`~.mpnn.MPNN` with ``config.gated`` (its default for this kind): this module holds the gate
only, and the MPNN imports it (one direction, no import loop).
"""

from __future__ import annotations

from torch import Tensor, nn

from nar.models.layers import linear


class Gate(nn.Module):
    """γ = σ(G_3 ReLU(pre)), h' = γ ⊙ h̃ + (1 - γ) ⊙ h, with pre = G_1 z + G_2 a from the MPNN's
    fused projections."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.g_out = linear(hidden, hidden)  # G_3
        nn.init.constant_(self.g_out.bias, -3.0)

    def forward(self, new: Tensor, pre: Tensor, hidden: Tensor) -> Tensor:
        gate = self.g_out(pre.relu()).sigmoid()  # (B, N, H)
        return gate * new + (1.0 - gate) * hidden.to(new.dtype)
