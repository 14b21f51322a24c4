"""Losses per type, masked by padding and trajectory length."""

from __future__ import annotations

import math

import torch
from random_batches import all_types_spec, random_batch

from nar.algorithms import Field, Location, Stage, Type
from nar.training.losses import entry_mask, field_loss, hint_step_mask, masked_mean, total_loss

T = torch.tensor


def test_pointer_loss_is_cross_entropy_over_real_nodes():
    f = Field("pi", Stage.OUTPUT, Location.NODE, Type.POINTER)
    logits = T([[[0.0, math.log(3.0), -1e9], [0.0, 0.0, -1e9], [0.0, 0.0, 0.0]]])  # node 2 padded
    target = T([[1, 0, 2]])
    valid = entry_mask(f, T([[True, True, False]]))
    expected = (-math.log(3 / 4) - math.log(1 / 2)) / 2
    assert abs(float(field_loss(f, logits, target, valid)) - expected) < 1e-6


def test_mask_and_scalar_losses():
    m = Field("m", Stage.OUTPUT, Location.NODE, Type.MASK)
    valid = T([[True, True]])
    loss = field_loss(m, T([[0.0, 2.0]]), T([[1.0, 0.0]]), valid)
    expected = (math.log(2) + math.log(1 + math.exp(2))) / 2
    assert abs(float(loss) - expected) < 1e-6
    s = Field("s", Stage.OUTPUT, Location.NODE, Type.SCALAR)
    assert float(field_loss(s, T([[1.0, 3.0]]), T([[0.0, 1.0]]), T([[True, False]]))) == 1.0


def test_mask_one_loss_is_one_entry_per_graph():
    f = Field("u", Stage.OUTPUT, Location.NODE, Type.MASK_ONE)
    logits = T([[0.0, 0.0, -1e9], [0.0, 0.0, 0.0]])
    target = T([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    valid = entry_mask(f, T([[True, True, False], [True, True, True]]))
    assert valid.shape == (2,)
    expected = (math.log(2) + math.log(3)) / 2
    assert abs(float(field_loss(f, logits, target, valid)) - expected) < 1e-6


def test_hint_steps_beyond_a_trajectory_are_ignored():
    assert hint_step_mask(T([3, 1, 2]), 2).tolist() == [[True, True], [False, False], [True, False]]
    assert float(masked_mean(T([1.0, 100.0]), T([True, False]))) == 1.0


def test_total_loss_is_outputs_plus_hints_and_ignores_padding_values():
    spec = all_types_spec()
    batch = random_batch(spec, sizes=[3, 5], lengths=[2, 3])
    from nar.models import EncodeProcessDecode, ModelConfig, ProcessorConfig

    torch.manual_seed(0)
    model = EncodeProcessDecode([spec], ModelConfig(processor=ProcessorConfig(kind="mpnn", hidden=8)))
    with torch.no_grad():
        pred = model(batch)
    total, parts = total_loss(spec, pred, batch)
    assert abs(float(total) - sum(float(v) for v in parts.values())) < 1e-4
    # garbage in padded logits changes nothing
    for k, v in pred.outputs.items():
        f = spec.field(k)
        if f.location == Location.NODE and f.type != Type.MASK_ONE:
            v[0, 3:] = 1e3
    total2, _ = total_loss(spec, pred, batch)
    assert float(total2) == float(total)
