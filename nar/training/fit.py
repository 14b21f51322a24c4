"""The one optimisation loop: pretraining and transfer plug in their model, batches, loss and hooks.

::

    best = BestWeights(ties="later")
    steps = fit(model, adam([(model.parameters(), 1e-3)]), batches, loss,
                steps=1000, grad_clip=1.0, scheduler=scheduler, validate_every=100,
                on_step=lambda step, loss, validate: ...)   # True stops early

Every step (``step`` counts the steps already taken, from ``start``):

1. ``batch = batches(step)``: the caller's batch source (a function of the step for a run
   that must resume exactly, a sampler with its own generator otherwise);
2. ``loss_value, parts = loss(model, batch)`` (a scalar tensor and named float terms);
3. a non-finite loss, or a finite one over ``divergence_factor`` x the first step's, raises
   :class:`TrainingDiverged` before any weight changes;
4. zero_grad, backward, clip the global gradient norm of the trainable parameters to
   ``grad_clip`` (a non-finite norm raises :class:`TrainingDiverged`), optimiser step,
   scheduler step;
5. ``on_step(step + 1, loss_value, validate)`` with ``validate`` True every
   ``validate_every`` steps and at the last: the caller validates, keeps the best weights
   (:class:`BestWeights`), logs, checkpoints; it returns True to stop (early stopping).

``stop_at`` ends the loop before that step as an interrupted run would (tests of resuming).
bf16 autocast is the models' own (``nar.models.layers.autocast``), not the loop's.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal, TypeVar

import torch
from torch import Tensor, nn

from nar.errors import NarError

B = TypeVar("B")
Loss = Callable[[nn.Module, B], tuple[Tensor, Mapping[str, float]]]
#: (step + 1, loss value, whether this step validates) -> True to stop
OnStep = Callable[[int, float, bool], bool | None]
#: (what went wrong, its value, the 1-based step, the loss terms) -> the error message
Describe = Callable[[str, float, int, Mapping[str, float]], str]


class TrainingDiverged(NarError, RuntimeError):
    """The loss (or gradient norm) became NaN or infinite, or the loss exploded while finite."""


def resolve_device(name: str = "auto") -> torch.device:
    """ "auto": CUDA when available, else CPU; any other name as torch spells it ("cpu", "cuda:1")."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def adam(groups: Sequence[tuple[Iterable[nn.Parameter], float]]) -> torch.optim.Adam:
    """Adam over parameter groups given as (parameters, learning rate), in this order."""
    return torch.optim.Adam([{"params": list(params), "lr": lr} for params, lr in groups])


def diverged_message(what: str, value: float, step: int, parts: Mapping[str, float]) -> str:
    terms = ", ".join(f"{k}={v:.4g}" for k, v in parts.items())
    return f"training stopped: the {what} is {value} at step {step}" + (f" ({terms})" if terms else "")


class BestWeights:
    """The best validation score so far, its step and (optionally) a copy of its weights.

    ties: "later" keeps the later of equal scores (longer-trained weights), "earlier" the first.
    patience: validations in a row without improvement after which :attr:`exhausted` is True.
    """

    def __init__(
        self,
        ties: Literal["later", "earlier"] = "later",
        patience: int | None = None,
        score: float = -math.inf,
        step: int = 0,
    ) -> None:
        self.ties, self.patience = ties, patience
        self.score, self.step = score, step
        self.state: dict[str, Tensor] | None = None
        self.stale = 0  # validations since the last improvement

    def offer(self, score: float, step: int, model: nn.Module | None = None) -> bool:
        """Record a validation; True when it is the new best (then ``model``'s weights are copied,
        unless ``model`` is None: the caller keeps them, e.g. in a checkpoint file)."""
        better = score >= self.score if self.ties == "later" else score > self.score
        if not better:
            self.stale += 1
            return False
        self.score, self.step, self.stale = score, step, 0
        if model is not None:
            self.state = copy.deepcopy(model.state_dict())
        return True

    @property
    def exhausted(self) -> bool:
        return self.patience is not None and self.stale > 0 and self.stale >= self.patience

    def restore(self, model: nn.Module) -> None:
        """Load the kept weights into ``model`` (nothing when none were copied)."""
        if self.state is not None:
            model.load_state_dict(self.state)


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Callable[[int], B],
    loss: Loss,
    *,
    steps: int,
    grad_clip: float,
    validate_every: int,
    on_step: OnStep,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    start: int = 0,
    stop_at: int | None = None,
    divergence_factor: float | None = None,
    describe: Describe = diverged_message,
) -> int:
    """Train from step ``start`` to ``steps`` (module docstring); returns the steps taken in all."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    first: float | None = None  # the reference of the divergence check
    step = start
    while step < steps:
        if stop_at is not None and step >= stop_at:
            break
        total, parts = loss(model, batches(step))
        value = float(total.detach())
        if not math.isfinite(value):
            raise TrainingDiverged(describe("loss", value, step + 1, parts))
        first = value if first is None else first
        if divergence_factor is not None and value > divergence_factor * first:
            what = f"loss, over {divergence_factor:g}x the first step's {first:.4g} (diverging),"
            raise TrainingDiverged(describe(what, value, step + 1, parts))
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(trainable, grad_clip))
        if not math.isfinite(grad_norm):
            raise TrainingDiverged(describe("gradient norm", grad_norm, step + 1, parts))
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        step += 1
        if on_step(step, value, step % validate_every == 0 or step == steps):
            break
    return step
