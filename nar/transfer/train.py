"""Training and scoring one transfer run: (task, variant, training-set size, seed).

Variants (DESIGN.md, "Baselines"):

``nar_frozen``    new f~ and g~ around the pretrained processor, which stays frozen: its
                  weights' sha256 is taken before and after training and must not change.
``nar_finetune``  the same, with the pretrained processor trained too (``processor_lr_scale``).
``e2e``           the same architecture with a randomly initialised processor, trained.
``bottleneck``    a cost network and the exact solver, trained from the targets alone by
                  blackbox differentiation of the L1 loss on edge usages or by the true tree's
                  optimality conditions as a hinge (``bottleneck_loss``; ``nar.transfer.solver``).
``bottleneck_turns`` (turn tasks only) a cost per segment and per turn, the exact edge-based
                  solver, trained as bottleneck: the engineered reference of a user who already
                  knows the right abstract inputs.
``heuristic``     the dataset's own algorithm on the most obvious *visible* proxy of the cost
                  (no training, no hidden input: :func:`heuristic_costs`): what a practitioner
                  gets without learning anything; a learned variant must beat it to matter.
``oracle``        the dataset's own algorithm on the hidden true costs (no training; the ceiling).
``nar_costs``     f~ predicts one cost per cell/segment (as the bottleneck's), the whole frozen pretrained
                  network (its own encoders, processor and hint loop) runs on them, a new g~ reads its
                  last state: f~ in the algorithm's input space, so P runs in the regime it was trained in.
``ceiling``       the whole pretrained network run on the hidden true costs (no training): the frozen
                  processor's own ceiling, what nar_frozen could reach with perfect f~ and g~.

The training subset of a (size, seed) is a random subset of the train split drawn from the
seed alone, so every variant sees the same examples. Adam with gradient clipping; every
``eval_every`` steps the pointer accuracy on the first ``val_examples`` validation examples
decides early stopping (only the targets y are used for it, never hidden costs), and the best
weights are scored on the full val, test and ood splits.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from nar.errors import NarError
from nar.models.layers import autocast
from nar.models.model import EncodeProcessDecode
from nar.models.processors import Processor, build_processor
from nar.natural.store import Example
from nar.natural.targets import oracle_targets
from nar.training.fit import BestWeights, adam, fit, resolve_device
from nar.transfer.config import TaskTransferParams
from nar.transfer.graphs import FlatBatch, FlatSplit
from nar.transfer.metrics import score_split
from nar.transfer.models import (
    CostModel,
    CostsThroughNetwork,
    Encoder,
    TransferModel,
    TurnCostModel,
    pointer_loss,
    predict_pointers,
    tree_pointers,
)
from nar.transfer.record import ProcessorRecord, ceiling_unavailable
from nar.transfer.solver import (
    blackbox_tree,
    blackbox_turn_tree,
    solve_tree,
    solve_turn_tree,
    tree_hinge_loss,
    true_turn_usage,
    turn_tree_hinge_loss,
    usage_loss,
)
from nar.transfer.variants import TRANSFER_VARIANTS, Variant


class FrozenProcessorChanged(NarError, RuntimeError):
    """The frozen processor's weights changed during nar_frozen training (must never happen)."""


