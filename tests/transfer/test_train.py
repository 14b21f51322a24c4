import dataclasses

import pytest
import torch

from nar.registry import load_registered, weights_sha256
from nar.transfer.config import TaskTransferParams
from nar.transfer.solver import tree_hinge_loss
from nar.transfer.train import (
    FrozenProcessorChanged,
    RunSpec,
    TaskData,
    build_model,
    loss_of,
    train_run,
    training_subset,
)

FAST = TaskTransferParams(
    width=8, batch_size=4, max_steps=3, eval_every=2, patience=2, val_examples=4, precision="float32"
)


@pytest.fixture(scope="module")
def data(natural_root):
    return {t: TaskData.load(str(natural_root), t, FAST) for t in ("digit_grid", "road")}


@pytest.fixture
def processor(processor_dir):
    return load_registered(str(processor_dir))


@pytest.mark.parametrize("task", ["digit_grid", "road"])
@pytest.mark.parametrize("variant", ["nar_frozen", "nar_finetune", "e2e", "bottleneck", "heuristic", "oracle"])
def test_each_variant_trains_a_few_steps(data, processor, task, variant):
    r = train_run(
        RunSpec(task, variant, 8, 0), FAST, data[task], processor.processor, eval_batch_size=4, keep_state=True
    )
    assert set(r.metrics) == {"val", "test", "ood"}
    for m in r.metrics.values():
        assert 0.0 <= m["pointer_acc"] <= 1.0 and 0.0 <= m["path_match"] <= 1.0
        assert m["invalid"] + round(m["path_match"] * m["examples"]) <= m["examples"]
    if variant == "oracle":
        assert all(
            m["pointer_acc"] == 1.0 and m["path_match"] == 1.0 and m["regret"] == 0.0 for m in r.metrics.values()
        )
        return
    if variant == "heuristic":  # no training: nothing to keep, no curve
        assert r.steps == 0 and not r.curve and r.state is None
        return
    assert r.steps == 3 and [c["step"] for c in r.curve] == [2, 3]
    assert r.state
    if variant == "nar_frozen":
        assert not any(k.startswith("runner.processor.") for k in r.state)  # referenced, not stored
    elif variant in ("nar_finetune", "e2e"):
        assert any(k.startswith("runner.processor.") for k in r.state)
    if variant == "nar_finetune":  # starts from the pretrained weights and moves them
        key = "runner.processor.z_proj.weight"
        assert not torch.equal(r.state[key], processor.processor.state_dict()["z_proj.weight"])


def test_frozen_processor_stays_bit_identical(data, processor):
    proc = processor.processor
    before = weights_sha256(proc)
    assert before == processor.sha256
    r = train_run(RunSpec("road", "nar_frozen", 8, 1), FAST, data["road"], proc, eval_batch_size=4)
    assert r.processor_sha256_before == r.processor_sha256_after == before == weights_sha256(proc)
    assert not any(p.requires_grad for p in proc.parameters())


def test_finetune_leaves_the_shared_processor_alone(data, processor):
    proc = processor.processor
    before = weights_sha256(proc)
    train_run(RunSpec("road", "nar_finetune", 8, 0), FAST, data["road"], proc, eval_batch_size=4)
    assert weights_sha256(proc) == before


@pytest.mark.fault(
    category="registry",
    fault="the frozen processor's weights change during transfer training",
    expected="fails loudly (sha256 before/after)",
)
def test_a_changed_frozen_processor_fails_loudly(data, processor, monkeypatch):
    import nar.transfer.train as train_mod

    proc = processor.processor
    real = train_mod.loss_of

    def tampering(model, b, params):
        with torch.no_grad():
            next(proc.parameters()).add_(1e-3)  # something writes into the "frozen" weights
        return real(model, b, params)

    monkeypatch.setattr(train_mod, "loss_of", tampering)
    with pytest.raises(FrozenProcessorChanged, match="sha256 changed"):
        train_run(RunSpec("road", "nar_frozen", 8, 0), FAST, data["road"], proc, eval_batch_size=4)


