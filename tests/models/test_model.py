"""Shapes for every processor and field type; padding never leaks; the model's options."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from random_batches import all_types_spec, er_graphs, make_batch, random_batch, random_trajectory

from nar.algorithms import ALGORITHMS, Location, Type
from nar.data.batching import collate
from nar.models import EncodeProcessDecode, ModelConfig, ProcessorConfig, message_adjacency
from nar.training.losses import total_loss
from nar.training.metrics import split_batch

KINDS = ["mpnn", "gmpnn", "triplet_gmpnn"]
SPEC = all_types_spec()


def model_for(kind: str, spec=SPEC, hidden: int = 16, **kw) -> EncodeProcessDecode:
    torch.manual_seed(0)
    return EncodeProcessDecode([spec], ModelConfig(processor=ProcessorConfig(kind=kind, hidden=hidden), **kw))


def expected_shape(f, B: int, N: int) -> tuple[int, ...]:
    base = {Location.NODE: (B, N), Location.EDGE: (B, N, N), Location.GRAPH: (B,)}[f.location]
    if f.type == Type.POINTER:
        return (*base, N)
    if f.type == Type.CATEGORICAL:
        return (*base, f.num_categories)
    return base


@pytest.mark.parametrize("kind", KINDS)
def test_every_field_type_has_the_right_logit_shape(kind):
    batch = random_batch(SPEC, sizes=[5, 7, 3], lengths=[3, 1, 4])
    pred = model_for(kind)(batch)
    B, N, S = 3, 7, 3  # S = max(1, T - 1) processor steps
    assert set(pred.outputs) == {f.name for f in SPEC.outputs}
    assert set(pred.hints) == {f.name for f in SPEC.hints}
    for f in SPEC.outputs:
        assert pred.outputs[f.name].shape == expected_shape(f, B, N), f.name
        assert pred.outputs[f.name].dtype == torch.float32
    for f in SPEC.hints:
        shape = expected_shape(f, B, N)
        assert pred.hints[f.name].shape == (shape[0], S, *shape[1:]), f.name
    loss, parts = total_loss(SPEC, pred, batch)
    assert torch.isfinite(loss) and len(parts) == len(SPEC.outputs) + len(SPEC.hints)
    loss.backward()


def _compare(spec, pred_all, pred_one, b: int, n: int, steps: int) -> None:
    """Graph b of the padded batch against the same graph alone (real nodes, its own steps)."""

    def real(f, v):  # v: one graph's logits, without time axis
        if f.location == Location.NODE:
            v = v[:n]
        elif f.location == Location.EDGE:
            v = v[:n, :n]
        if f.type == Type.POINTER or f.type == Type.MASK_ONE:
            v = v[..., :n]
        return v

    for f in spec.outputs:
        torch.testing.assert_close(
            real(f, pred_all.outputs[f.name][b]), real(f, pred_one.outputs[f.name][0]), atol=1e-5, rtol=1e-5
        )
    for f in (h for h in spec.hints if h.name in pred_one.hints):  # none without decode_hints
        for t in range(steps):
            torch.testing.assert_close(
                real(f, pred_all.hints[f.name][b, t]), real(f, pred_one.hints[f.name][0, t]), atol=1e-5, rtol=1e-5
            )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("feedback", ["soft", "hard"])
def test_padding_never_leaks_all_field_types(kind, feedback):
    torch.set_default_dtype(torch.float32)
    sizes, lengths = [6, 3, 9, 4], [4, 2, 5, 1]
    rng = __import__("numpy").random.default_rng(3)
    trajs = [random_trajectory(SPEC, rng, n, t) for n, t in zip(sizes, lengths, strict=True)]
    model = model_for(kind, hint_feedback=feedback).eval()
    with torch.no_grad():
        pred_all = model(collate(SPEC, trajs))
        for b, (n, t) in enumerate(zip(sizes, lengths, strict=True)):
            pred_one = model(collate(SPEC, [trajs[b]]))
            _compare(SPEC, pred_all, pred_one, b, n, max(1, t - 1))


@pytest.mark.parametrize("kind", ["mpnn", "triplet_gmpnn"])
def test_padding_never_leaks_bellman_ford(kind):
    import numpy as np

    spec = ALGORITHMS["bellman_ford"].spec
    rng = np.random.default_rng(0)
    trajs = []
    for n in (4, 11, 7):
        trajs += make_batch_trajs(rng, n)
    model = model_for(kind, spec=spec, hidden=32).eval()
    with torch.no_grad():
        pred_all = model(collate(spec, trajs))
        for b, tr in enumerate(trajs):
            pred_one = model(collate(spec, [tr]))
            _compare(spec, pred_all, pred_one, b, tr.num_nodes, max(1, tr.length - 1))


@pytest.mark.parametrize("algorithm", ["dijkstra", "mst_prim"])
def test_padding_never_leaks_without_hints_and_all_pairs_messages(algorithm):
    """The Dijkstra and MST-Prim profiles: no hints, all-pairs messages, one message layer."""
    import numpy as np

    algo = ALGORITHMS[algorithm]
    rng = np.random.default_rng(1)
    trajs = [tr for n in (5, 12, 8) for tr in algo.run(er_graphs(rng, 2, n, algo.spec.graph)).trajectories()]
    torch.manual_seed(0)
    processor = ProcessorConfig(kind="mpnn", hidden=32, full_adjacency=True, msg_mlp_layers=1)
    model = EncodeProcessDecode([algo.spec], ModelConfig(processor=processor, encode_hints=False, decode_hints=False))
    model.eval()
    with torch.no_grad():
        pred_all = model(collate(algo.spec, trajs))
        assert not pred_all.hints
        for b, tr in enumerate(trajs):
            pred_one = model(collate(algo.spec, [tr]))
            _compare(algo.spec, pred_all, pred_one, b, tr.num_nodes, max(1, tr.length - 1))


def make_batch_trajs(rng, n):
    algo = ALGORITHMS["bellman_ford"]
    return algo.run(er_graphs(rng, 2, n, algo.spec.graph)).trajectories()


def test_split_batch_gives_the_same_predictions():
    model = model_for("triplet_gmpnn").eval()
    batch = random_batch(SPEC, sizes=[5, 8, 3, 6], lengths=[3, 2, 4, 1])
    with torch.no_grad():
        whole = model(batch)
        parts = split_batch(SPEC, batch, 2)
        assert [p.batch_size for p in parts] == [2, 2]
        assert parts[1].max_nodes == 6 and parts[1].max_steps == 4
        second = model(parts[1])
    _compare(SPEC, whole, second, 2, 3, 3)


def test_processor_is_separable_and_shared():
    bf, bfs = ALGORITHMS["bellman_ford"].spec, ALGORITHMS["bfs"].spec
    config = ModelConfig(processor=ProcessorConfig(kind="triplet_gmpnn", hidden=16))
    model = EncodeProcessDecode([bf, bfs], config)
    keys = set(model.processor.state_dict())
    assert keys and not any("encoders" in k or "decoders" in k for k in keys)
    assert set(model.encoders) == {"bellman_ford", "bfs"}
    # rebuilt from its config alone, the processor loads its own state dict exactly
    from nar.models import build_processor

    twin = build_processor(ProcessorConfig.from_dict(config.processor.to_dict()))
    twin.load_state_dict(model.processor.state_dict())
    import numpy as np

    rng = np.random.default_rng(0)
    for name in ("bellman_ford", "bfs"):
        pred = model(make_batch(name, rng, 3, 6))
        assert pred.outputs["pi"].shape == (3, 6, 6)


def test_configs_round_trip_and_validate():
    cfg = ModelConfig(processor=ProcessorConfig(kind="mpnn", hidden=32), precision="bfloat16")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert ProcessorConfig(kind="mpnn").gated is False
    assert ProcessorConfig(kind="gmpnn").gated is True
    with pytest.raises(ValueError, match="allowed"):
        ProcessorConfig(kind="gat")
    with pytest.raises(ValueError, match="unknown keys"):
        ProcessorConfig.from_dict({"kind": "mpnn", "hiden": 3})


def test_message_adjacency_is_symmetric_with_self_loops_and_no_padding():
    spec = ALGORITHMS["bellman_ford"].spec
    batch = random_batch(spec, sizes=[3, 5], lengths=[2, 2])
    adj = message_adjacency(spec, batch.inputs, batch.node_mask)
    assert torch.equal(adj, adj.transpose(1, 2))
    assert adj.diagonal(dim1=1, dim2=2).all()
    assert not adj[0, :3, 3:].any() and not adj[0, 3:, :3].any()


@pytest.mark.parametrize("options", [{"hint_feedback": "hard"}, {"encode_hints": False, "decode_hints": False}])
def test_model_options_run(options):
    batch = random_batch(SPEC, sizes=[4, 6], lengths=[3, 2])
    pred = model_for("gmpnn", **options)(batch, teacher_forcing=0.5)
    loss, _ = total_loss(SPEC, pred, batch)
    loss.backward()
    assert bool(pred.hints) == options.get("decode_hints", True)


def test_bfloat16_precision_runs_and_returns_float32_logits():
    batch = random_batch(SPEC, sizes=[4, 6], lengths=[3, 2])
    pred = model_for("triplet_gmpnn", precision="bfloat16")(batch)
    assert all(v.dtype == torch.float32 for v in pred.outputs.values())
    loss, _ = total_loss(SPEC, pred, batch)
    loss.backward()
    assert torch.isfinite(loss)


@pytest.mark.parametrize("carry", [True, False])
def test_carry_hidden_false_starts_every_step_from_zeros(carry):
    """Without a carried latent the processor sees zeros at every step (all memory is in the hints fed back)."""
    spec = ALGORITHMS["bfs"].spec
    torch.manual_seed(0)
    config = ModelConfig(ProcessorConfig(kind="mpnn", hidden=8), messages="sparse", carry_hidden=carry)
    model = EncodeProcessDecode([spec], config).eval()
    seen: list[torch.Tensor] = []
    step = model.processor.forward_sparse

    def spy(node_fts, edge_fts, graph_fts, pairs, hidden):  # records the latent each step starts from
        seen.append(hidden.clone())
        return step(node_fts, edge_fts, graph_fts, pairs, hidden)

    model.processor.forward_sparse = spy
    batch = random_batch(spec, sizes=[8, 6], lengths=[5, 4], seed=3)
    with torch.no_grad():
        model(batch)
    assert len(seen) > 2 and not seen[0].any()
    assert any(h.any() for h in seen[1:]) == carry
    with pytest.raises(ValueError, match="carry_hidden: false needs encode_hints"):
        ModelConfig(encode_hints=False, decode_hints=False, carry_hidden=False)


@pytest.mark.parametrize("algorithm", ["bellman_ford", "dijkstra", "mst_prim"])
def test_scalars_along_pointers_reproduce_the_traces(algorithm):
    """Fed the true pointer of step t and the true value of step t - 1, the rule of ``Field.along`` gives
    the true distance (key) of step t on every real node, densely and on a flat batch."""
    from nar.models.model import along_pointer_dense, along_pointer_sparse
    from nar.models.sparse import from_dense

    algo = ALGORITHMS[algorithm]
    rng = np.random.default_rng(2)
    trajs = []
    for n in (7, 11):
        trajs += algo.run(er_graphs(rng, 3, n, algo.spec.graph, p_range=(0.2, 0.6))).trajectories()
    batch = collate(algo.spec, trajs)
    (f,) = [f for f in algo.spec.hints if f.along is not None]
    B, N = batch.node_mask.shape
    checked = 0
    for t in range(1, int(batch.lengths.max())):
        real = batch.node_mask & (batch.lengths > t)[:, None]  # (B, N): real nodes of graphs still running
        pointer = torch.nn.functional.one_hot(batch.hints["pi_h"][:, t], N).float()  # (B, N, N)
        got = along_pointer_dense(f, pointer, batch.hints[f.name][:, t - 1].float(), batch.inputs["A"].float())
        want = batch.hints[f.name][:, t].float()
        torch.testing.assert_close(got[real], want[real])
        checked += int(real.sum())
    sb = from_dense(algo.spec, batch, message_adjacency(algo.spec, batch.inputs, batch.node_mask))
    pairs = sb.pairs
    for t in range(1, int(sb.lengths.max())):
        real = (sb.lengths > t)[pairs.node_graph]  # (V,)
        choice = (sb.hints["pi_h"][:, t][pairs.receivers] == pairs.senders).float()  # (P,) on j -> i: i -> j
        got = along_pointer_sparse(f, choice, sb.hints[f.name][:, t - 1].float(), sb.inputs["A"].float(), pairs)
        torch.testing.assert_close(got[real], sb.hints[f.name][:, t].float()[real])
        checked += int(real.sum())
    assert checked >= 100
    # the wrong rule fails: a path sum read as an edge weight (or the reverse) changes the values
    other = dataclasses.replace(f, along=("pi_h", "edge" if f.along[1] == "path" else "path"))
    pointer = torch.nn.functional.one_hot(batch.hints["pi_h"][:, 2], N).float()
    wrong = along_pointer_dense(other, pointer, batch.hints[f.name][:, 1].float(), batch.inputs["A"].float())
    assert not torch.allclose(wrong[batch.node_mask], batch.hints[f.name][:, 2].float()[batch.node_mask])


@pytest.mark.parametrize("messages", ["dense", "sparse"])
@pytest.mark.parametrize("feedback", ["hard", "soft"])
def test_scalars_along_pointers_are_what_the_model_feeds_back(messages, feedback):
    """With ``scalars_along_pointers`` the distance fed to each step is the one its fed pointer implies
    (not the decoded one); without it the decoded one. Dense batches and flat ones alike."""
    from nar.models.model import along_pointer_dense, along_pointer_sparse
    from nar.models.sparse import from_dense

    spec = ALGORITHMS["bellman_ford"].spec
    f = spec.field("d")
    batch = random_batch(spec, sizes=[6, 6], lengths=[5, 5], seed=4)
    sb = from_dense(spec, batch, message_adjacency(spec, batch.inputs, batch.node_mask))
    for along in (True, False):
        torch.manual_seed(0)
        proc = ProcessorConfig(kind="mpnn", hidden=8)
        config = ModelConfig(proc, messages=messages, hint_feedback=feedback, scalars_along_pointers=along)
        model = EncodeProcessDecode([spec], config).eval()
        enc = model.encoders["bellman_ford"]
        fed: list[dict[str, torch.Tensor]] = []
        encode = enc.encode_hints

        def spy(hints, node_mask, reverse=None, slack=None, fed=fed, encode=encode):  # the hints each step is fed
            fed.append({k: v.detach().clone() for k, v in hints.items()})
            return encode(hints, node_mask, reverse, slack)

        enc.encode_hints = spy
        with torch.no_grad():
            pred = model(batch) if messages == "dense" else model.forward_sparse(sb)
        assert len(fed) == 4
        for t in range(1, 4):
            if messages == "dense":
                implied = along_pointer_dense(f, fed[t]["pi_h"], fed[t - 1]["d"], batch.inputs["A"].float())
            else:
                choice = fed[t]["pi_h"][sb.pairs.reverse]  # the fed feature of i -> j, read on j -> i
                implied = along_pointer_sparse(f, choice, fed[t - 1]["d"], sb.inputs["A"].float(), sb.pairs)
            decoded = pred.hints["d"][:, t - 1]  # (B, N) or (V,)
            if along:
                torch.testing.assert_close(fed[t]["d"], implied)
                assert not torch.allclose(fed[t]["d"], decoded)
            else:
                torch.testing.assert_close(fed[t]["d"], decoded)
        if feedback == "hard":  # one pointer a node: the implied distance is exact, not an expectation
            rows = (
                fed[3]["pi_h"].sum(-1)
                if messages == "dense"
                else torch.zeros(sb.pairs.num_nodes).index_add_(0, sb.pairs.senders, fed[3]["pi_h"])
            )
            assert torch.all(rows == 1)
    with pytest.raises(ValueError, match="scalars_along_pointers: true needs encode_hints"):
        ModelConfig(encode_hints=False, decode_hints=False, scalars_along_pointers=True)


def test_pointers_fed_back_on_one_way_edges_and_distances_along_them():
    """A flat batch that lists edges only (as transfer's): 0 <-> 1, 1 -> 2 one way, self-loops, node 3 alone. A
    pointer is fed back on the pair that names it, 0 where that pair is no message pair (not the last pair's
    value), and the distance along a pointer over a one-way edge needs no reverse pair."""
    from nar.models.model import along_pointer_sparse
    from nar.models.sparse import Pairs, pointer_choice, sparse_features, sparse_postprocess

    spec = ALGORITHMS["bellman_ford"].spec
    senders, receivers = torch.tensor([0, 1, 0, 1, 1, 2, 3]), torch.tensor([0, 0, 1, 1, 2, 2, 3])
    pairs = Pairs(senders, receivers, torch.zeros(4, dtype=torch.long), 1)
    logits = torch.tensor([5.0, 0.0, 5.0, 0.0, 5.0, 0.0, 5.0])  # 0 -> 0, 1 -> 0, 2 -> 1 (the one-way edge), 3 -> 3
    fed = sparse_postprocess(spec.field("pi_h"), logits, True, pairs)
    assert fed.tolist() == sparse_features(spec.field("pi_h"), torch.tensor([0, 0, 1, 3]), pairs).tolist()
    assert fed.tolist() == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]  # pair 1 -> 2 has no reverse: 0, not pair -1's 1
    weights = torch.tensor([0.0, 2.0, 2.0, 0.0, 3.0, 0.0, 0.0])  # w(0 -> 1) = w(1 -> 0) = 2, w(1 -> 2) = 3
    choice = pointer_choice(logits, True, pairs)
    d = along_pointer_sparse(spec.field("d"), choice, torch.tensor([0.0, 2.0, 9.0, 0.0]), weights, pairs)
    assert d.tolist() == [0.0, 2.0, 5.0, 0.0]


def test_weight_scale_jitter_shrinks_each_graphs_scale_while_training_only():
    """Training: c in [(1 - jitter) c, c], drawn per graph; eval: exactly the eccentricity scale."""
    from nar.models.sparse import eccentricity_scale, from_dense

    spec = ALGORITHMS["bellman_ford"].spec
    rng = np.random.default_rng(5)
    batch = collate(spec, ALGORITHMS["bellman_ford"].run(er_graphs(rng, 6, 10, spec.graph)).trajectories())
    sb = from_dense(spec, batch, message_adjacency(spec, batch.inputs, batch.node_mask))
    exact = eccentricity_scale(spec, sb)  # (G,)
    config = ModelConfig(ProcessorConfig(kind="mpnn", hidden=8), messages="sparse", weight_scale="eccentricity")
    jittered = dataclasses.replace(config, weight_scale_jitter=0.5)
    model = EncodeProcessDecode([spec], jittered)
    torch.manual_seed(0)
    scale = model.train().forward_sparse(sb).weight_scale
    assert torch.all(scale <= exact) and torch.all(scale >= 0.5 * exact) and not torch.allclose(scale, exact)
    assert len(set((scale / exact).tolist())) == len(exact)  # one draw a graph
    torch.testing.assert_close(model.eval().forward_sparse(sb).weight_scale, exact)
    torch.manual_seed(0)
    plain = EncodeProcessDecode([spec], config).train().forward_sparse(sb).weight_scale
    torch.testing.assert_close(plain, exact)
    for bad in (1.0, -0.1, "a lot", True):
        with pytest.raises(ValueError, match="weight_scale_jitter"):
            dataclasses.replace(config, weight_scale_jitter=bad)
    with pytest.raises(ValueError, match="weight_scale_jitter needs a weight_scale"):
        dataclasses.replace(config, weight_scale="none", weight_scale_jitter=0.5)


def test_along_slack_is_the_relaxation_slack_in_mean_edge_weights():
    """By hand on a flat batch: 0 <-> 1 (w 2), 1 -> 2 one way (w 4), self pairs; mean edge weight (2 + 2 + 4) / 3.
    Pair j -> i: softsign((d_j + w(j -> i) - d_i) / mean) (Prim's key: w(j -> i) - key_i), 0 on self pairs,
    1 on the pair 2 -> 1 that is no edge (the reverse of a one-way edge)."""
    from nar.models.model import SlackSparse
    from nar.models.sparse import Pairs, SparseBatch

    senders, receivers = torch.tensor([0, 1, 0, 1, 2, 1, 2]), torch.tensor([0, 0, 1, 1, 1, 2, 2])
    pairs = Pairs(senders, receivers, torch.zeros(3, dtype=torch.long), 1)
    weights = torch.tensor([0.0, 2.0, 2.0, 0.0, 0.0, 4.0, 0.0])
    is_edge = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0])  # the adj input: self-loops, no 2 -> 1
    mean = 8.0 / 3.0
    value = torch.tensor([0.0, 3.0, 5.0])

    def expected(via_0_1, via_1_0, via_1_2, value):
        s = lambda x: x / (1 + abs(x))  # noqa: E731  softsign
        return [0.0, s((via_1_0 - value[0]) / mean), s((via_0_1 - value[1]) / mean), 0.0, 1.0,
                s((via_1_2 - value[2]) / mean), 0.0]  # fmt: skip

    for algorithm, field, vias in (("bellman_ford", "d", (0.0 + 2, 3.0 + 2, 3.0 + 4)), ("mst_prim", "key", (2, 2, 4))):
        spec = ALGORITHMS[algorithm].spec
        inputs = {"A": weights, "adj": is_edge}
        sb = SparseBatch(algorithm, inputs, {}, {}, pairs, torch.tensor([3]), torch.tensor([3]))
        model = EncodeProcessDecode([spec], ModelConfig(ProcessorConfig(hidden=8), along_slack=True))
        got = SlackSparse(model.encoders[algorithm], sb)({field: value})[field]
        torch.testing.assert_close(got, torch.tensor(expected(*vias, value.tolist())))


@pytest.mark.parametrize("messages", ["dense", "sparse"])
def test_along_slack_dense_equals_sparse_and_is_fed_to_the_encoder(messages):
    """On random directed graphs (one-way edges, non-edges) the dense channel equals the flat one on every
    message pair; each step's encoder gets the slack of the very distances fed to that step."""
    from nar.data.samplers import GraphSamplerConfig, sample_graphs
    from nar.models.model import SlackDense, SlackSparse
    from nar.models.sparse import from_dense

    algo = ALGORITHMS["bellman_ford"]
    rng = np.random.default_rng(3)
    graphs = sample_graphs(algo.spec.graph, GraphSamplerConfig(kind="geometric", oneway=0.4), 9, 3, rng)
    batch = collate(algo.spec, algo.run(graphs).trajectories())
    adj = message_adjacency(algo.spec, batch.inputs, batch.node_mask)
    sb = from_dense(algo.spec, batch, adj)
    options = {"messages": messages, "scalars_along_pointers": True, "along_slack": True}
    model = EncodeProcessDecode([algo.spec], ModelConfig(ProcessorConfig(kind="mpnn", hidden=8), **options))
    enc = model.encoders["bellman_ford"]
    d = batch.hints["d"][:, 3]  # (B, N) some step's distances
    dense = SlackDense(enc, batch, adj)({"d": d}, 3)["d"]  # (B, N_j, N_i)
    flat = SlackSparse(enc, sb)({"d": d[batch.node_mask]})["d"]  # (P,)
    local = torch.arange(sb.pairs.num_nodes) - sb.node_offset[sb.pairs.node_graph]
    torch.testing.assert_close(dense[sb.pairs.graph, local[sb.pairs.senders], local[sb.pairs.receivers]], flat)
    assert (flat == 1.0).any() and (flat.abs() < 1.0).any()  # non-edges and edges both present

    seen = []
    original = enc.encode_hints

    def spy(hints, node_mask, reverse=None, slack=None):
        seen.append((hints["d"].clone(), slack["d"].clone()))
        return original(hints, node_mask, reverse, slack)

    enc.encode_hints = spy
    with torch.no_grad():
        model.eval()(batch)
    assert len(seen) > 2
    for fed, slack in seen:
        if messages == "sparse":
            own = SlackSparse(enc, sb)  # unscaled weights: weight_scale is off
            torch.testing.assert_close(slack, own({"d": fed})["d"])
        else:
            k = fed.shape[0]
            torch.testing.assert_close(slack, SlackDense(enc, batch, adj)({"d": fed}, k)["d"])


def test_along_slack_needs_a_field_that_follows_a_pointer_and_hints():
    with pytest.raises(ValueError, match="along_slack: none of"):
        EncodeProcessDecode([ALGORITHMS["bfs"].spec], ModelConfig(ProcessorConfig(hidden=8), along_slack=True))
    with pytest.raises(ValueError, match="along_slack: true needs encode_hints"):
        ModelConfig(encode_hints=False, decode_hints=False, along_slack=True)
    with pytest.raises(ValueError, match="along_slack must be true or false"):
        ModelConfig(along_slack="yes")