class EdgeNorm(nn.Module):
    """Standardises raw edge features with the training subset's statistics (kept as buffers).

    A feature (nearly) constant on the training subset (std < ``MIN_STD``) is zeroed: the model cannot learn
    what it means, and dividing by its tiny std turned its rare other values elsewhere into huge inputs (road:
    a bridge, a surface or a lit tag absent from the training band put 10-21 % of the val / test / ood segments
    beyond 20 standard deviations, up to 1,000, and every learned cost went wild on them; reports/
    transfer_notes.md §13). The rest are clipped to [-``CLIP``, ``CLIP``].
    """

    MIN_STD = 0.05
    CLIP = 5.0

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        std = torch.as_tensor(std, dtype=torch.float32)
        keep = std >= self.MIN_STD
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.where(keep, std, torch.ones_like(std)))
        self.register_buffer("keep", keep.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(E, F) raw features -> (E, F) standardised, clipped, near-constant columns zeroed."""
        return ((x - self.mean) / self.std).clamp(-self.CLIP, self.CLIP) * self.keep


@dataclass
class TaskData:
    """A task's splits prepared once per process: ``train`` and the scored ``splits`` (val, test, ood)."""

    task: str
    algorithm: str
    train: FlatSplit
    splits: dict[str, FlatSplit]
    node_in: int
    edge_in: int

    @classmethod
    def load(
        cls, root: str, task: str, params: TaskTransferParams, splits: Sequence[str] = ("val", "test", "ood")
    ) -> TaskData:
        from pathlib import Path

        from nar.natural import load_natural

        base = Path(root) / task

        def prep(name: str) -> tuple[FlatSplit, str]:
            ds = load_natural(base / name)
            return FlatSplit(ds, params.steps_per_hop, params.extra_steps, params.fixed_steps), ds.algorithm

        train, algorithm = prep("train")
        scored = {name: prep(name)[0] for name in splits if (base / name).is_dir()}
        if "val" not in scored:
            raise NarError(f"{base}: no val split (needed for early stopping); run `nar natural --task {task}`")
        return cls(
            task=task,
            algorithm=algorithm,
            train=train,
            splits=scored,
            node_in=int(train.node_x.shape[1]),
            edge_in=0 if train.edge_x is None else int(train.edge_x.shape[1]),
        )


@dataclass(frozen=True)
class RunSpec:
    task: str
    variant: str
    size: int
    seed: int

    @property
    def name(self) -> str:
        return f"{self.variant}/n{self.size}-s{self.seed}"


@dataclass
class RunResult:
    spec: RunSpec
    metrics: dict[str, dict[str, Any]]  # split -> metric -> value
    curve: list[dict[str, float]] = field(default_factory=list)  # step, train_loss, val_pointer_acc
    best_step: int = 0
    steps: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    processor_sha256_before: str | None = None
    processor_sha256_after: str | None = None
    state: dict[str, torch.Tensor] | None = None  # trainable weights (f~, g~, and P when trained)
    predictions: dict[str, list[list[int]]] = field(default_factory=dict)  # split -> example -> local pi

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.spec.task,
            "variant": self.spec.variant,
            "size": self.spec.size,
            "seed": self.spec.seed,
            "metrics": self.metrics,
            "curve": self.curve,
            "best_step": self.best_step,
            "steps": self.steps,
            "train_seconds": round(self.train_seconds, 3),
            "eval_seconds": round(self.eval_seconds, 3),
            "processor_sha256_before": self.processor_sha256_before,
            "processor_sha256_after": self.processor_sha256_after,
        }

    @classmethod
    def from_json(cls, spec: RunSpec, d: dict[str, Any], state: dict[str, torch.Tensor] | None = None) -> RunResult:
        """The inverse of :meth:`to_json` (plus ``predictions`` when ``d`` has them, and the weights)."""
        return cls(
            spec=spec,
            metrics=d["metrics"],
            curve=d["curve"],
            best_step=d["best_step"],
            steps=d["steps"],
            train_seconds=d["train_seconds"],
            eval_seconds=d["eval_seconds"],
            processor_sha256_before=d["processor_sha256_before"],
            processor_sha256_after=d["processor_sha256_after"],
            state=state,
            predictions=d.get("predictions") or {},
        )


def training_subset(num_train: int, size: int, seed: int) -> np.ndarray:
    """The training examples of (size, seed): the first ``size`` of a seed-fixed permutation
    (so a larger size at the same seed contains the smaller one)."""
    if size > num_train:
        raise NarError(f"training size {size} exceeds the {num_train} examples of the train split")
    perm = np.random.default_rng(np.random.SeedSequence([seed, 0x7A5])).permutation(num_train)
    return np.sort(perm[:size])


def build_model(
    spec: RunSpec,
    params: TaskTransferParams,
    data: TaskData,
    pretrained: Processor | None,
    mode: str = "auto",
    network: EncodeProcessDecode | None = None,
) -> nn.Module:
    """The network of ``spec.variant`` (initialised from ``spec.seed``); ``pretrained`` is a frozen P, and
    ``network`` the whole pretrained network around it (what a variant with ``needs_network`` is built on,
    in place of ``pretrained``)."""
    variant = TRANSFER_VARIANTS[spec.variant]
    if not variant.trained:
        raise ValueError(f"variant {spec.variant!r} is not trained")
    torch.manual_seed(spec.seed * 1_000_003 + zlib.crc32(spec.variant.encode()) % 1_000_003)
    if variant.turn_costs and data.train.turn_next is None:
        raise NarError(f"{spec.name}: {spec.variant} needs a turn task (road_turns), not {data.task}")
    if variant.processor is not None and pretrained is None:
        raise ValueError(f"{spec.variant} needs a processor (its config, and its weights unless e2e)")
    if variant.needs_network:
        if network is None:
            raise ValueError(f"{spec.variant} needs the whole pretrained network, not only its processor")
        return variant.builder()(variant, params.resolved(data.task), data, network, mode)
    return variant.builder()(variant, params.resolved(data.task), data, pretrained, mode)


