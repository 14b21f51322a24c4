import pytest
import torch

from nar.models.processors import ProcessorConfig, build_processor
from nar.natural import load_natural
from nar.transfer.graphs import FlatSplit
from nar.transfer.models import CostModel, Encoder, TransferModel, pointer_loss, predict_pointers


@pytest.fixture(scope="module")
def splits(natural_root):
    return {t: FlatSplit(load_natural(natural_root / t / "train")) for t in ("digit_grid", "road")}


def test_each_graph_of_a_batch_gets_what_it_gets_alone(splits):
    torch.manual_seed(1)
    split = splits["road"]
    proc = build_processor(ProcessorConfig(kind="mpnn", hidden=16))
    model = TransferModel(Encoder("mlp", split.node_x.shape[1], split.edge_x.shape[1], 8, 16), proc).eval()
    b = split.batch([0, 1, 2])
    with torch.no_grad():
        together = model(b)
        E = b.total_edges
        for g in range(3):
            alone = model(split.batch([g]))
            e0, e1 = int(b.edge_offset[g]), int(b.edge_offset[g]) + int(b.num_edges[g])
            v0, v1 = int(b.node_offset[g]), int(b.node_offset[g]) + int(b.num_nodes[g])
            Eg = int(b.num_edges[g])
            torch.testing.assert_close(together[e0:e1], alone[:Eg], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(together[E + v0 : E + v1], alone[Eg:], atol=1e-5, rtol=1e-5)


def test_pointer_model_and_cost_model_shapes_and_losses(splits):
    torch.manual_seed(2)
    for task, kind in (("digit_grid", "cnn"), ("road", "mlp")):
        split = splits[task]
        edge_in = 0 if split.edge_x is None else split.edge_x.shape[1]
        b = split.batch([0, 1])
        model = TransferModel(
            Encoder(kind, split.node_x.shape[1], edge_in, 8, 16), build_processor(ProcessorConfig("mpnn", 16))
        )
        logits = model(b)
        assert logits.shape == (len(b.pairs.senders),)
        loss = pointer_loss(logits, b)
        assert loss.item() > 0 and torch.isfinite(loss)
        pred = predict_pointers(logits, b)
        assert pred.shape == (b.total_nodes,)
        # a predicted pointer is always an in-neighbour or the node itself
        pairs = set(zip(b.pairs.senders.tolist(), b.pairs.receivers.tolist(), strict=True))
        assert all((int(u), v) in pairs for v, u in enumerate(pred))
        costs = CostModel(kind, split.node_x.shape[1], edge_in, 8, "cell" if edge_in == 0 else "edge")(b)
        assert costs.shape == (b.total_edges,) and bool((costs > 0).all())


def test_eccentricity_scale_matches_pretraining_and_is_per_graph(splits):
    """edge_scale is the pretraining's c (nar.models.sparse.eccentricity_scale: hop eccentricity x mean
    weight) of each edge's graph, computed on the batch's own graphs only."""
    from nar.algorithms.base import hop_depths
    from nar.transfer.models import edge_scale

    split = splits["road"]
    b = split.batch([0, 3, 5])
    w = torch.rand(b.total_edges) + 0.1
    got = edge_scale(w, b)
    for g, i in enumerate(b.indices):
        ex = split.examples[i]
        ecc = max(int(hop_depths(ex.num_nodes, ex.edge_index, ex.source).max()), 1)
        e0, e1 = int(b.edge_offset[g]), int(b.edge_offset[g] + b.num_edges[g])
        torch.testing.assert_close(got[e0:e1], torch.full((e1 - e0,), ecc * float(w[e0:e1].mean())))


def test_scaled_scalar_interface_ignores_each_graphs_cost_unit(splits):
    """With weight_scale eccentricity, the processor's edge inputs do not change when one graph's
    scalars are all multiplied by a constant (its costs in other units); without it they do."""

    class Fixed(torch.nn.Module):  # stands in for the scalar network: softplus of its output = values
        def __init__(self, values: torch.Tensor) -> None:
            super().__init__()
            self.raw = torch.log(torch.expm1(values)).unsqueeze(-1)  # (E, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.raw

    torch.manual_seed(3)
    split = splits["road"]
    b = split.batch([0, 1])
    E0 = int(b.num_edges[0])
    values = torch.rand(b.total_edges, dtype=torch.float64).float() + 0.5
    doubled = values.clone()
    doubled[:E0] *= 2.0
    for scale, invariant in (("eccentricity", True), ("none", False)):
        enc = Encoder("mlp", split.node_x.shape[1], split.edge_x.shape[1], 8, 16, "scalar", scale)
        with torch.no_grad():
            enc.weight = Fixed(values)
            _, pairs, _ = enc(b)
            enc.weight = Fixed(doubled)
            _, pairs2, _ = enc(b)
        assert torch.allclose(pairs[:E0], pairs2[:E0], atol=1e-5) == invariant
        torch.testing.assert_close(pairs[E0:], pairs2[E0:])  # the other graph and the self-loops


def test_an_unknown_weight_scale_is_refused():
    with pytest.raises(ValueError, match="weight_scale 'sqrt'"):
        Encoder("mlp", 4, 2, 8, 16, "latent", "sqrt")
