"""Small building blocks shared by encoders, processors and decoders.

``linear`` gives CLRS's initialisation (Haiku defaults). ``EdgeFeatures`` keeps the
(B, N, N, H) edge features of one message-passing step as a per-trajectory part plus a
cheap per-step part, so that linear maps of them cost one big matrix product per
trajectory instead of one per step (the edge inputs never change during a trajectory;
only a few hint channels do).
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import Tensor, nn


def linear(in_features: int, out_features: int, *, bias: bool = True, std: float | None = None) -> nn.Linear:
    """``nn.Linear`` initialised as Haiku (and so CLRS) does.

    Weights: truncated normal with std ``1/sqrt(in_features)`` (or ``std``), cut at two
    standard deviations; biases: zero. PyTorch's default (uniform, non-zero biases) makes
    the summed encoders of CLRS-style models start far from zero.
    """
    layer = nn.Linear(in_features, out_features, bias=bias)
    s = 1.0 / math.sqrt(in_features) if std is None else std
    nn.init.trunc_normal_(layer.weight, std=s, a=-2 * s, b=2 * s)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


def autocast(precision: str, device_type: str) -> contextlib.AbstractContextManager:
    """bf16 autocast of the matrix products when ``precision`` is "bfloat16", else nothing: the one
    mixed-precision switch of every model (``ModelConfig.precision``, ``TaskTransferParams.precision``)."""
    if precision == "bfloat16":
        return torch.autocast(device_type=device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class EdgeFeatures:
    """Edge features ``base + x @ w.T`` of shape (B, N, N, H), rarely materialised.

    ``base`` (B, N, N, H) holds the encoded inputs (and the constant biases of the hint
    encoders): it is the same at every step of a trajectory. ``x`` (B, N, N, C) holds the
    per-step hint channels (node pointers as one-hot or soft rows, edge hints), with C a
    handful, and ``w`` (H, C) the encoder weights that map them into the hidden space.

    ``apply(layer)`` computes ``layer(dense)`` as ``layer(base) + x @ (W w).T``: the first
    term is a (B·N²×H)(H×out) product, cached for the whole trajectory (steps share the
    ``cache`` dict), the second a (B·N²×C)(C×out) one. For an MPNN this removes the edge
    part of the message layer and of every pointer decoder from the per-step cost.

    ``rows(start, stop)`` selects graphs (a view): steps that only process the graphs still
    running share the cached products of the whole batch.
    """

    __slots__ = ("root", "start", "stop", "x", "w", "cache")

    def __init__(
        self,
        base: Tensor,
        x: Tensor | None = None,
        w: Tensor | None = None,
        cache: dict | None = None,
        start: int = 0,
        stop: int | None = None,
    ) -> None:
        if (x is None) != (w is None):
            raise ValueError("EdgeFeatures: x and w go together")
        self.root = base  # (B_all, N, N, H): the whole batch; this object covers rows start:stop
        self.start = start
        self.stop = base.shape[0] if stop is None else stop
        self.x = x  # (stop - start, N, N, C)
        self.w = w
        self.cache: dict[nn.Module, Tensor] = {} if cache is None else cache

    def _slice(self, full: Tensor) -> Tensor:
        if self.start == 0 and self.stop == full.shape[0]:
            return full  # no slice: its backward would zero-fill and copy the whole tensor
        return full[self.start : self.stop]

    @property
    def base(self) -> Tensor:
        return self._slice(self.root)

    def with_step(self, x: Tensor | None, w: Tensor | None) -> EdgeFeatures:
        """The same rows, base (and cache) with this step's hint channels."""
        return EdgeFeatures(self.root, x, w, self.cache, self.start, self.stop)

    def rows(self, start: int, stop: int) -> EdgeFeatures:
        """Graphs start:stop of these (relative indices), sharing the cache."""
        x = None if self.x is None else self.x[start:stop]
        return EdgeFeatures(self.root, x, self.w, self.cache, self.start + start, self.start + stop)

    @property
    def shape(self) -> torch.Size:
        return self.base.shape

    def dense(self) -> Tensor:
        """Materialise (B, N, N, H)."""
        if self.x is None:
            return self.base
        return self.base + nn.functional.linear(self.x, self.w.to(self.x.dtype))

    def apply(self, layer: nn.Linear) -> Tensor:
        """``layer(self.dense())`` without the per-step (B·N²×H)(H×out) product."""
        full = self.cache.get(layer)
        if full is None:
            full = layer(self.root)
            self.cache[layer] = full
        out = self._slice(full)
        if self.x is None:
            return out
        w = layer.weight @ self.w  # (out, C)
        if w.shape[1] == 1:  # one channel: a broadcast multiply-add, not a K=1 matrix product
            return torch.addcmul(out, self.x.to(out.dtype), w[:, 0].to(out.dtype))
        return out + nn.functional.linear(self.x.to(out.dtype), w.to(out.dtype))


