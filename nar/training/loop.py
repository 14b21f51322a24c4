"""The training loop: Adam, gradient clipping, validation with the best checkpoint kept, OOD test.

::

    result = train(model_config, TrainConfig(algorithms=("bellman_ford",), steps=5000),
                   train_data=OnlineBatches(seed=0),            # (algorithm, step) -> Batch
                   val_data={"bellman_ford": val_batches},      # n = 16
                   test_data={"bellman_ford": {"64": test_batches}},
                   out_dir="models/pretrain/bf")

Every step draws one batch per algorithm from ``train_data(algorithm, step)`` and takes one
optimiser step on the summed losses (one shared processor, separate encoders/decoders per
algorithm). Because batches are a function of the step, and the checkpoint holds the model,
optimiser, scheduler, RNG states, step, best score and history, a run killed at any point
(even with SIGKILL) and started again with the same arguments resumes from ``last.pt`` and
ends with the same weights as a run that was never interrupted.

Validation runs every ``eval_every`` steps and at the end; the best validation score (mean
over algorithms of the CLRS output score) is kept in ``best.pt``. The test sets are scored
with the best weights. A non-finite loss or gradient norm stops training with
:class:`TrainingDiverged` and leaves the last good checkpoint untouched.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from nar.algorithms import ALGORITHMS
from nar.data.batching import Batch
from nar.errors import NarError
from nar.models.model import EncodeProcessDecode, ModelConfig
from nar.progress import progress_bar
from nar.runtime import tune_malloc
from nar.training.checkpoint import (
    BEST,
    LAST,
    capture_rng,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
    seed_everything,
)
from nar.training.fit import BestWeights, adam, diverged_message, fit, resolve_device
from nar.training.fit import TrainingDiverged as TrainingDiverged  # re-exported: raised by train
from nar.training.losses import total_loss
from nar.training.metrics import evaluate

TrainData = Callable[[str, int], Batch]


@dataclass(frozen=True)
class TrainConfig:
    """How to train (the data itself comes from the caller).

    lr_schedule: "constant" or "cosine" (decay to ``lr_min_ratio`` × lr over ``steps``).
    eval_every: validate every this many steps (and at the last step).
    checkpoint_every: write ``last.pt`` every this many steps (and after each validation).
    teacher_forcing: probability of feeding ground-truth hints during training (CLRS: 0).
    scalar_loss_weight: weight of the scalar fields' squared errors in the loss (CLRS: 1).
    divergence_factor: stop (TrainingDiverged) when a finite loss exceeds this many times the
        first step's loss: a learning rate too large for the model shows as a loss growing by
        orders of magnitude long before it overflows, and must not end as a recorded result.
    device: "auto" (CUDA when available, else CPU), "cpu" or "cuda[:i]".
    threads: CPU threads for torch's intra-op parallelism (``torch.set_num_threads``);
        0 keeps torch's default (one per core). On a shared 2-core machine one thread runs
        the small matrices of a hidden-64 model at almost the speed of two and is not slowed
        by other processes' load; two threads wait on each other when a core is busy.
    """

    algorithms: tuple[str, ...] = ("bellman_ford",)
    steps: int = 10_000
    learning_rate: float = 1e-3
    lr_schedule: Literal["constant", "cosine"] = "constant"
    lr_min_ratio: float = 0.0
    grad_clip: float = 1.0
    eval_every: int = 500
    checkpoint_every: int = 100
    teacher_forcing: float = 0.0
    scalar_loss_weight: float = 1.0
    divergence_factor: float = 1000.0
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "algorithms", tuple(self.algorithms))
        unknown = [a for a in self.algorithms if a not in ALGORITHMS]
        if not self.algorithms or unknown:
            raise ValueError(f"train algorithms {list(self.algorithms)}: allowed are {sorted(ALGORITHMS)}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"train lr_schedule {self.lr_schedule!r}; allowed: 'constant', 'cosine'")
        for name in ("steps", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train {name} must be >= 1, got {getattr(self, name)}")
        if self.threads < 0:
            raise ValueError(f"train threads must be >= 0 (0: torch's default), got {self.threads}")
        if not 0.0 <= self.teacher_forcing <= 1.0:
            raise ValueError(f"train teacher_forcing must be in [0, 1], got {self.teacher_forcing}")

    def check(self, key: str) -> None:
        """Ranges, named by their params.yaml key (``nar.config.build`` calls this)."""
        from nar.validation import ConfigError

        for name, ok, allowed in (
            ("learning_rate", self.learning_rate > 0, "a number > 0"),
            ("grad_clip", self.grad_clip > 0, "a number > 0"),
            ("lr_min_ratio", 0.0 <= self.lr_min_ratio <= 1.0, "a number in [0, 1]"),
            ("scalar_loss_weight", self.scalar_loss_weight > 0, "a number > 0"),
            ("divergence_factor", self.divergence_factor > 1, "a number > 1"),
        ):
            if not (ok and math.isfinite(getattr(self, name))):
                raise ConfigError(f"{key}.{name}", getattr(self, name), allowed)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["algorithms"] = list(self.algorithms)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"train config: unknown keys {sorted(unknown)}; allowed: {sorted(known)}")
        return cls(**dict(data))


@dataclass
class TrainResult:
    """What ``train`` returns (and what the caller logs / writes as metrics).

    history: one row per validation: step, train_loss (mean since the last row), lr,
        elapsed_s, and ``val/<algorithm>/<metric>`` for every score.
    best_val: scores of the best checkpoint on the validation sets, per algorithm.
    test: per algorithm, per test set label (e.g. "64"), the scores of the best checkpoint.
    """

    best_step: int
    best_score: float
    steps: int
    history: list[dict[str, float]]
    best_val: dict[str, dict[str, float]]
    test: dict[str, dict[str, dict[str, float]]]
    train_seconds: float
    config: dict[str, Any]
    checkpoint_dir: str | None = None
    resumed_from: int | None = None
    model: EncodeProcessDecode | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the model, as plain data (JSON-ready)."""
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.name != "model"}