def processor_model(
    variant: Variant, params: TaskTransferParams, data: TaskData, pretrained: Processor, mode: str
) -> TransferModel:
    """nar_frozen, nar_finetune, e2e: a new encoder f~ and pointer decoder around the processor, which is
    the pretrained one (frozen), a trainable copy of it (finetuned) or its architecture anew (fresh)."""
    if variant.processor == "frozen":
        processor = pretrained
    elif variant.processor == "finetuned":
        processor = copy.deepcopy(pretrained)
        processor.__dict__.pop("train", None)  # undo freeze()'s eval lock (an instance attribute)
        for p in processor.parameters():
            p.requires_grad_(True)
    else:
        processor = build_processor(pretrained.config)  # the same architecture, fresh weights
    H = processor.config.hidden
    encoder = Encoder(params.node_net, data.node_in, data.edge_in, params.width, H, params.interface)
    return TransferModel(encoder, processor, mode)  # type: ignore[arg-type]


def cost_model(
    variant: Variant, params: TaskTransferParams, data: TaskData, pretrained: Processor | None, mode: str
) -> CostModel:
    """bottleneck: one positive cost per cell (a task without edge features) or per edge."""
    per = "cell" if data.edge_in == 0 else "edge"
    return CostModel(params.node_net, data.node_in, data.edge_in, params.width, per, params.cost_context)


def turn_cost_model(
    variant: Variant, params: TaskTransferParams, data: TaskData, pretrained: Processor | None, mode: str
) -> TurnCostModel:
    """bottleneck_turns: one positive cost per segment and one per turn."""
    return TurnCostModel(params.node_net, data.node_in, data.edge_in, params.width, params.cost_context)


def network_model(
    variant: Variant, params: TaskTransferParams, data: TaskData, network: EncodeProcessDecode, mode: str
) -> CostsThroughNetwork:
    """nar_costs: the bottleneck's cost network into the whole frozen pretrained network, a new g~."""
    return CostsThroughNetwork(cost_model(variant, params, data, None, mode), network, data.algorithm)


def _attach_edge_norm(model: nn.Module, data: TaskData, subset: np.ndarray) -> None:
    stats = data.train.edge_stats(subset)
    if stats is None:
        return
    norm = EdgeNorm(*stats)
    target = model.encoder if isinstance(model, (TransferModel, CostsThroughNetwork)) else model
    net = target.edge_net
    if net is not None:
        target.edge_net = nn.Sequential(norm, net)


def _optimizer(model: nn.Module, spec: RunSpec, params: TaskTransferParams) -> torch.optim.Optimizer:
    if isinstance(model, CostModel):
        return adam([(model.parameters(), params.bottleneck_learning_rate)])
    proc = {id(p) for p in model.processor.parameters()}
    own = [p for p in model.parameters() if p.requires_grad and id(p) not in proc]
    groups = [(own, params.learning_rate)]
    trained_proc = [p for p in model.processor.parameters() if p.requires_grad]
    if trained_proc:
        groups.append((trained_proc, params.learning_rate * params.processor_lr_scale))
    return adam(groups)


def _autocast(model: nn.Module, b: FlatBatch, precision: str) -> contextlib.AbstractContextManager:
    """The models' autocast for the pointer models (the cost model is cheap and feeds a float solver)."""
    return autocast("float32" if isinstance(model, CostModel) else precision, b.node_x.device.type)


