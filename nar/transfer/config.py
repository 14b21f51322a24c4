"""The ``transfer:`` and ``evaluate:`` sections of params.yaml: frozen dataclasses with type hints and
``check(key)`` methods, built by :func:`nar.validation.build` like every section (``ConfigError`` naming the
dotted key); ``nar.config.Params`` gathers them (``load_params(path, "transfer").transfer``).
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from nar.natural.config import NATURAL_TASKS, TASKS
from nar.transfer.variants import VARIANTS
from nar.validation import build, require

SPLITS = ("val", "test", "ood")
DEFAULT_PROCESSOR = "models:/nar-processor@champion"


@dataclass(frozen=True)
class TaskTransferParams:
    """How one task's models are built and trained (the same for every variant unless named).

    Fields left null take the task's value from its ``NATURAL_TASKS`` entry (:meth:`resolved`).

    node_net: per-node raw-input network (``mlp``, or ``cnn``: a small 8x8 pixel CNN for digits).
    width: width of the raw-input networks' features (the processor fixes H).
    interface: how f~ talks to the processor: ``latent`` (free H-dimensional node and edge
        features, the blueprint) or ``scalar`` (one learned scalar per edge, linearly encoded,
        plus a source flag: the shape of the processor's pretraining inputs).
    steps_per_hop, extra_steps: processor steps per graph = ceil(steps_per_hop * hop
        eccentricity of the source) + extra_steps; ``fixed_steps`` > 0 overrides both.
    batch_size, max_steps, learning_rate, grad_clip: Adam on the pointer cross-entropy.
    lr_schedule: ``cosine`` decays every learning rate to 0 over max_steps; ``constant``.
    processor_lr_scale: learning-rate factor of the processor's own weights (nar_finetune, e2e).
    eval_every, patience: validate every eval_every steps on ``val_examples`` validation
        examples; stop after ``patience`` validations without a better pointer accuracy and
        keep the best weights (early stopping).
    precision: ``float32`` (the default) is exact; ``bfloat16`` runs the pointer models' matrix
        products under autocast (1.5x faster on CPUs with AVX512-BF16, but 8x slower on CPUs without it,
        benchmarks/results/transfer_speed.json, and 6 of 100 digit_grid runs stalled under it:
        reports/transfer_notes.md §3; the frozen weights stay float32).
    bottleneck_lambda: λ of the blackbox differentiation (in units of the graph's mean predicted cost).
    bottleneck_learning_rate: the bottleneck's learning rate.
    bottleneck_loss: how the bottleneck's costs learn from the true trees: ``blackbox`` (differentiation
        of the solver, Vlastelica et al. 2020) or ``tree_hinge`` (the true tree's optimality conditions
        as a hinge, :func:`~nar.transfer.solver.tree_hinge_loss`; bottleneck_turns:
        :func:`~nar.transfer.solver.turn_tree_hinge_loss`).
    bottleneck_margin: tree_hinge's margin, in units of the graph's mean predicted cost.
    cost_context: rounds of neighbour pooling in the cost network of bottleneck, bottleneck_turns and
        nar_costs (:class:`~nar.transfer.models.ContextRound`; 0: each cost from its own segment or cell).
    cost_hinge_weight, cost_hinge_variants: the tree hinge (the bottleneck's
        :func:`~nar.transfer.solver.tree_hinge_loss`, ``bottleneck_margin``) on f~'s per-edge costs, times this
        weight, added to the pointer loss of the variants named (0: off; reports/transfer_notes.md §13-14). The
        costs are nar_costs' cost network's, and under ``interface: scalar`` the scalars softplus(s_uv) that
        nar_frozen, nar_finetune and e2e feed their processor.
    pointer_decoding: how the pointer variants' logits become predecessors (their scores, early stopping
        included): ``argmax`` per node (CLRS), or ``tree``: grown from the source, the most probable pointer
        from a reached node first (:func:`~nar.transfer.models.tree_pointers`), so no path is invalid.
    """

    node_net: Literal["cnn", "mlp"] = "mlp"
    width: int = 64
    interface: Literal["latent", "scalar"] | None = None
    steps_per_hop: float = 1.25
    extra_steps: int = 2
    fixed_steps: int = 0
    batch_size: int | None = None
    max_steps: int | None = None
    learning_rate: float = 0.01
    lr_schedule: Literal["constant", "cosine"] = "constant"
    processor_lr_scale: float = 1.0
    grad_clip: float = 1.0
    eval_every: int = 25
    patience: int | None = None
    val_examples: int | None = None
    precision: Literal["float32", "bfloat16"] = "float32"
    bottleneck_lambda: float = 1.0
    bottleneck_learning_rate: float = 0.01
    bottleneck_loss: Literal["blackbox", "tree_hinge"] = "blackbox"
    bottleneck_margin: float = 0.1
    cost_context: int = 0
    cost_hinge_weight: float = 0.0
    cost_hinge_variants: tuple[str, ...] = ("nar_costs",)
    pointer_decoding: Literal["argmax", "tree"] = "argmax"

    def resolved(self, task: str) -> TaskTransferParams:
        """A copy with every null field set to ``task``'s default."""
        defaults = NATURAL_TASKS.get(task, NATURAL_TASKS["road"]).transfer
        return dataclasses.replace(self, **{k: v for k, v in defaults.items() if getattr(self, k) is None})

    def check(self, key: str) -> None:
        for name in ("width", "batch_size", "max_steps", "eval_every", "patience", "val_examples"):
            value = getattr(self, name)
            require(value is None or value >= 1, f"{key}.{name}", value, "an integer >= 1 (or null: the task's)")
        require(self.steps_per_hop > 0, f"{key}.steps_per_hop", self.steps_per_hop, "a number > 0")
        require(self.extra_steps >= 0, f"{key}.extra_steps", self.extra_steps, "an integer >= 0")
        require(self.cost_context >= 0, f"{key}.cost_context", self.cost_context, "an integer >= 0 (0: no pooling)")
        require(self.fixed_steps >= 0, f"{key}.fixed_steps", self.fixed_steps, "an integer >= 0 (0: from the graph)")
        for name in ("learning_rate", "bottleneck_learning_rate", "bottleneck_lambda", "grad_clip"):
            value = getattr(self, name)
            require(value > 0, f"{key}.{name}", value, "a number > 0")
        require(self.bottleneck_margin >= 0, f"{key}.bottleneck_margin", self.bottleneck_margin, "a number >= 0")
        require(self.cost_hinge_weight >= 0, f"{key}.cost_hinge_weight", self.cost_hinge_weight, "a number >= 0")
        for i, name in enumerate(self.cost_hinge_variants):
            require(name in HINGED_VARIANTS, f"{key}.cost_hinge_variants[{i}]", name, f"one of {list(HINGED_VARIANTS)}")
        require(self.processor_lr_scale >= 0, f"{key}.processor_lr_scale", self.processor_lr_scale, "a number >= 0")

    def check_resolved(self, key: str) -> None:
        """Checks that need the task's defaults filled in (:meth:`resolved`)."""
        scalar_hinged = [v for v in self.cost_hinge_variants if v != "nar_costs"]
        require(
            not (self.cost_hinge_weight > 0 and scalar_hinged and self.interface == "latent"),
            f"{key}.cost_hinge_variants",
            scalar_hinged,
            "only nar_costs under interface 'latent' (no per-edge scalars to put the hinge on)",
        )


