import dataclasses

import pytest
import torch

from nar.models.processors import ProcessorConfig, build_processor
from nar.natural import load_natural
from nar.transfer.graphs import FlatSplit
from nar.transfer.models import CostModel, Encoder, TransferModel, pointer_loss, predict_pointers, tree_pointers


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


def _reaches_its_source(pi: list[int], v: int, source: int) -> bool:
    for _ in range(len(pi) + 1):
        if v == source:
            return True
        if pi[v] == v:
            return False
        v = pi[v]
    return False


@pytest.mark.parametrize("task", ["road", "digit_grid"])
def test_tree_decoding_gives_every_node_a_chain_to_its_source_and_keeps_a_confident_tree(splits, task):
    """pointer_decoding: tree. Random logits: argmax pointers have cycles, the tree's chains all end at the source,
    through pairs of the graph. Logits confident in the true tree (+10 on its pairs): the tree is the true one."""
    split = splits[task]
    b = split.batch(list(range(6)))
    senders, receivers = b.pairs.senders.tolist(), b.pairs.receivers.tolist()
    pairs = set(zip(senders, receivers, strict=True))
    sources = torch.nonzero(b.is_source > 0).flatten().tolist()
    graph = b.pairs.node_graph.tolist()
    torch.manual_seed(0)
    logits = torch.randn(len(senders)) * 3
    argmax, tree = predict_pointers(logits, b).tolist(), tree_pointers(logits, b).tolist()
    assert not all(_reaches_its_source(argmax, v, sources[graph[v]]) for v in range(b.total_nodes))
    assert all(_reaches_its_source(tree, v, sources[graph[v]]) for v in range(b.total_nodes))
    assert all((u, v) in pairs for v, u in enumerate(tree))
    true_pair = torch.tensor([b.pi[r] == s for s, r in zip(senders, receivers, strict=True)])
    confident = torch.randn(len(senders)) + 10 * true_pair.float()
    assert tree_pointers(confident, b).tolist() == b.pi.tolist() == predict_pointers(confident, b).tolist()


@pytest.mark.parametrize("task", ["road", "digit_grid"])
def test_cost_context_reads_the_neighbours_and_nothing_farther(splits, task):
    """One context round: an item's cost moves when a neighbour's raw inputs change (a segment sharing a
    node with it; a cell sharing an edge), and not when an item two hops away changes; without rounds only
    its own inputs count. Each graph of a batch is costed as it is alone (the pooling stays in the graph)."""
    torch.manual_seed(3)
    split = splits[task]
    edge_in = 0 if split.edge_x is None else split.edge_x.shape[1]
    per = "cell" if edge_in == 0 else "edge"
    kind = "cnn" if task == "digit_grid" else "mlp"
    b = split.batch([0, 1])
    src, dst = b.edge_src.tolist(), b.edge_dst.tolist()
    # the probe: edge 0 (a segment) or the cell it enters; its neighbours' ids and a far one's
    if per == "edge":
        ends = {src[0], dst[0]}
        near = next(e for e in range(1, b.total_edges) if {src[e], dst[e]} & ends and {src[e], dst[e]} != ends)
        touched = ends | {src[near], dst[near]}
        far = next(e for e in range(b.total_edges) if not {src[e], dst[e]} & touched and e != 0)
        probe = [0]
    else:
        cell = dst[0]
        nbrs = {src[e] for e in range(b.total_edges) if dst[e] == cell}
        near = next(iter(nbrs))
        two = {src[e] for e in range(b.total_edges) if dst[e] in nbrs} | nbrs | {cell}
        graph_of = b.pairs.node_graph.tolist()
        far = next(v for v in range(b.total_nodes) if v not in two and graph_of[v] == graph_of[cell])
        probe = [e for e in range(b.total_edges) if dst[e] == cell]

    def costs(model: CostModel, which: int | None) -> torch.Tensor:
        x = b.node_x.clone() if per == "cell" else b.edge_x.clone()
        if which is not None:
            x[which] = x[which] + 1.0
        changed = dataclasses.replace(b, node_x=x) if per == "cell" else dataclasses.replace(b, edge_x=x)
        with torch.no_grad():
            raw = model.out(model.item_features(changed)).squeeze(-1)  # before the per-graph normalisation
        return raw[dst[0]] if per == "cell" else raw[probe]

    for rounds, near_moves in ((0, False), (1, True)):
        model = CostModel(kind, split.node_x.shape[1], edge_in, 8, per, context=rounds)
        base = costs(model, None)
        moved = not torch.allclose(costs(model, near), base)
        assert moved == near_moves, f"{rounds} rounds: a neighbour's inputs {'do not ' if near_moves else ''}move it"
        torch.testing.assert_close(costs(model, far), base)
    model = CostModel(kind, split.node_x.shape[1], edge_in, 8, per, context=2)
    together = model(b)
    E0 = int(b.num_edges[0])
    torch.testing.assert_close(together[:E0], model(split.batch([0])), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="context rounds must be >= 0"):
        CostModel(kind, split.node_x.shape[1], edge_in, 8, per, context=-1)