def loss_of(model: nn.Module, b: FlatBatch, params: TaskTransferParams) -> torch.Tensor:
    if isinstance(model, TurnCostModel):
        seg, turn = model(b)
        if params.bottleneck_loss == "tree_hinge":
            return turn_tree_hinge_loss(seg, turn, b, params.bottleneck_margin)
        y = blackbox_turn_tree(seg, turn, b, params.bottleneck_lambda)
        return usage_loss(y, true_turn_usage(b), b.total_nodes)
    if isinstance(model, CostModel) and params.bottleneck_loss == "tree_hinge":
        return tree_hinge_loss(model(b), b, params.bottleneck_margin)
    if isinstance(model, CostModel):
        y = blackbox_tree(model(b), b, params.bottleneck_lambda)
        return usage_loss(y, b.tree_usage, b.total_nodes)
    if isinstance(model, (CostsThroughNetwork, TransferModel)) and params.cost_hinge_weight > 0:
        with _autocast(model, b, params.precision):
            logits, costs = model.logits_and_costs(b)  # costs: (E,) what f~ fed the processor, one per edge
        if costs is None:
            raise ValueError("cost_hinge_weight needs per-edge scalars: interface 'scalar', not 'latent'")
        hinge = tree_hinge_loss(costs.float(), b, params.bottleneck_margin)
        return pointer_loss(logits, b) + params.cost_hinge_weight * hinge
    with _autocast(model, b, params.precision):
        logits = model(b)
    return pointer_loss(logits, b)


@torch.no_grad()
def predict(model: nn.Module, b: FlatBatch, precision: str = "float32", decoding: str = "argmax") -> torch.Tensor:
    """(V,) predicted global predecessors of batch ``b`` (pointer models: ``decoding``, TaskTransferParams)."""
    if isinstance(model, TurnCostModel):
        pi, _ = solve_turn_tree(*model(b), b)
        return pi
    if isinstance(model, CostModel):
        pi, _ = solve_tree(model(b), b)
        return pi
    with _autocast(model, b, precision):
        logits = model(b)
    return tree_pointers(logits, b) if decoding == "tree" else predict_pointers(logits, b)


def _local(pred: torch.Tensor, b: FlatBatch) -> list[np.ndarray]:
    p = pred.cpu().numpy()
    out = []
    for off, n in zip(b.node_offset, b.num_nodes, strict=True):
        out.append(p[off : off + n] - off)
    return out


def predict_split(
    model: nn.Module, batches: list[FlatBatch], precision: str = "float32", decoding: str = "argmax"
) -> list[np.ndarray]:
    was = model.training
    model.eval()
    preds: list[np.ndarray] = []
    for b in batches:
        preds.extend(_local(predict(model, b, precision, decoding), b))
    model.train(was)
    return preds


def quick_accuracy(
    model: nn.Module, batches: list[FlatBatch], precision: str = "float32", decoding: str = "argmax"
) -> float:
    """Pointer accuracy over ``batches`` (targets only): the early-stopping criterion."""
    was = model.training
    model.eval()
    right = total = 0
    for b in batches:
        pred = predict(model, b, precision, decoding)
        right += int((pred == b.pi).sum())
        total += b.total_nodes
    model.train(was)
    return right / max(total, 1)


def trainable_state(model: nn.Module, variant: str) -> dict[str, torch.Tensor]:
    """Weights worth saving: everything but a frozen processor (it is referenced by sha256)."""
    state = model.state_dict()
    if TRANSFER_VARIANTS[variant].processor == "frozen":  # nar_costs: the whole frozen network
        state = {k: v for k, v in state.items() if not k.startswith(("runner.processor.", "network."))}
    return {k: v.detach().clone() for k, v in state.items()}


def oracle_predictions(split: FlatSplit, algorithm: str, limit: int | None = None) -> list[np.ndarray]:
    """The exact algorithm on each example's hidden true costs (the first ``limit`` examples)."""
    return [oracle_targets(ex, algorithm)["pi"] for ex in split.examples[:limit]]


# The heuristic's proxy: the visible segment length where a task's edges have one (road, road_turns:
# the edge feature column of this name, in units of 100 m); uniform cost 1 otherwise (digit_grid: every
# cell costs the same, so the tree is the fewest-hops tree, ties broken the target algorithm's way).
HEURISTIC_FEATURE = "length_100m"
MIN_PROXY_COST = 1e-3  # a zero-length segment (two OSM nodes at one point) still costs something