def apply_edge(layer: nn.Linear, edges: EdgeFeatures | Tensor) -> Tensor:
    """``layer`` on edge features given either densely or as :class:`EdgeFeatures`."""
    if isinstance(edges, EdgeFeatures):
        return edges.apply(layer)
    return layer(edges)


def dense_edges(edges: EdgeFeatures | Tensor) -> Tensor:
    return edges.dense() if isinstance(edges, EdgeFeatures) else edges


NEG_INF = -1e9  # finite "minus infinity" for masked logits: softmax gives exact zeros, no NaN


class _MaskedMax(torch.autograd.Function):
    """max over dim 1 of ``x + neg_bias`` (neg_bias: 0 or -inf), gradient to the argmax entries.

    Autograd's amax backward splits the gradient over ties with a count and a division
    (four passes over the (B, N, N, H) messages); ties between real messages have measure
    zero, so here every maximal entry gets the full gradient (two passes).
    """

    @staticmethod
    def forward(ctx, x: Tensor, neg_bias: Tensor) -> Tensor:
        xb = x + neg_bias  # (B, S, R, H)
        out = xb.amax(dim=1)  # (B, R, H)
        ctx.save_for_backward(xb, out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        xb, out = ctx.saved_tensors
        return (xb == out.unsqueeze(1)) * grad.unsqueeze(1), None


def masked_max(x: Tensor, neg_bias: Tensor) -> Tensor:
    """(B, S, R, H), (B, S, R, 1) -> (B, R, H): max over senders S of the unmasked entries."""
    return _MaskedMax.apply(x, neg_bias.to(x.dtype))


class _MaxLinear(torch.autograd.Function):
    """``max(a, b) @ w + c`` for broadcastable a, b (..., H), without autograd's six-pass
    ``maximum`` backward: the pointer decoders' hot spot."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, w: Tensor, c: Tensor) -> Tensor:
        m = torch.maximum(a, b)
        out = torch.matmul(m, w.to(m.dtype)) + c.to(m.dtype)  # (...)
        ctx.save_for_backward(a, b, m, w)
        ctx.c_dtype = c.dtype
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        a, b, m, w = ctx.saved_tensors
        g = grad.unsqueeze(-1)  # (..., 1)
        gm = g * w.to(grad.dtype)  # (..., H)
        to_b = torch.where(a >= b, 0.0, gm)  # ties go to a
        ga = (gm - to_b).sum_to_size(a.shape)
        gb = to_b.sum_to_size(b.shape)
        gw = (m.reshape(-1, m.shape[-1]).t() @ grad.reshape(-1).to(m.dtype)).to(w.dtype)
        gc = grad.sum().to(ctx.c_dtype).reshape(1)
        return ga, gb, gw, gc


def max_linear(a: Tensor, b: Tensor, layer: nn.Linear) -> Tensor:
    """``layer(torch.maximum(a, b)).squeeze(-1)`` for a ``Linear(H, 1)``."""
    dtype = torch.promote_types(a.dtype, b.dtype)
    if torch.is_autocast_enabled(a.device.type):
        dtype = torch.get_autocast_dtype(a.device.type)
    return _MaxLinear.apply(a.to(dtype), b.to(dtype), layer.weight[0], layer.bias)


class _ScatterMax(torch.autograd.Function):
    """out[v] = max over {p : index[p] == v} of x[p]; gradient to every maximal entry (as ``_MaskedMax``)."""

    @staticmethod
    def forward(ctx, x: Tensor, index: Tensor, size: int) -> Tensor:
        idx = index.unsqueeze(-1).expand_as(x)  # (P, H)
        out = x.new_zeros(size, x.shape[-1]).scatter_reduce_(0, idx, x, reduce="amax", include_self=False)
        ctx.save_for_backward(x, index, out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, index, out = ctx.saved_tensors
        return (x == out[index]) * grad[index], None, None


class Pairs:
    """The message pairs of a flat batch: G graphs concatenated into one graph of V nodes.

    ``senders[p] -> receivers[p]`` for p < P (global node indices, self-loops included, every
    node receives at least its own message); ``graph[p]`` is the graph of pair p,
    ``node_graph[v]`` that of node v, ``reverse[p]`` the pair receivers[p] -> senders[p].
    The processors' sparse step and the decoders' sparse heads
    take this instead of the dense (B, N, N) adjacency: O(P) instead of O(B·N²).
    """

    __slots__ = ("senders", "receivers", "graph", "node_graph", "reverse", "num_nodes", "num_graphs")

    def __init__(self, senders: Tensor, receivers: Tensor, node_graph: Tensor, num_graphs: int) -> None:
        self.senders, self.receivers = senders, receivers  # (P,) int64
        self.node_graph = node_graph  # (V,) int64
        self.num_nodes = int(node_graph.shape[0])
        self.num_graphs = int(num_graphs)
        self.graph = node_graph[receivers]  # (P,)
        V = max(self.num_nodes, 1)
        key = receivers * V + senders  # sorted when pairs are sorted by (receiver, sender)
        order = torch.argsort(key)
        rev_key = senders * V + receivers
        pos = torch.searchsorted(key[order], rev_key).clamp(max=max(len(key) - 1, 0))
        found = key[order][pos] == rev_key if len(key) else rev_key.bool()
        self.reverse = torch.where(found, order[pos], torch.full_like(pos, -1))  # (P,)

    @property
    def num_pairs(self) -> int:
        return int(self.senders.shape[0])

    def max_into_receivers(self, msgs: Tensor) -> Tensor:
        """(P, H) -> (V, H): max over each node's incoming pairs."""
        return _ScatterMax.apply(msgs, self.receivers, self.num_nodes)

    def max_over_graph(self, x: Tensor) -> Tensor:
        """(V, H) -> (G, H): max over each graph's nodes."""
        return _ScatterMax.apply(x, self.node_graph, self.num_graphs)

    def softmax_into_receivers(self, logits: Tensor) -> Tensor:
        """(P,) logits -> (P,) probabilities, a softmax over the pairs into each node."""
        return segment_softmax(logits, self.receivers, self.num_nodes)

    def argmax_into_receivers(self, logits: Tensor) -> Tensor:
        """(V,) the pair (lowest index on ties) with the largest logit among those into each node."""
        return segment_argmax(logits, self.receivers, self.num_nodes)


def segment_max(x: Tensor, index: Tensor, size: int) -> Tensor:
    """(P, ...) -> (size, ...): the max of the rows of each group, without gradient; empty groups -inf."""
    idx = index.view(-1, *([1] * (x.dim() - 1))).expand_as(x)
    out = torch.full((size, *x.shape[1:]), float("-inf"), dtype=x.dtype, device=x.device)
    return out.scatter_reduce_(0, idx, x.detach(), reduce="amax", include_self=True)


def segment_softmax(logits: Tensor, index: Tensor, size: int) -> Tensor:
    """Softmax of ``logits`` (P,) within each group ``index`` (P,) -> (P,)."""
    z = (logits - segment_max(logits, index, size)[index]).exp()
    total = torch.zeros(size, dtype=z.dtype, device=z.device).index_add_(0, index, z)
    return z / total[index]


def segment_log_softmax(logits: Tensor, index: Tensor, size: int) -> Tensor:
    """Log-softmax of ``logits`` (P,) within each group ``index`` (P,) -> (P,)."""
    shifted = logits - segment_max(logits, index, size)[index]
    total = torch.zeros(size, dtype=logits.dtype, device=logits.device).index_add_(0, index, shifted.exp())
    return shifted - total.log()[index]


def segment_argmax(scores: Tensor, index: Tensor, size: int) -> Tensor:
    """For each group i, the position p (lowest on ties) of the largest ``scores[p]`` with index[p] == i."""
    m = segment_max(scores, index, size)
    pos = torch.arange(len(scores), device=scores.device)
    cand = torch.where(scores == m[index], pos, torch.full_like(pos, len(scores)))
    out = torch.full((size,), len(scores), dtype=pos.dtype, device=pos.device)
    return out.scatter_reduce_(0, index, cand, reduce="amin", include_self=True)