def test_training_subsets_are_nested_and_seeded():
    a, b = training_subset(100, 10, 0), training_subset(100, 20, 0)
    assert set(a) <= set(b) and len(set(b)) == 20
    assert not set(training_subset(100, 10, 1)) == set(a)
    with pytest.raises(Exception, match="exceeds"):
        training_subset(10, 11, 0)


def test_runs_are_deterministic(data, processor):
    spec = RunSpec("road", "e2e", 8, 2)
    r1 = train_run(spec, FAST, data["road"], processor.processor, eval_batch_size=4)
    r2 = train_run(spec, FAST, data["road"], processor.processor, eval_batch_size=4)
    assert r1.metrics == r2.metrics and r1.curve == r2.curve


@pytest.mark.parametrize("task", ["digit_grid", "road"])
def test_nar_costs_trains_around_the_whole_frozen_network(data, processor_dir, task):
    """nar_costs: the cost network and a new decoder learn, the pretrained network (processor included)
    stays bit-identical and is referenced, not stored; without the network it stops with one line."""
    from nar.transfer.record import load_processor_record, network_from_record, processor_from_record

    record = load_processor_record(str(processor_dir))
    network = network_from_record(record)
    before = weights_sha256(network)
    spec = RunSpec(task, "nar_costs", 8, 0)
    r = train_run(
        spec, FAST, data[task], processor_from_record(record), eval_batch_size=4, keep_state=True, network=network
    )
    assert r.processor_sha256_before == r.processor_sha256_after == record.sha256
    assert weights_sha256(network) == before and not any(p.requires_grad for p in network.parameters())
    assert r.steps == 3 and set(r.metrics) == {"val", "test", "ood"}
    assert any(k.startswith("encoder.") for k in r.state) and any(k.startswith("decoder.") for k in r.state)
    assert not any(k.startswith("network.") for k in r.state)
    with pytest.raises(ValueError, match="needs the whole pretrained network"):
        train_run(spec, FAST, data[task], processor_from_record(record), eval_batch_size=4)


def test_nar_costs_adds_the_tree_hinge_on_its_costs_when_weighted(data, processor_dir):
    """cost_hinge_weight: nar_costs' loss is the pointer loss plus the weighted tree hinge on f~'s costs."""
    from nar.transfer.models import pointer_loss
    from nar.transfer.record import load_processor_record, network_from_record, processor_from_record

    record = load_processor_record(str(processor_dir))
    network = network_from_record(record)
    params = dataclasses.replace(FAST, cost_hinge_weight=3.0, bottleneck_margin=0.1)
    spec = RunSpec("road", "nar_costs", 8, 0)
    model = build_model(spec, params, data["road"], processor_from_record(record), network=network)
    b = data["road"].train.batch(range(4))
    want = pointer_loss(model(b), b) + 3.0 * tree_hinge_loss(model.encoder(b), b, 0.1)
    torch.testing.assert_close(loss_of(model, b, params), want)
    unweighted = loss_of(model, b, dataclasses.replace(params, cost_hinge_weight=0.0))
    torch.testing.assert_close(unweighted, pointer_loss(model(b), b))
    r = train_run(spec, params, data["road"], processor_from_record(record), eval_batch_size=4, network=network)
    assert r.steps == 3 and all(0.0 <= m["pointer_acc"] <= 1.0 for m in r.metrics.values())


