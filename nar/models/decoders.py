"""Decoders built from an algorithm's spec (CLRS-30, Veličković et al. 2022).

Each decoder reads ``h`` = [x ‖ h_prev ‖ h_next] (B, N, 3H), the edge latents (the step's
edge features, plus the processor's edge output for triplet_gmpnn) and the graph features,
and returns logits (float32):

======================  ==================================================  ==============
field                   logits                                              shape
======================  ==================================================  ==============
node scalar/mask/       w·h_i                                               (B, N)
  mask_one              (mask_one: softmax over real nodes)
node categorical        W h_i                                               (B, N, C)
node pointer i -> j     w·max(P_1 h_i, P_2 h_j + P_3 e_ji)                  (B, N, N)
edge scalar/mask        w_1·h_i + w_2·h_j + w_e·e_ij                        (B, N, N)
edge categorical        same with C outputs                                 (B, N, N, C)
edge pointer (i,j) -> k w·max(P_1 h_i + P_2 h_j + P_e e_ij, P_k h_k)        (B, N, N, N)
graph scalar/mask/cat.  W_n max_i h_i + W_g g                               (B[, C])
======================  ==================================================  ==============

Pointer and mask_one logits of padded target nodes are set to a large negative number, so
their softmax is exactly zero. ``postprocess`` turns logits into what is fed back as the
next step's hints: soft (probabilities, gradients flow; the CLRS default) or hard (one-hot /
thresholded, no gradients).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nar.algorithms.spec import AlgorithmSpec, Field, Location, Type
from nar.models.layers import NEG_INF, EdgeFeatures, Pairs, apply_edge, linear, max_linear

EdgeParts = Sequence[EdgeFeatures | Tensor]


class EdgeLinear(nn.Module):
    """A linear map of concatenated edge latents, one block per part (no concatenation)."""

    def __init__(self, dims: Sequence[int], out: int) -> None:
        super().__init__()
        total = sum(dims)
        # same init as one Linear(total, out): std 1/sqrt(total)
        self.parts = nn.ModuleList(linear(d, out, bias=(k == 0), std=1.0 / total**0.5) for k, d in enumerate(dims))

    def forward(self, edges: EdgeParts) -> Tensor:
        out = apply_edge(self.parts[0], edges[0])
        for layer, e in zip(self.parts[1:], edges[1:], strict=True):
            out = out + layer(e)
        return out


def _out_width(f: Field) -> int:
    return f.num_categories if f.type == Type.CATEGORICAL else 1


class NodeDecoder(nn.Module):
    widths = staticmethod(lambda f, hidden: [_out_width(f)])  # linear maps of h: [w·h]

    def __init__(self, f: Field, hidden: int, edge_dims: Sequence[int]) -> None:
        super().__init__()
        self.field = f

    def forward(self, h: Tensor, hp: list[Tensor], edges: EdgeParts, graph_fts: Tensor, node_mask: Tensor) -> Tensor:
        logits = hp[0].float()  # (B, N, c)
        if self.field.type == Type.CATEGORICAL:
            return logits
        logits = logits.squeeze(-1)  # (B, N)
        if self.field.type == Type.MASK_ONE:
            logits = logits.masked_fill(~node_mask, NEG_INF)
        return logits

    def sparse(self, h: Tensor, hp: list[Tensor], edges: EdgeParts, graph_fts: Tensor, pairs: Pairs) -> Tensor:
        logits = hp[0].float()  # (V, c); no padding on a flat batch
        return logits if self.field.type == Type.CATEGORICAL else logits.squeeze(-1)


class NodePointerDecoder(nn.Module):
    widths = staticmethod(lambda f, hidden: [hidden, hidden])  # P_1 h (pointing node i), P_2 h (candidate j)

    def __init__(self, f: Field, hidden: int, edge_dims: Sequence[int]) -> None:
        super().__init__()
        self.p_edge = EdgeLinear(edge_dims, hidden)  # P_3
        self.out = linear(hidden, 1)

    def forward(self, h: Tensor, hp: list[Tensor], edges: EdgeParts, graph_fts: Tensor, node_mask: Tensor) -> Tensor:
        # computed in the [j, i] layout of the edge latents (contiguous), transposed at the end
        src = hp[0].unsqueeze(1)  # (B, 1, N_i, H)
        dst_edge = self.p_edge(edges) + hp[1].unsqueeze(2)  # (B, N_j, N_i, H): P_2 h_j + P_3 e_ji
        logits = max_linear(src, dst_edge, self.out).float()  # (B, N_j, N_i)
        return logits.transpose(1, 2).masked_fill(~node_mask[:, None, :], NEG_INF)  # (B, N_i, N_j)

    def sparse(self, h: Tensor, hp: list[Tensor], edges: EdgeParts, graph_fts: Tensor, pairs: Pairs) -> Tensor:
        """(P,) logit of "receiver i points to sender j" on each pair j -> i."""
        dst_edge = self.p_edge(edges) + hp[1][pairs.senders]  # (P, H): P_2 h_j + P_3 e_ji
        return max_linear(hp[0][pairs.receivers], dst_edge, self.out).float()


class EdgeDecoder(nn.Module):
    widths = staticmethod(lambda f, hidden: [_out_width(f), _out_width(f)])  # w_1·h_i, w_2·h_j

    def __init__(self, f: Field, hidden: int, edge_dims: Sequence[int]) -> None:
        super().__init__()
        self.field = f
        self.p_e = EdgeLinear(edge_dims, _out_width(f))

    def forward(self, h: Tensor, hp: list[Tensor], edges: EdgeParts, graph_fts: Tensor, node_mask: Tensor) -> Tensor:
        logits = self.p_e(edges) + hp[0].unsqueeze(2) + hp[1].unsqueeze(1)  # (B, N, N, c)
        logits = logits.float()
        return logits if self.field.type == Type.CATEGORICAL else logits.squeeze(-1)

    def sparse(self, h: Tensor, hp: list[Tensor], edges: EdgeParts, graph_fts: Tensor, pairs: Pairs) -> Tensor:
        logits = (self.p_e(edges) + hp[0][pairs.senders] + hp[1][pairs.receivers]).float()  # (P, c)
        return logits if self.field.type == Type.CATEGORICAL else logits.squeeze(-1)


class EdgePointerDecoder(nn.Module):
    """(B, N, N, N) logits; the (B, N, N, N, H) intermediate is built in chunks of i without grad."""

    chunk_elems = 1 << 22  # elements per chunk at inference (cache-sized)
    widths = staticmethod(lambda f, hidden: [hidden, hidden, hidden])  # P_1 h_i, P_2 h_j, P_k h_k

    def __init__(self, f: Field, hidden: int, edge_dims: Sequence[int]) -> None:
        super().__init__()
        self.p_e = EdgeLinear(edge_dims, hidden)
        self.out = linear(hidden, 1)

    def forward(self, h: Tensor, hp: list[Tensor], edges: EdgeParts, graph_fts: Tensor, node_mask: Tensor) -> Tensor:
        pair = self.p_e(edges) + hp[0].unsqueeze(2) + hp[1].unsqueeze(1)  # (B, N_i, N_j, H)
        k = hp[2][:, None, None, :, :]  # (B, 1, 1, N_k, H)
        B, N, _, H = pair.shape
        step = N if torch.is_grad_enabled() else max(1, self.chunk_elems // max(1, B * N * N * H))
        chunks = [max_linear(pair[:, s : s + step].unsqueeze(3), k, self.out) for s in range(0, N, step)]
        logits = torch.cat(chunks, dim=1).float()  # (B, N_i, N_j, N_k)
        return logits.masked_fill(~node_mask[:, None, None, :], NEG_INF)

    def sparse(self, h: Tensor, hp: list[Tensor], edges: EdgeParts, graph_fts: Tensor, pairs: Pairs) -> Tensor:
        raise ValueError("edge pointers need every node triple; this algorithm runs densely only")


class GraphDecoder(nn.Module):
    widths = staticmethod(lambda f, hidden: [])  # reads max-pooled h, not h

    def __init__(self, f: Field, hidden: int, edge_dims: Sequence[int]) -> None:
        super().__init__()
        self.field = f
        c = _out_width(f)
        self.p_nodes = linear(3 * hidden, c)
        self.p_graph = linear(hidden, c)

    def forward(self, h: Tensor, hp: list[Tensor], edges: EdgeParts, graph_fts: Tensor, node_mask: Tensor) -> Tensor:
        pooled = h.masked_fill(~node_mask.unsqueeze(-1), float("-inf")).amax(dim=1)  # (B, 3H)
        return self._logits(pooled, graph_fts)

    def sparse(self, h: Tensor, hp: list[Tensor], edges: EdgeParts, graph_fts: Tensor, pairs: Pairs) -> Tensor:
        idx = pairs.node_graph.unsqueeze(-1).expand_as(h)
        pooled = h.new_zeros(pairs.num_graphs, h.shape[-1]).scatter_reduce(0, idx, h, "amax", include_self=False)
        return self._logits(pooled, graph_fts)  # (G, c) from the max over each graph's nodes (G, 3H)

    def _logits(self, pooled: Tensor, graph_fts: Tensor) -> Tensor:
        logits = (self.p_nodes(pooled) + self.p_graph(graph_fts)).float()  # (B, c)
        return logits if self.field.type == Type.CATEGORICAL else logits.squeeze(-1)


def _decoder_class(f: Field) -> type[nn.Module]:
    if f.location == Location.NODE:
        return NodePointerDecoder if f.type == Type.POINTER else NodeDecoder
    if f.location == Location.EDGE:
        return EdgePointerDecoder if f.type == Type.POINTER else EdgeDecoder
    return GraphDecoder


class SpecDecoder(nn.Module):
    """The decoders of one algorithm: every output, and every hint when hints are decoded.

    The per-node linear maps of h of all hint decoders are rows of one matrix
    (``h_proj["hints"]``), those of the output decoders of another: one matrix product per
    group and step instead of one per map.
    """

    def __init__(
        self, spec: AlgorithmSpec, hidden: int, decode_hints: bool = True, edge_dims: Sequence[int] = ()
    ) -> None:
        super().__init__()
        self.spec = spec
        self.groups = {"outputs": spec.outputs, "hints": spec.hints if decode_hints else ()}
        dims = (hidden, *edge_dims)
        self.layers = nn.ModuleDict()
        self.h_proj = nn.ModuleDict()
        self.widths: dict[str, list[list[int]]] = {}
        for group, fields in self.groups.items():
            widths = []
            for f in fields:
                cls = _decoder_class(f)
                self.layers[f.name] = cls(f, hidden, dims)
                widths.append(cls.widths(f, hidden))
            self.widths[group] = widths
            total = sum(sum(w) for w in widths)
            if total:
                self.h_proj[group] = linear(3 * hidden, total)

    @property
    def hint_fields(self) -> tuple[Field, ...]:
        return self.groups["hints"]

    def forward(
        self,
        group: str,
        h: Tensor,
        edges: EdgeParts,
        graph_fts: Tensor,
        node_mask: Tensor,
    ) -> dict[str, Tensor]:
        """Logits of every field of ``group`` ("outputs" or "hints") from h (B, N, 3H)."""
        return self._decode(group, h, lambda layer, hp: layer(h, hp, edges, graph_fts, node_mask))

    def forward_sparse(
        self, group: str, h: Tensor, edges: EdgeParts, graph_fts: Tensor, pairs: Pairs
    ) -> dict[str, Tensor]:
        """The same on a flat batch: h (V, 3H), edges (P, ...), graph_fts (G, H); see ``nar.models.sparse``."""
        return self._decode(group, h, lambda layer, hp: layer.sparse(h, hp, edges, graph_fts, pairs))

    def _decode(self, group: str, h: Tensor, head) -> dict[str, Tensor]:
        fields, widths = self.groups[group], self.widths[group]
        if not fields:
            return {}
        flat = [w for ws in widths for w in ws]
        parts = list(torch.split(self.h_proj[group](h), flat, dim=-1)) if flat else []
        out = {}
        for f, ws in zip(fields, widths, strict=True):
            hp, parts = parts[: len(ws)], parts[len(ws) :]
            out[f.name] = head(self.layers[f.name], hp)
        return out


def postprocess(f: Field, logits: Tensor, hard: bool) -> Tensor:
    """Logits -> the feature form of a hint fed back to the encoders (see ``to_features``)."""
    if f.type == Type.SCALAR:
        return logits.detach() if hard else logits
    if f.type == Type.MASK:
        return (logits > 0).to(logits.dtype) if hard else torch.sigmoid(logits)
    # mask_one, categorical and pointers: a distribution over the last axis
    if hard:
        return F.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
    return torch.softmax(logits, dim=-1)


def prediction(f: Field, logits: Tensor) -> Tensor:
    """Logits -> a hard prediction in the data's form (pointer indices, 0/1 masks, one-hots)."""
    if f.type == Type.SCALAR:
        return logits
    if f.type == Type.POINTER:
        return logits.argmax(-1)
    if f.type == Type.MASK:
        return (logits > 0).to(torch.float32)
    return F.one_hot(logits.argmax(-1), logits.shape[-1]).to(torch.float32)
