"""The one optimisation loop (nar.training.fit): its contract with the batch source, loss and hook."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nar.training.fit import BestWeights, TrainingDiverged, adam, fit, resolve_device


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(3, 1)


def _batches(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(step)  # a function of the step alone
    x = torch.randn(8, 3, generator=g)
    return x, x.sum(-1, keepdim=True)


def _mse(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    x, y = batch
    loss = ((model(x) - y) ** 2).mean()
    return loss, {"mse": float(loss.detach())}


def test_fit_takes_the_steps_and_validates_every_k_and_at_the_last():
    model = _model()
    calls: list[tuple[int, bool]] = []
    steps = fit(
        model,
        adam([(model.parameters(), 0.05)]),
        _batches,
        _mse,
        steps=7,
        grad_clip=1.0,
        validate_every=3,
        on_step=lambda step, value, validating: calls.append((step, validating)),
    )
    assert steps == 7
    assert calls == [(1, False), (2, False), (3, True), (4, False), (5, False), (6, True), (7, True)]


def test_fit_resumed_from_a_step_ends_where_an_uninterrupted_run_ends():
    def run(stop_at: int | None, model: nn.Module, opt: torch.optim.Optimizer, start: int = 0) -> int:
        return fit(
            model,
            opt,
            _batches,
            _mse,
            steps=6,
            grad_clip=1.0,
            validate_every=2,
            on_step=lambda *a: None,
            start=start,
            stop_at=stop_at,
        )

    whole = _model()
    run(None, whole, adam([(whole.parameters(), 0.05)]))
    part = _model()
    opt = adam([(part.parameters(), 0.05)])
    assert run(4, part, opt) == 4
    assert run(None, part, opt, start=4) == 6
    assert all(torch.equal(a, b) for a, b in zip(whole.parameters(), part.parameters(), strict=True))


def test_the_hook_stops_early():
    model = _model()
    steps = fit(
        model,
        adam([(model.parameters(), 0.05)]),
        _batches,
        _mse,
        steps=50,
        grad_clip=1.0,
        validate_every=5,
        on_step=lambda step, value, validating: validating and step >= 10,
    )
    assert steps == 10


def test_a_non_finite_loss_stops_before_any_weight_changes():
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]

    def nan_loss(model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
        return model(batch[0]).sum() * math.nan, {}

    with pytest.raises(TrainingDiverged, match="the loss is nan at step 1"):
        fit(
            model,
            adam([(model.parameters(), 0.05)]),
            _batches,
            nan_loss,
            steps=3,
            grad_clip=1.0,
            validate_every=1,
            on_step=lambda *a: None,
        )
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_a_loss_exploding_past_the_divergence_factor_stops():
    model = _model()
    scale = iter([1.0, 1.0, 1e6])

    def growing(model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
        loss, parts = _mse(model, batch)
        return loss * next(scale), parts

    with pytest.raises(TrainingDiverged, match="diverging"):
        fit(
            model,
            adam([(model.parameters(), 1e-6)]),
            _batches,
            growing,
            steps=3,
            grad_clip=1.0,
            validate_every=1,
            on_step=lambda *a: None,
            divergence_factor=1000.0,
        )


def test_only_trainable_parameters_move():
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1))
    model[0].requires_grad_(False)
    frozen = model[0].weight.detach().clone()
    trainable = [p for p in model.parameters() if p.requires_grad]
    fit(
        model,
        adam([(trainable, 0.05)]),
        _batches,
        _mse,
        steps=3,
        grad_clip=1.0,
        validate_every=3,
        on_step=lambda *a: None,
    )
    assert torch.equal(model[0].weight, frozen)


def test_best_weights_ties_and_patience():
    model = _model()
    later = BestWeights(ties="later")
    assert later.offer(0.5, 1, model) and later.offer(0.5, 2, model) and (later.score, later.step) == (0.5, 2)
    earlier = BestWeights(ties="earlier", patience=2)
    assert earlier.offer(0.5, 1, model) and not earlier.offer(0.5, 2) and earlier.step == 1
    assert not earlier.exhausted
    assert not earlier.offer(0.4, 3) and earlier.exhausted
    kept = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.weight.add_(1.0)
    earlier.restore(model)
    assert all(torch.equal(kept[k], v) for k, v in model.state_dict().items())
    assert not BestWeights(patience=0).exhausted  # no validation yet: nothing to be patient about


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
