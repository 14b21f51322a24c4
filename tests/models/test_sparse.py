"""Sparse (edge-list) message passing gives what the dense CLRS layout gives."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from random_batches import er_graphs

from nar.algorithms import ALGORITHMS
from nar.data.batching import collate
from nar.models import EncodeProcessDecode, ModelConfig, ProcessorConfig
from nar.models.layers import Pairs
from nar.models.processors import build_processor
from nar.models.sparse import from_dense, pointer_predictions


def _random_graphs(gen: torch.Generator, sizes: list[int], p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, N, N) bool adjacency [sender, receiver] with self-loops on real nodes, and (B, N) node mask."""
    B, N = len(sizes), max(sizes)
    mask = torch.arange(N)[None, :] < torch.tensor(sizes)[:, None]
    adj = (torch.rand(B, N, N, generator=gen) < p) & mask.unsqueeze(2) & mask.unsqueeze(1)
    return adj | torch.eye(N, dtype=torch.bool), mask


@pytest.mark.parametrize("kind", ["mpnn", "gmpnn"])
@pytest.mark.parametrize("msg_layers", [0, 1, 2])
@pytest.mark.parametrize("global_max", [False, True])
def test_sparse_processor_step_equals_dense_on_random_directed_graphs(kind, msg_layers, global_max):
    gen = torch.Generator().manual_seed(msg_layers)
    torch.manual_seed(0)
    H, sizes = 8, [6, 9, 4]
    proc = build_processor(ProcessorConfig(kind=kind, hidden=H, msg_mlp_layers=msg_layers, global_max=global_max))
    adj, mask = _random_graphs(gen, sizes, 0.3)
    B, N = mask.shape
    node = torch.randn(B, N, H, generator=gen, requires_grad=True)
    edge = torch.randn(B, N, N, H, generator=gen, requires_grad=True)
    graph = torch.randn(B, H, generator=gen)
    hidden = torch.randn(B, N, H, generator=gen)
    dense = proc(node, edge, graph, adj, hidden, mask).hidden

    gid = torch.cumsum(mask.reshape(-1).long(), 0).reshape(B, N) - 1
    b, s, r = (adj & mask.unsqueeze(2) & mask.unsqueeze(1)).nonzero(as_tuple=True)
    pairs = Pairs(gid[b, s], gid[b, r], torch.arange(B).repeat_interleave(torch.tensor(sizes)), B)
    sparse = proc.forward_sparse(node[mask], edge[b, s, r], graph, pairs, hidden[mask]).hidden
    torch.testing.assert_close(sparse, dense[mask], atol=1e-5, rtol=1e-5)

    # the gradients agree too (the max sends its gradient to the maximal message in both)
    g_dense = torch.autograd.grad(dense[mask].square().sum(), (node, edge))
    g_sparse = torch.autograd.grad(sparse.square().sum(), (node, edge))
    for a, c in zip(g_dense, g_sparse, strict=True):
        torch.testing.assert_close(a, c, atol=1e-4, rtol=1e-4)


def test_pairs_reverse_and_segment_ops():
    # 0 <-> 1, 1 -> 2 (one way), self-loops
    snd = torch.tensor([0, 1, 0, 1, 1, 2])
    rcv = torch.tensor([0, 0, 1, 1, 2, 2])
    pairs = Pairs(snd, rcv, torch.zeros(3, dtype=torch.long), 1)
    assert pairs.reverse.tolist() == [0, 2, 1, 3, -1, 5]
    logits = torch.tensor([0.0, 1.0, 3.0, 0.0, 2.0, 2.0])
    probs = pairs.softmax_into_receivers(logits)
    torch.testing.assert_close(probs[:2].sum(), torch.tensor(1.0))
    assert pointer_predictions(logits, pairs).tolist() == [1, 0, 1]  # ties go to the lower pair