def build_model(model_config: ModelConfig, algorithms: Sequence[str]) -> EncodeProcessDecode:
    return EncodeProcessDecode([ALGORITHMS[a].spec for a in algorithms], model_config)


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> EncodeProcessDecode:
    """Rebuild a model from a ``best.pt`` / ``last.pt`` checkpoint (its resolved config)."""
    ckpt = load_checkpoint(path, map_location)
    cfg = ckpt["config"]
    model = build_model(ModelConfig.from_dict(cfg["model"]), cfg["train"]["algorithms"])
    model.load_state_dict(ckpt["model"])
    return model


def _lr_lambda(cfg: TrainConfig) -> Callable[[int], float]:
    if cfg.lr_schedule == "constant":
        return lambda step: 1.0
    lo = cfg.lr_min_ratio

    def cosine(step: int) -> float:
        progress = min(step, cfg.steps) / cfg.steps
        return lo + (1.0 - lo) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return cosine


def validate(
    model: EncodeProcessDecode, data: Mapping[str, Sequence[Batch]], device: torch.device
) -> dict[str, dict[str, float]]:
    return {algo: evaluate(model, batches, model.specs[algo], device) for algo, batches in data.items()}


def mean_score(scores: Mapping[str, Mapping[str, float]]) -> float:
    return sum(s["score"] for s in scores.values()) / max(1, len(scores))