def heuristic_costs(example: Example, feature_names: dict[str, list[str]] | None = None) -> np.ndarray:
    """(E,) float32 cost per edge of the heuristic: the edge feature ``HEURISTIC_FEATURE`` where the
    example's edge features have it (``feature_names["edge_features"]``), else 1 per edge. Only visible
    inputs are read; turn delays (``road_turns``) are ignored: the heuristic is node-based."""
    names = (feature_names or {}).get("edge_features") or []
    if HEURISTIC_FEATURE in names and "edge_features" in example.inputs:
        col = example.inputs["edge_features"][:, names.index(HEURISTIC_FEATURE)]
        return np.maximum(np.asarray(col, dtype=np.float32), np.float32(MIN_PROXY_COST))
    return np.ones(example.num_edges, dtype=np.float32)


def heuristic_predictions(split: FlatSplit, algorithm: str, limit: int | None = None) -> list[np.ndarray]:
    """The exact (node-based) algorithm on each example's visible proxy costs (the first ``limit``)."""
    from nar.natural.targets import shortest_path_targets

    return [
        shortest_path_targets(
            ex.num_nodes, ex.edge_index, heuristic_costs(ex, split.feature_names), ex.source, ex.target, algorithm
        )["pi"]
        for ex in split.examples[:limit]
    ]


def ceiling_predictions(
    split: FlatSplit, algorithm: str, limit: int | None = None, *, processor: ProcessorRecord
) -> list[np.ndarray]:
    """The whole pretrained network (its own encoder, the frozen processor, its own decoder) run on each
    example's hidden true costs (the first ``limit`` examples), with :func:`nar.execute.default_steps`:
    what nar_frozen could reach with a perfect f~ and g~, so the share of any gap that is the processor's.
    On turn tasks it sees the segment times only (the node-based algorithm cannot price a turn)."""
    if not processor.network:
        raise NarError(ceiling_unavailable(processor.uri))
    executor = _network_executor(tuple(sorted(processor.network.items())), processor.uri, processor.sha256)
    return [
        executor.run(algorithm, (ex.num_nodes, ex.edge_index, ex.hidden["edge_cost"]), source=ex.source).pi
        for ex in split.examples[:limit]
    ]


@functools.lru_cache(maxsize=1)
def _network_executor(network: tuple[tuple[str, bytes], ...], uri: str, sha256: str) -> Any:
    """The whole network stored as ``network`` ((file name, bytes) pairs), its processor checked against
    ``sha256``: built once per network, not once per split (the sweep scores every split and then the
    pictures' examples with it). Keyed on the bytes themselves; an Executor runs under ``no_grad`` in eval
    mode and keeps no state between graphs, so reusing it changes no prediction."""
    from nar.execute import executor_from_files

    return executor_from_files(dict(network), uri, processor_sha256=sha256)


def untrained_predictions(
    variant: str, split: FlatSplit, algorithm: str, limit: int | None = None, processor: ProcessorRecord | None = None
) -> list[np.ndarray]:
    """Predicted pointers of a variant that needs no training (``oracle``, ``heuristic``, ``ceiling``, ...);
    ``processor``: the sweep's processor, handed to the variants that use it."""
    entry = TRANSFER_VARIANTS[variant]
    if entry.trained:
        raise ValueError(f"variant {variant!r} is trained")
    if entry.processor is None:
        return entry.predictor()(split, algorithm, limit)
    if processor is None:
        raise NarError(f"variant {variant!r} runs the pretrained processor, and none was given")
    return entry.predictor()(split, algorithm, limit, processor=processor)


def run_untrained(spec: RunSpec, data: TaskData, processor: ProcessorRecord | None = None) -> RunResult:
    """Score ``spec.variant`` (an untrained one: ``oracle``, ``heuristic``, ``ceiling``) on every split, once."""
    start = time.perf_counter()
    metrics = {
        name: score_split(untrained_predictions(spec.variant, s, data.algorithm, processor=processor), s)
        for name, s in data.splits.items()
    }
    return RunResult(spec, metrics, eval_seconds=time.perf_counter() - start)


