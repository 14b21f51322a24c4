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