def train(
    model_config: ModelConfig,
    train_config: TrainConfig,
    train_data: TrainData,
    val_data: Mapping[str, Sequence[Batch]],
    test_data: Mapping[str, Mapping[str, Sequence[Batch]]] | None = None,
    out_dir: str | Path | None = None,
    *,
    resume: bool = True,
    extra_config: Mapping[str, Any] | None = None,
    on_log: Callable[[dict[str, float]], None] | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train, validate, keep the best checkpoint, test it; see the module docstring.

    out_dir: where ``last.pt`` and ``best.pt`` go (None: keep the best weights in memory).
    resume: continue from ``out_dir/last.pt`` when it exists.
    extra_config: more resolved configuration to store in the checkpoints (data, sampler).
    on_log: called with every history row (e.g. to log metrics to MLflow).
    stop_after: return after this global step without testing, as an interrupted run would
        (for tests of resuming).
    """
    cfg = train_config
    device = resolve_device(cfg.device)
    tune_malloc()  # big tensors reuse freed memory instead of fresh pages (nar.runtime)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    missing = [a for a in cfg.algorithms if a not in val_data]
    if missing:
        raise ValueError(f"no validation data for {missing}")
    resolved = {"model": model_config.to_dict(), "train": cfg.to_dict(), **dict(extra_config or {})}

    seed_everything(cfg.seed)
    model = build_model(model_config, cfg.algorithms).to(device)
    optimizer = adam([(model.parameters(), cfg.learning_rate)])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg))

    out = Path(out_dir) if out_dir is not None else None
    step = 0
    best = BestWeights(ties="later")  # ties go to the later, longer-trained weights
    loss_sum, loss_count = 0.0, 0  # train loss since the last validation
    history: list[dict[str, float]] = []
    best_val: dict[str, dict[str, float]] = {}
    resumed_from = None
    if out is not None and resume and (out / LAST).exists():
        ckpt = load_checkpoint(out / LAST, device)
        _check_same_config(ckpt["config"], resolved, out / LAST)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        restore_rng(ckpt["rng"])
        step, best.score, best.step = ckpt["step"], ckpt["best_score"], ckpt["best_step"]
        history, best_val = list(ckpt["history"]), ckpt["best_val"]
        loss_sum, loss_count = ckpt["loss_window"]
        resumed_from = step

    def batches(step: int) -> list[Batch]:
        # one batch per algorithm (each a function of the step alone, so the order of draws is free)
        return [train_data(algo, step).to(device) for algo in cfg.algorithms]

    def loss(model: nn.Module, step_batches: list[Batch]) -> tuple[torch.Tensor, dict[str, float]]:
        total = torch.zeros((), device=device)  # the summed losses of one shared processor
        parts: dict[str, float] = {}
        for algo, batch in zip(cfg.algorithms, step_batches, strict=True):
            pred = model(batch, cfg.teacher_forcing)
            value, terms = total_loss(model.specs[algo], pred, batch, cfg.scalar_loss_weight)
            total = total + value
            parts.update({f"{algo}/{k}": float(v.detach()) for k, v in terms.items()})
        return total, parts

    def last_payload(step: int) -> dict[str, Any]:
        return {
            "config": resolved,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": capture_rng(),
            "step": step,
            "best_score": best.score,
            "best_step": best.step,
            "best_val": best_val,
            "history": history,
            "loss_window": [loss_sum, loss_count],
        }

    def on_step(step: int, value: float, validating: bool) -> None:
        nonlocal loss_sum, loss_count, best_val
        loss_sum, loss_count = loss_sum + value, loss_count + 1
        bar.update(1)
        if validating:
            scores = validate(model, val_data, device)
            score = mean_score(scores)
            row = {
                "step": step,
                "train_loss": loss_sum / max(1, loss_count),
                "lr": scheduler.get_last_lr()[0],
                "elapsed_s": time.perf_counter() - started,
                "val_score": score,
            }
            row.update({f"val/{a}/{k}": v for a, s in scores.items() for k, v in s.items()})
            history.append(row)
            loss_sum, loss_count = 0.0, 0
            # the best weights go to best.pt when there is a directory, else stay in memory
            if best.offer(score, step, None if out is not None else model):
                best_val = scores
                if out is not None:
                    save_checkpoint(
                        out / BEST,
                        {"config": resolved, "model": model.state_dict(), "step": step, "score": score, "val": scores},
                    )
            bar.set_postfix(loss=f"{row['train_loss']:.3f}", val=f"{score:.3f}", best=f"{best.score:.3f}")
        if out is not None and (validating or step % cfg.checkpoint_every == 0):
            save_checkpoint(out / LAST, last_payload(step))
        # logged after last.pt is on disk: whoever sees this row (MLflow, a test, a person) and stops the
        # run finds a checkpoint that already holds it
        if validating and on_log is not None:
            on_log(history[-1])

    def describe(what: str, value: float, step: int, parts: Mapping[str, float]) -> str:
        return f"{diverged_message(what, value, step, parts)}; {_checkpoint_note(out)}"

    started = time.perf_counter()
    # a bar in a terminal, a plain line every 30 s in a log (no carriage-return frames)
    bar = progress_bar(cfg.steps, desc="train", unit="step", initial=step, disable=not cfg.progress)
    model.train()
    try:
        step = fit(
            model,
            optimizer,
            batches,
            loss,
            steps=cfg.steps,
            grad_clip=cfg.grad_clip,
            validate_every=cfg.eval_every,
            on_step=on_step,
            scheduler=scheduler,
            start=step,
            stop_at=stop_after,
            divergence_factor=cfg.divergence_factor,
            describe=describe,
        )
    finally:
        bar.close()
    if step < cfg.steps:  # stopped at stop_after: no test, as an interrupted run
        return _result(best, step, history, best_val, {}, started, resolved, out, resumed_from, model)

    # test with the best weights
    if out is not None and (out / BEST).exists():
        model.load_state_dict(load_checkpoint(out / BEST, device)["model"])
    else:
        best.restore(model)
    test: dict[str, dict[str, dict[str, float]]] = {}
    for algo, sets in (test_data or {}).items():
        test[algo] = {label: evaluate(model, fixed, model.specs[algo], device) for label, fixed in sets.items()}
    return _result(best, step, history, best_val, test, started, resolved, out, resumed_from, model)


def _result(best, step, history, best_val, test, started, resolved, out, resumed_from, model) -> TrainResult:
    return TrainResult(
        best_step=best.step,
        best_score=best.score,
        steps=step,
        history=history,
        best_val=best_val,
        test=test,
        train_seconds=time.perf_counter() - started,
        config=resolved,
        checkpoint_dir=None if out is None else str(out),
        resumed_from=resumed_from,
        model=model,
    )


def _checkpoint_note(out: Path | None) -> str:
    """Where the last good checkpoint of a diverged run is (its message's second half)."""
    if out is not None and (out / LAST).exists():
        kept = load_checkpoint(out / LAST)["step"]
        return f"the last good checkpoint is {out / LAST} (step {kept}), left untouched"
    if out is not None:
        return f"no checkpoint had been written yet in {out}"
    return "no checkpoint directory was given"


_NOT_COMPARED = ("progress", "device", "threads")  # may differ between a run and its resumption


def _check_same_config(saved: Mapping[str, Any], current: Mapping[str, Any], path: Path) -> None:
    def strip(c: Mapping[str, Any]) -> Any:
        c = _plain(c)
        c["train"] = {k: v for k, v in c.get("train", {}).items() if k not in _NOT_COMPARED}
        return c

    if strip(saved) != strip(current):
        raise NarError(
            f"{path} was written by a run with a different configuration; "
            "delete it (or use another output directory) to start afresh"
        )


def _plain(obj: Any) -> Any:
    """Tuples -> lists, recursively, so saved and current configs compare equal."""
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj
