"""The transfer variants are registered once (``nar.transfer.variants``): everything else reads the table, and a
new baseline is one function plus one entry (issue 15)."""

import numpy as np
import pytest

from nar.transfer import variants as variants_module
from nar.transfer.config import TaskTransferParams, parse_transfer_params
from nar.transfer.evaluate.figures import COLORS
from nar.transfer.models import CostModel, TransferModel, TurnCostModel
from nar.transfer.train import RunSpec, TaskData, build_model, train_run
from nar.transfer.variants import (
    NEEDS_NETWORK,
    NEEDS_PROCESSOR,
    TRAINED,
    TRANSFER_VARIANTS,
    UNTRAINED,
    VARIANTS,
    Variant,
)


def test_every_entry_is_trained_or_predicts_and_its_function_resolves():
    assert VARIANTS == tuple(TRANSFER_VARIANTS)
    assert set(TRAINED) | set(UNTRAINED) == set(VARIANTS) and not set(TRAINED) & set(UNTRAINED)
    for name, v in TRANSFER_VARIANTS.items():
        assert (v.build is None) != (v.predict is None), name
        assert callable(v.builder() if v.trained else v.predictor()), name
    assert set(NEEDS_PROCESSOR) == {"nar_frozen", "nar_costs", "nar_finetune", "e2e", "ceiling"}
    assert TRANSFER_VARIANTS["ceiling"].processor == "frozen" and not TRANSFER_VARIANTS["ceiling"].trained
    assert TRANSFER_VARIANTS["nar_costs"].processor == "frozen" and TRANSFER_VARIANTS["nar_costs"].trained
    assert NEEDS_NETWORK == ("nar_costs", "ceiling") and set(NEEDS_NETWORK) <= set(NEEDS_PROCESSOR)
    with pytest.raises(ValueError, match="set processor"):
        Variant("a network without its processor", "tab:pink", predict="m:f", needs_network=True)
    assert list(COLORS) == list(VARIANTS) and len(set(COLORS.values())) == len(COLORS)  # one colour each


def test_params_accept_exactly_the_registered_variants():
    assert parse_transfer_params({"variants": list(VARIANTS)}).variants == VARIANTS
    with pytest.raises(Exception, match=r"transfer\.variants\[0\].*one of"):
        parse_transfer_params({"variants": ["shortest_by_eye"]})


def test_the_builders_make_each_variants_model(natural_root, turns_root, processor_dir):
    from nar.registry import load_processor

    params = TaskTransferParams(width=8, batch_size=4, max_steps=2, val_examples=4, precision="float32")
    road = TaskData.load(str(natural_root), "road", params)
    turns = TaskData.load(str(turns_root), "road_turns", params)
    proc = load_processor(processor_dir)
    kinds = {
        "nar_frozen": (road, TransferModel),
        "e2e": (road, TransferModel),
        "bottleneck": (road, CostModel),
        "bottleneck_turns": (turns, TurnCostModel),
    }
    for variant, (data, cls) in kinds.items():
        model = build_model(RunSpec(data.task, variant, 4, 0), params, data, proc)
        assert type(model) is cls, variant
    frozen = build_model(RunSpec("road", "nar_frozen", 4, 0), params, road, proc)
    fresh = build_model(RunSpec("road", "e2e", 4, 0), params, road, proc)
    assert frozen.processor is proc and fresh.processor is not proc  # frozen: P itself; e2e: P's shape anew
    with pytest.raises(Exception, match="needs a turn task"):
        build_model(RunSpec("road", "bottleneck_turns", 4, 0), params, road, proc)
    with pytest.raises(ValueError, match="not trained"):
        build_model(RunSpec("road", "oracle", 4, 0), params, road, proc)
    # nar_costs is built on the whole pretrained network, and refuses to be built without it
    from nar.transfer.models import CostsThroughNetwork
    from nar.transfer.record import load_processor_record, network_from_record

    network = network_from_record(load_processor_record(str(processor_dir)))
    costs = build_model(RunSpec("road", "nar_costs", 4, 0), params, road, proc, network=network)
    assert type(costs) is CostsThroughNetwork and costs.processor is network.processor
    assert type(costs.encoder) is CostModel and not any(p.requires_grad for p in network.parameters())
    with pytest.raises(ValueError, match="needs the whole pretrained network"):
        build_model(RunSpec("road", "nar_costs", 4, 0), params, road, proc)


def source_everywhere(split, algorithm, limit=None):
    """A made-up untrained baseline for the test: every node points at the source."""
    return [np.full(ex.num_nodes, ex.source) for ex in split.examples[:limit]]


def test_a_new_baseline_is_one_function_and_one_entry(natural_root, monkeypatch):
    entry = Variant("every node points at the source", "tab:pink", predict=f"{__name__}:source_everywhere")
    monkeypatch.setattr(variants_module, "TRANSFER_VARIANTS", {**TRANSFER_VARIANTS, "star": entry})
    import nar.transfer.train as train_module

    monkeypatch.setattr(train_module, "TRANSFER_VARIANTS", variants_module.TRANSFER_VARIANTS)
    params = TaskTransferParams(width=8, batch_size=4, max_steps=2, val_examples=4, precision="float32")
    data = TaskData.load(str(natural_root), "road", params)
    r = train_run(RunSpec("road", "star", 8, 0), params, data, None)
    assert r.steps == 0 and set(r.metrics) == {"val", "test", "ood"}
    test = data.splits["test"]
    right = sum(int((np.full(ex.num_nodes, ex.source) == ex.pi).sum()) for ex in test.examples)
    assert r.metrics["test"]["pointer_acc"] == pytest.approx(right / sum(ex.num_nodes for ex in test.examples))
