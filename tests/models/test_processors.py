"""Processors: one signature, shapes, masking; the layer tricks equal their plain forms."""

from __future__ import annotations

import pytest
import torch

from nar.models import PROCESSORS, EdgeFeatures, ProcessorConfig, build_processor
from nar.models.layers import linear, masked_max, max_linear

B, N, H = 3, 6, 16


def inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    node_mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2, [True] * 2 + [False] * 4])
    adj = torch.rand(B, N, N, generator=g) < 0.5
    adj = (adj | adj.transpose(1, 2)) & node_mask[:, :, None] & node_mask[:, None, :]
    adj |= torch.eye(N, dtype=torch.bool)
    return dict(
        node_fts=torch.randn(B, N, H, generator=g),
        edge_fts=torch.randn(B, N, N, H, generator=g),
        graph_fts=torch.randn(B, H, generator=g),
        adj=adj,
        hidden=torch.randn(B, N, H, generator=g),
        node_mask=node_mask,
    )


def test_registry_names_the_three_processors():
    assert set(PROCESSORS) == {"mpnn", "gmpnn", "triplet_gmpnn"}


@pytest.mark.parametrize("kind", sorted(PROCESSORS))
@pytest.mark.parametrize("layer_norm", [True, False])
def test_shapes_and_edge_outputs(kind, layer_norm):
    proc = build_processor(ProcessorConfig(kind=kind, hidden=H, layer_norm=layer_norm))
    hidden, edges = proc(**inputs())
    assert hidden.shape == (B, N, H) and torch.isfinite(hidden).all()
    if kind == "triplet_gmpnn":
        assert edges.shape == (B, N, N, H) and proc.edge_out_dim == H
    else:
        assert edges is None and proc.edge_out_dim == 0


@pytest.mark.parametrize("kind", sorted(PROCESSORS))
def test_messages_only_flow_along_edges(kind):
    """Changing a node that is not a neighbour of node 0 does not change node 0's update."""
    x = inputs()
    x["adj"][0] = torch.eye(N, dtype=torch.bool)
    x["adj"][0, 1, 0] = x["adj"][0, 0, 1] = True  # node 0 only hears node 1 (and itself)
    proc = build_processor(ProcessorConfig(kind=kind, hidden=H))
    before, _ = proc(**x)
    x["hidden"][0, 3] += 10.0
    x["node_fts"][0, 3] -= 5.0
    after, _ = proc(**x)
    torch.testing.assert_close(before[0, 0], after[0, 0])
    assert not torch.allclose(before[0, 3], after[0, 3])


def test_full_adjacency_ignores_the_graph_but_not_padding():
    x = inputs()
    proc = build_processor(ProcessorConfig(kind="mpnn", hidden=H, full_adjacency=True))
    a, _ = proc(**x)
    x["adj"] = torch.eye(N, dtype=torch.bool).expand(B, N, N).clone()
    b, _ = proc(**x)
    torch.testing.assert_close(a, b)


def test_gate_starts_mostly_closed():
    """Ibarz et al.: the gate's bias of -3 keeps most of the old state at initialisation."""
    x = inputs()
    gated = build_processor(ProcessorConfig(kind="gmpnn", hidden=H))
    out, _ = gated(**x)
    moved = (out - x["hidden"]).abs().mean() / x["hidden"].abs().mean()
    assert moved < 0.5


def test_processor_accepts_edge_features_lazily():
    x = inputs()
    proc = build_processor(ProcessorConfig(kind="triplet_gmpnn", hidden=H))
    base = x["edge_fts"]
    chan = torch.rand(B, N, N, 2)
    w = torch.randn(H, 2)
    lazy = EdgeFeatures(base).with_step(chan, w)
    dense = base + chan @ w.T
    a = proc(**{**x, "edge_fts": lazy})
    b = proc(**{**x, "edge_fts": dense})
    torch.testing.assert_close(a.hidden, b.hidden, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.edges, b.edges, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("channels", [1, 3])
def test_edge_features_apply_equals_dense_linear_with_gradients(channels):
    torch.manual_seed(0)
    layer = linear(H, 5)
    base = torch.randn(2, 4, 4, H, requires_grad=True)
    chan = torch.rand(2, 4, 4, channels, requires_grad=True)
    w = torch.randn(H, channels, requires_grad=True)
    ef = EdgeFeatures(base).with_step(chan, w)
    out = ef.apply(layer)
    ref = layer(base + chan @ w.T)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(out)
    got = torch.autograd.grad(out, (base, chan, w, layer.weight), g)
    want = torch.autograd.grad(ref, (base, chan, w, layer.weight), g)
    for x, y in zip(got, want, strict=True):
        torch.testing.assert_close(x, y, atol=1e-4, rtol=1e-4)
    assert ef.apply(layer) is not out and layer in ef.cache  # base part computed once, reused


def test_fused_max_ops_match_autograd():
    torch.manual_seed(0)
    a = torch.randn(2, 1, 5, 8, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 5, 5, 8, dtype=torch.float64, requires_grad=True)
    lin = torch.nn.Linear(8, 1).double()
    out, ref = max_linear(a, b, lin), lin(torch.maximum(a, b)).squeeze(-1)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(out)
    params = (a, b, lin.weight, lin.bias)
    for x, y in zip(torch.autograd.grad(out, params, g), torch.autograd.grad(ref, params, g), strict=True):
        torch.testing.assert_close(x, y)

    x = torch.randn(2, 5, 5, 8, dtype=torch.float64, requires_grad=True)
    adj = (torch.rand(2, 5, 5) < 0.5) | torch.eye(5, dtype=torch.bool)
    neg = torch.zeros(2, 5, 5, 1, dtype=torch.float64).masked_fill(~adj.unsqueeze(-1), float("-inf"))
    out, ref = masked_max(x, neg), x.masked_fill(~adj.unsqueeze(-1), float("-inf")).amax(1)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(out)
    torch.testing.assert_close(torch.autograd.grad(out, x, g)[0], torch.autograd.grad(ref, x, g)[0])