@pytest.mark.parametrize("algorithm", ["bellman_ford", "bfs", "dijkstra", "mst_prim"])
@pytest.mark.parametrize("kind", ["mpnn", "gmpnn"])
@pytest.mark.parametrize("teacher_forcing", [0.0, 1.0])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"pointer_both_ways": True, "carry_hidden": False},
        {"scalars_along_pointers": True},
        {"scalars_along_pointers": True, "hint_feedback": "hard", "carry_hidden": False, "pointer_both_ways": True},
        {"scalars_along_pointers": True, "along_slack": True},
    ],
)
def test_sparse_model_equals_dense_on_complete_graphs(algorithm, kind, teacher_forcing, options):
    """On complete graphs every node is a pointer candidate in both layouts: logits and hints agree
    (fed back as decoded, or forced to the truth at every step), pointers encoded both ways too, and
    with distances (keys) fed back along the pointers, their slack channels included."""
    algo = ALGORITHMS[algorithm]
    if options.get("along_slack") and not any(f.along for f in algo.spec.hints):
        pytest.skip(f"{algorithm} has no scalar hint that follows a pointer")
    rng = np.random.default_rng(0)
    trajs = []
    for n in (5, 8, 3):
        trajs += algo.run(er_graphs(rng, 2, n, algo.spec.graph, p_range=(1.0, 1.0))).trajectories()
    batch = collate(algo.spec, trajs)
    torch.manual_seed(1)
    cfg = ProcessorConfig(kind=kind, hidden=16)
    dense = EncodeProcessDecode([algo.spec], ModelConfig(processor=cfg, **options))
    sparse = EncodeProcessDecode([algo.spec], ModelConfig(processor=cfg, messages="sparse", **options))
    sparse.load_state_dict(dense.state_dict())
    pd, ps = dense(batch, teacher_forcing), sparse(batch, teacher_forcing)
    for b in range(batch.batch_size):
        n, S = int(batch.num_nodes[b]), max(1, int(batch.lengths[b]) - 1)
        for name, logits in pd.outputs.items():
            torch.testing.assert_close(ps.outputs[name][b, :n, :n], logits[b, :n, :n], atol=1e-4, rtol=1e-4)
        for name, logits in pd.hints.items():
            want, got = logits[b, :S, :n], ps.hints[name][b, :S, :n]
            if want.dim() == 3:
                want, got = want[..., :n], got[..., :n]
            torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_sparse_batch_keeps_only_the_graph_pairs_and_its_pointers_follow_them():
    algo = ALGORITHMS["bellman_ford"]
    rng = np.random.default_rng(3)
    batch = collate(algo.spec, algo.run(er_graphs(rng, 4, 12, algo.spec.graph, p_range=(0.2, 0.3))).trajectories())
    from nar.models import message_adjacency

    adj = message_adjacency(algo.spec, batch.inputs, batch.node_mask)
    sb = from_dense(algo.spec, batch, adj)
    assert sb.pairs.num_pairs == int(adj.sum())  # no padding: every graph has 12 real nodes
    assert (sb.pairs.reverse >= 0).all()  # symmetrised
    pi = sb.outputs["pi"]  # (V,) global
    candidates = set(zip(sb.pairs.senders.tolist(), sb.pairs.receivers.tolist(), strict=True))
    assert all((int(pi[v]), v) in candidates for v in range(len(pi)))


@pytest.mark.parametrize(
    "cfg",
    [ProcessorConfig(kind="triplet_gmpnn", hidden=8), ProcessorConfig(kind="mpnn", hidden=8, full_adjacency=True)],
)
def test_sparse_messages_refuse_processors_that_need_all_pairs(cfg):
    with pytest.raises(ValueError, match="sparse"):
        ModelConfig(processor=cfg, messages="sparse")


def _batch(algorithm: str, seed: int = 0, n: int = 10, B: int = 3, scale: float = 1.0):
    algo = ALGORITHMS[algorithm]
    g = er_graphs(np.random.default_rng(seed), B, n, algo.spec.graph, p_range=(0.2, 0.4))
    g = dataclasses.replace(g, A=g.A * scale)
    return collate(algo.spec, algo.run(g).trajectories())