def test_scalar_interface_variants_add_the_tree_hinge_on_their_edge_scalars_only_when_named(
    data, processor, monkeypatch
):
    """cost_hinge_variants: nar_frozen (scalar interface) adds the weighted hinge on softplus(s_uv), the scalars it
    feeds the processor; a variant not named trains on the pointer loss alone."""
    import nar.transfer.train as train_mod
    from nar.transfer.models import pointer_loss

    params = dataclasses.replace(
        FAST, interface="scalar", cost_hinge_weight=2.0, cost_hinge_variants=("nar_frozen",), bottleneck_margin=0.1
    )
    model = build_model(RunSpec("road", "nar_frozen", 8, 0), params, data["road"], processor.processor)
    b = data["road"].train.batch(range(4))
    logits, scalars = model.logits_and_costs(b)
    assert scalars is not None and scalars.shape == (b.edge_src.shape[0],) and bool((scalars > 0).all())
    torch.testing.assert_close(logits, model(b))
    want = pointer_loss(logits, b) + 2.0 * tree_hinge_loss(scalars, b, 0.1)
    torch.testing.assert_close(loss_of(model, b, params), want)

    seen: dict[str, set[float]] = {}
    real = train_mod.loss_of

    def recording(m, batch, p):
        seen.setdefault(variant, set()).add(p.cost_hinge_weight)
        return real(m, batch, p)

    monkeypatch.setattr(train_mod, "loss_of", recording)
    for variant in ("nar_frozen", "e2e"):
        r = train_run(RunSpec("road", variant, 8, 0), params, data["road"], processor.processor, eval_batch_size=4)
        assert r.steps == 3
    assert seen == {"nar_frozen": {2.0}, "e2e": {0.0}}
    latent = build_model(
        RunSpec("road", "nar_frozen", 8, 0), dataclasses.replace(params, interface="latent"), data["road"],
        processor.processor,
    )  # fmt: skip
    assert latent.logits_and_costs(b)[1] is None
    with pytest.raises(ValueError, match="interface 'scalar'"):
        loss_of(latent, b, params)


def test_tree_decoding_scores_no_invalid_path(data, processor):
    """pointer_decoding: tree reaches the scores (and early stopping): after 3 steps argmax pointers still leave
    invalid paths, the tree decoding of the same weights none."""
    spec = RunSpec("road", "nar_frozen", 8, 0)
    argmax = train_run(spec, FAST, data["road"], processor.processor, eval_batch_size=4)
    tree = dataclasses.replace(FAST, pointer_decoding="tree")
    r = train_run(spec, tree, data["road"], processor.processor, eval_batch_size=4)
    assert sum(m["invalid"] for m in argmax.metrics.values()) > 0
    assert all(m["invalid"] == 0 for m in r.metrics.values())


@pytest.mark.parametrize("task", ["digit_grid", "road"])
def test_the_bottleneck_trains_on_the_tree_hinge_with_context(data, processor, task):
    """The bottleneck options of reports/transfer_notes.md §12 reach the cost network and its loss: the model has
    its context rounds, the training loss is the tree hinge, and a run trains and scores."""
    params = dataclasses.replace(FAST, cost_context=2, bottleneck_loss="tree_hinge", bottleneck_margin=0.1)
    model = build_model(RunSpec(task, "bottleneck", 8, 0), params, data[task], processor.processor)
    assert len(model.context) == 2
    b = data[task].train.batch(range(4))
    torch.testing.assert_close(loss_of(model, b, params), tree_hinge_loss(model(b), b, 0.1))
    r = train_run(RunSpec(task, "bottleneck", 8, 0), params, data[task], processor.processor, eval_batch_size=4)
    assert all(0.0 <= m["pointer_acc"] <= 1.0 for m in r.metrics.values())


def test_edge_norm_zeroes_features_constant_in_training_and_clips_the_rest():
    """A feature that never varies on the training subset (a tag absent from the training band) must not turn
    into a huge input where it does vary; the others are standardised and clipped."""
    import numpy as np

    from nar.transfer.train import EdgeNorm

    train = np.array([[0.0, 1.0], [0.0, 3.0], [0.0, 1.0], [0.0, 3.0]], dtype=np.float32)  # column 0 constant
    norm = EdgeNorm(train.mean(axis=0), train.std(axis=0))
    x = torch.tensor([[1.0, 3.0], [0.0, 100.0], [0.0, -100.0]])
    z = norm(x)
    assert z[:, 0].abs().max() == 0  # 1.0 was never seen in training: ignored, not 1 / 0.001
    assert z[0, 1] == pytest.approx(1.0)  # (3 - 2) / 1
    assert z[1, 1] == EdgeNorm.CLIP and z[2, 1] == -EdgeNorm.CLIP