# the variants with per-edge costs to put cost_hinge_weight's tree hinge on (nar_frozen, nar_finetune and e2e
# under the scalar interface only)
HINGED_VARIANTS = ("nar_costs", "nar_frozen", "nar_finetune", "e2e")


def _default_tasks() -> Mapping[str, TaskTransferParams]:
    return types.MappingProxyType({"digit_grid": TaskTransferParams(), "road": TaskTransferParams()})


@dataclass(frozen=True)
class TransferParams:
    """The ``transfer`` stage: variants x training-set sizes x seeds per task.

    processor: a registry URI (``models:/nar-processor@champion``, ``models:/nar-processor/3``)
        or a local directory with processor.safetensors + processor.json.
    allow_unverified: accept a local directory whose processor.json records no sha256.
    sizes: training-set sizes (random subsets of the train split, one per seed, shared by
        all variants so that they are compared on the same examples); each must be at most
        the train split's size.
    workers: parallel training processes (one thread each).
    save_models: which trained models to write under models/transfer/<task>/ (``first_seed``
        keeps the directory small).
    picture_size / picture_examples: predictions of every variant trained on this many
        examples (first seed) are kept for the first picture_examples test and ood examples.
    """

    processor: str = DEFAULT_PROCESSOR
    allow_unverified: bool = False
    data: str = "data/natural"
    variants: tuple[str, ...] = VARIANTS
    sizes: tuple[int, ...] = (50, 100, 200, 500, 1000)
    seeds: tuple[int, ...] = (0, 1, 2)
    workers: int = 2
    device: str = "cpu"
    processor_mode: Literal["auto", "sparse", "dense"] = "auto"
    eval_batch_size: int = 50
    save_models: Literal["all", "first_seed", "none"] = "first_seed"
    picture_size: int = 100
    picture_examples: int = 4
    tasks: Mapping[str, TaskTransferParams] = field(default_factory=_default_tasks)

    def check(self, key: str) -> None:
        for i, v in enumerate(self.variants):
            require(v in VARIANTS, f"{key}.variants[{i}]", v, f"one of {list(VARIANTS)}")
        require(len(set(self.variants)) == len(self.variants), f"{key}.variants", list(self.variants), "no repeats")
        for i, n in enumerate(self.sizes):
            require(n >= 1, f"{key}.sizes[{i}]", n, "an integer >= 1")
        require(list(self.sizes) == sorted(set(self.sizes)), f"{key}.sizes", list(self.sizes), "increasing sizes")
        for i, s in enumerate(self.seeds):
            require(s >= 0, f"{key}.seeds[{i}]", s, "an integer >= 0")
        require(len(set(self.seeds)) == len(self.seeds), f"{key}.seeds", list(self.seeds), "no repeats")
        require(self.workers >= 1, f"{key}.workers", self.workers, "an integer >= 1")
        require(self.eval_batch_size >= 1, f"{key}.eval_batch_size", self.eval_batch_size, "an integer >= 1")
        require(
            self.device == "cpu" or self.device == "auto" or self.device.startswith("cuda"),
            f"{key}.device",
            self.device,
            "'cpu', 'auto' or 'cuda[:index]'",
        )
        require(self.picture_examples >= 0, f"{key}.picture_examples", self.picture_examples, "an integer >= 0")
        require(
            self.picture_size in self.sizes,
            f"{key}.picture_size",
            self.picture_size,
            f"one of the sizes {list(self.sizes)}",
        )
        for name in self.tasks:
            require(name in TASKS, f"{key}.tasks", name, f"task names from {list(TASKS)}")
            self.task(name).check_resolved(f"{key}.tasks.{name}")

    def task(self, name: str) -> TaskTransferParams:
        if name not in TASKS:
            raise KeyError(f"unknown natural task {name!r}; available: {list(TASKS)}")
        return (self.tasks.get(name) or TaskTransferParams()).resolved(name)


@dataclass(frozen=True)
class EvaluateParams:
    """The ``evaluate`` stage: aggregate metrics/transfer/<task>.json over seeds, plot, report.

    headline: the metric drawn against the number of training examples and used for the verdict.
    low_data: training sizes up to this count as "few examples" in the verdict.
    """

    # what `nar evaluate` reports and `nar transfer` runs when params.yaml names no task list: every registered task
    tasks: tuple[str, ...] = TASKS
    headline: Literal["pointer_acc", "pointer_acc_tie", "path_match", "path_optimal", "regret_all"] = "pointer_acc"
    low_data: int = 200
    report: str = "reports/blueprint.md"
    notes: str = "reports/transfer_notes.md"  # included in the report when it exists

    def check(self, key: str) -> None:
        for i, t in enumerate(self.tasks):
            require(t in TASKS, f"{key}.tasks[{i}]", t, f"one of {list(TASKS)}")
        require(self.low_data >= 1, f"{key}.low_data", self.low_data, "an integer >= 1")


def parse_transfer_params(data: Any, key: str = "transfer") -> TransferParams:
    return build(TransferParams, data, key)


def parse_evaluate_params(data: Any, key: str = "evaluate") -> EvaluateParams:
    return build(EvaluateParams, data, key)