def train_run(
    spec: RunSpec,
    params: TaskTransferParams,
    data: TaskData,
    pretrained: Processor | None,
    *,
    eval_batch_size: int = 50,
    device: str | torch.device = "cpu",
    mode: str = "auto",
    eval_batches: dict[str, list[FlatBatch]] | None = None,
    keep_state: bool = False,
    picture_examples: int = 0,
    network: EncodeProcessDecode | None = None,
) -> RunResult:
    """Train ``spec`` and score its best weights on every split of ``data``; ``network``: the whole pretrained
    network, for the variants that run it (``Variant.needs_network``)."""
    from nar.registry import weights_sha256

    if not TRANSFER_VARIANTS[spec.variant].trained:
        return run_untrained(spec, data)
    params = params.resolved(spec.task)
    device = resolve_device(device)
    subset = training_subset(len(data.train), spec.size, spec.seed)
    model = build_model(spec, params, data, pretrained, mode, network)
    _attach_edge_norm(model, data, subset)
    model.to(device)
    frozen = TRANSFER_VARIANTS[spec.variant].processor == "frozen"
    sha_before = weights_sha256(model.processor) if frozen else None  # the pretrained one (or the network's)
    opt = _optimizer(model, spec, params)
    sched = None
    if params.lr_schedule == "cosine":
        # decay to 0, written as the published sweeps were trained: pretraining's cosine
        # (loop._lr_lambda: math.cos of pi * (s / T)) differs in the last bit at some steps
        total = params.max_steps
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1.0 + np.cos(np.pi * min(s, total) / total)))
    if eval_batches is None:
        eval_batches = {name: s.batches(eval_batch_size, device) for name, s in data.splits.items()}
    limit = min(params.val_examples, len(data.splits["val"]))
    val_quick = [
        data.splits["val"].batch(range(s, min(s + eval_batch_size, limit)), device)
        for s in range(0, limit, eval_batch_size)
    ]

    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, spec.size, 0xBA7C]))
    order: list[int] = []

    def batches(step: int) -> FlatBatch:
        # epochs of the training subset, each in a fresh random order; a batch may span two epochs
        nonlocal order
        if len(order) < params.batch_size:
            order.extend(rng.permutation(subset).tolist())
        idx, order = order[: params.batch_size], order[params.batch_size :]
        return data.train.batch(idx, device)

    # the tree hinge on f~'s costs for the variants cost_hinge_variants names only
    hinged = spec.variant in params.cost_hinge_variants
    loss_params = params if hinged else replace(params, cost_hinge_weight=0.0)
    best = BestWeights(ties="earlier", patience=params.patience)
    curve: list[dict[str, float]] = []
    losses: list[float] = []

    def on_step(step: int, value: float, validating: bool) -> bool:
        losses.append(value)
        if not validating:
            return False
        acc = quick_accuracy(model, val_quick, params.precision, params.pointer_decoding)
        curve.append({"step": step, "train_loss": float(np.mean(losses)), "val_pointer_acc": acc})
        losses.clear()
        best.offer(acc, step, model)
        return best.exhausted

    start = time.perf_counter()
    model.train()
    steps = fit(
        model,
        opt,
        batches,
        lambda m, b: (loss_of(m, b, loss_params), {}),
        steps=params.max_steps,
        grad_clip=params.grad_clip,
        validate_every=params.eval_every,
        on_step=on_step,
        scheduler=sched,
        describe=lambda what, value, step, _: f"{spec.name}: the {what} became {value} at step {step}",
    )
    train_seconds = time.perf_counter() - start
    best.restore(model)

    start = time.perf_counter()
    metrics: dict[str, dict[str, Any]] = {}
    predictions: dict[str, list[list[int]]] = {}
    for name, batches in eval_batches.items():
        preds = predict_split(model, batches, params.precision, params.pointer_decoding)
        metrics[name] = score_split(preds, data.splits[name])
        if picture_examples and name in ("test", "ood"):
            predictions[name] = [p.tolist() for p in preds[:picture_examples]]
    eval_seconds = time.perf_counter() - start

    sha_after = None
    if frozen:
        sha_after = weights_sha256(model.processor)
        if sha_after != sha_before:
            raise FrozenProcessorChanged(
                f"{spec.name}: the frozen processor's sha256 changed during training "
                f"({sha_before[:16]}... -> {sha_after[:16]}...)"
            )
    return RunResult(
        spec=spec,
        metrics=metrics,
        curve=curve,
        best_step=best.step,
        steps=steps,
        train_seconds=train_seconds,
        eval_seconds=eval_seconds,
        processor_sha256_before=sha_before,
        processor_sha256_after=sha_after,
        state=trainable_state(model, spec.variant) if keep_state else None,
        predictions=predictions,
    )