@pytest.mark.parametrize("algorithm", ["bellman_ford", "dijkstra", "mst_prim"])
@pytest.mark.parametrize("weight_scale", ["eccentricity", "eccentricity_rms"])
def test_weight_scale_makes_pointers_invariant_to_the_units_of_the_weights(algorithm, weight_scale):
    """Scaling every weight by 7 changes no pointer of the algorithm; with weight_scale the model agrees."""
    algo = ALGORITHMS[algorithm]
    torch.manual_seed(0)
    cfg = ModelConfig(processor=ProcessorConfig(kind="mpnn", hidden=16), messages="sparse", weight_scale=weight_scale)
    model = EncodeProcessDecode([algo.spec], cfg)
    small, big = _batch(algorithm), _batch(algorithm, scale=7.0)
    assert torch.equal(small.outputs["pi"], big.outputs["pi"])
    ps, pb = model(small), model(big)
    torch.testing.assert_close(ps.outputs["pi"], pb.outputs["pi"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(pb.weight_scale, 7.0 * ps.weight_scale)
    for name in ps.hints:  # scalar hints are predicted in the graph's own units: the same numbers
        torch.testing.assert_close(ps.hints[name], pb.hints[name], atol=1e-4, rtol=1e-4)
    # and the losses, compared in those units, are equal too
    from nar.training.losses import total_loss

    torch.testing.assert_close(total_loss(algo.spec, ps, small)[0], total_loss(algo.spec, pb, big)[0])


def test_eccentricity_scale_is_hops_times_mean_or_rms_weight():
    algo = ALGORITHMS["bellman_ford"]
    batch = _batch("bellman_ford", seed=4, n=12, B=4)
    from nar.models import message_adjacency
    from nar.models.sparse import eccentricity_scale

    sb = from_dense(algo.spec, batch, message_adjacency(algo.spec, batch.inputs, batch.node_mask))
    got = eccentricity_scale(algo.spec, sb)
    rms = eccentricity_scale(algo.spec, sb, "rms")
    import networkx as nx

    for b in range(4):
        A = batch.inputs["A"][b].numpy()
        g = nx.from_numpy_array((A > 0).astype(int))
        source = int(batch.inputs["s"][b].argmax())
        hops = max(max(nx.single_source_shortest_path_length(g, source).values()), 1)
        assert got[b].item() == pytest.approx(hops * A[A > 0].mean(), rel=1e-5)
        assert rms[b].item() == pytest.approx(hops * np.sqrt((A[A > 0] ** 2).mean()), rel=1e-5)
        assert rms[b] > got[b]  # unequal weights: the root mean square exceeds the mean
    with pytest.raises(ValueError, match="edge_weight 'max'; allowed: 'mean', 'rms'"):
        eccentricity_scale(algo.spec, sb, "max")


@pytest.mark.parametrize("weight_scale", ["eccentricity", "eccentricity_rms"])
def test_weight_scale_needs_sparse_messages(weight_scale):
    with pytest.raises(ValueError, match=f"weight_scale '{weight_scale}' needs messages: sparse"):
        ModelConfig(processor=ProcessorConfig(kind="mpnn", hidden=8), weight_scale=weight_scale)
    with pytest.raises(ValueError, match="weight_scale 'hops'; allowed: 'none', 'eccentricity', 'eccentricity_rms'"):
        ModelConfig(processor=ProcessorConfig(kind="mpnn", hidden=8), messages="sparse", weight_scale="hops")


def test_pointers_both_ways_tell_the_receiver_whom_it_points_to():
    """Pair (j -> i) carries "j points to i" and, both ways, also "i points to j"."""
    from nar.models.encoders import SpecEncoder, transpose_pairs

    spec = ALGORITHMS["bfs"].spec
    pointer = torch.tensor([[2, 2, 2]])  # (B, N): nodes 0 and 1 point to 2, 2 to itself
    x = torch.nn.functional.one_hot(pointer, 3).float()  # (B, N, N) [i, j]: i points to j
    one_way = SpecEncoder(spec, 4)._encode(spec.field("pi_h"), x, torch.ones(1, 3, dtype=torch.bool))[1][0]
    both = SpecEncoder(spec, 4, pointer_both_ways=True)._encode(
        spec.field("pi_h"), x, torch.ones(1, 3, dtype=torch.bool), transpose_pairs
    )[1][0]
    assert one_way.shape == (1, 3, 3, 1) and both.shape == (1, 3, 3, 2)
    assert one_way[0, 0, 2, 0] == 1 and one_way[0, 2, 0, 0] == 0  # pair 0 -> 2: "0 points to 2"
    assert both[0, 2, 0, 1] == 1 and both[0, 0, 2, 1] == 0  # pair 2 -> 0 now also says "0 points to 2"
    with pytest.raises(ValueError, match="reverse pairs are needed"):
        SpecEncoder(spec, 4, pointer_both_ways=True)._encode(spec.field("pi_h"), x, None)


def test_pointers_both_ways_refuse_pairs_without_a_reverse():
    from nar.models.encoders import reverse_pairs

    snd, rcv = torch.tensor([0, 1, 0]), torch.tensor([0, 1, 1])  # 0 -> 1 has no 1 -> 0
    pairs = Pairs(snd, rcv, torch.zeros(2, dtype=torch.long), 1)
    with pytest.raises(ValueError, match="reverse pair"):
        reverse_pairs(pairs)(torch.ones(3))
    both = Pairs(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 0, 1, 1]), torch.zeros(2, dtype=torch.long), 1)
    assert reverse_pairs(both)(torch.tensor([1.0, 2.0, 3.0, 4.0])).tolist() == [1.0, 4.0, 3.0, 2.0]


def test_global_max_reaches_every_node_of_the_graph_and_no_other_graph():
    """With global_max a node's next state moves when a node it has no path from changes (two graphs of
    disconnected nodes, self-loops only), but never when a node of another graph does; without it, neither."""
    torch.manual_seed(0)
    H = 8
    node_graph = torch.tensor([0, 0, 0, 1, 1])
    self_loops = torch.arange(5)
    pairs = Pairs(self_loops, self_loops, node_graph, 2)
    node, hidden = torch.randn(5, H), torch.randn(5, H)
    edge, graph = torch.randn(5, H), torch.randn(2, H)
    for global_max in (False, True):
        proc = build_processor(ProcessorConfig(kind="mpnn", hidden=H, global_max=global_max))
        before = proc.forward_sparse(node, edge, graph, pairs, hidden).hidden
        changed = node.clone()
        changed[2] += 10.0  # a node of graph 0
        after = proc.forward_sparse(changed, edge, graph, pairs, hidden).hidden
        assert torch.allclose(after[3:], before[3:])  # graph 1 never sees it
        assert torch.allclose(after[:2], before[:2]) != global_max  # its own graph sees it through the max only
    with pytest.raises(ValueError, match="global_max needs kind mpnn or gmpnn"):
        ProcessorConfig(kind="triplet_gmpnn", global_max=True)
