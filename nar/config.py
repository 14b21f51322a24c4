"""params.yaml, validated into typed, frozen objects before any work starts: the aggregate of all sections.

One dataclass per section, each built by :func:`nar.validation.build` (the one validation path: keys, types,
the classes' invariants, then ``check(key)``); any problem raises :class:`ConfigError` naming the key (as a
dotted path), the value found and what is allowed; the CLI prints it without a traceback.

The sections of the core stages (generate, pretrain, register) and of the flows live here; the natural,
transfer and evaluate sections live beside their code (nar/natural/config.py, nar/transfer/config.py) and
``Params`` gathers them all: this module sits above every section and none of them imports it.
"""

from __future__ import annotations

import dataclasses
import types
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from nar.data.samplers import KINDS as SAMPLER_KINDS
from nar.data.samplers import POINT_KINDS, GraphSamplerConfig
from nar.validation import SHOWN_CHARS, ConfigError, build, join_key, require, shown

if TYPE_CHECKING:
    from nar.models.model import ModelConfig
    from nar.natural.config import NaturalParams
    from nar.training.loop import TrainConfig
    from nar.transfer.config import EvaluateParams, TransferParams

# the validation path, for the callers that read params through this module
__all__ = ["SHOWN_CHARS", "ConfigError", "build", "shown"]

DEFAULT_PARAMS = Path("params.yaml")
MAX_PARAMS_BYTES = 8 * 2**20  # a params.yaml is a few KB; anything near this is not a configuration
MAX_PARAMS_VALUES = 100_000  # values after YAML aliases are expanded: an alias bomb stops here


# --------------------------------------------------------------------------- sections


# Graph sizes of generated splits, in params.yaml and on the command line (`nar generate --size`): the
# largest graphs the pipeline targets (DESIGN.md "Scale"); what a size costs in memory is checked when generating.
MAX_NODES = 1024
NODE_COUNT_RULE = f"node counts from 1 to {MAX_NODES}"
# Width of the processor's latents: 32x the CLRS width of 128; a 4096-wide mpnn already holds ~10^8 weights.
MAX_HIDDEN = 4096
# The other processor fields that set its size (CLRS uses 2 message layers and 8 triplet features): bounded so
# that a processor can never be asked for more weights than a 4096-wide one with 8 message layers.
PROCESSOR_SIZE_RULES: dict[str, tuple[int, int]] = {
    "hidden": (1, MAX_HIDDEN),
    "msg_mlp_layers": (0, 8),
    "triplet_features": (1, MAX_HIDDEN),
}


def check_node_counts(sizes: Any, key: str, indexed: bool = True) -> None:
    """The one rule for generated graph sizes: ConfigError naming ``key`` (``key[i]`` when ``indexed``)."""
    for i, n in enumerate(sizes):
        ok = isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_NODES
        require(ok, f"{key}[{i}]" if indexed else key, n, NODE_COUNT_RULE)


def processor_size_problem(config: Mapping[str, Any]) -> tuple[str, Any, str] | None:
    """The one rule for the fields that size a processor (params.yaml and a registered processor.json):
    (field, value, what is allowed) of the first field of ``config`` out of PROCESSOR_SIZE_RULES, or None."""
    for name, (low, high) in PROCESSOR_SIZE_RULES.items():
        value = config.get(name, low)
        if not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
            return name, value, f"an integer from {low} to {high}"
    return None


@dataclass(frozen=True)
class SplitParams:
    count: int
    sizes: tuple[int, ...]

    def check(self, key: str) -> None:
        require(self.count > 0, f"{key}.count", self.count, "an integer >= 1")
        check_node_counts(self.sizes, f"{key}.sizes")


_SAMPLER = GraphSamplerConfig()  # the samplers' own defaults: generate.sampler starts from them


@dataclass(frozen=True)
class SamplerParams:
    """``generate.sampler``: every knob of :class:`nar.data.samplers.GraphSamplerConfig` (its docstring says
    what each does), with its defaults."""

    kind: Literal["er", "grid", "geometric", "tree", "delaunay"] = _SAMPLER.kind
    p_range: tuple[float, float] = _SAMPLER.p_range  # Erdős–Rényi edge probability, drawn per graph
    weighted: bool | None = _SAMPLER.weighted  # None: what the algorithm's spec asks for
    directed: bool | None = _SAMPLER.directed
    mean_degree: float = _SAMPLER.mean_degree  # geometric
    knn: int = _SAMPLER.knn  # geometric
    connect: bool = _SAMPLER.connect  # geometric
    weight_noise: float = _SAMPLER.weight_noise  # geometric
    oneway: float = _SAMPLER.oneway
    oneway_chain: int = _SAMPLER.oneway_chain  # point families (geometric, tree, delaunay)

    def check(self, key: str) -> None:
        lo, hi = self.p_range
        require(0 < lo <= hi <= 1, f"{key}.p_range", list(self.p_range), "two probabilities 0 < low <= high <= 1")
        require(self.mean_degree > 0, f"{key}.mean_degree", self.mean_degree, "a number > 0")
        require(self.knn >= 0, f"{key}.knn", self.knn, "an integer >= 0")
        require(0 <= self.weight_noise < 1, f"{key}.weight_noise", self.weight_noise, "a fraction in [0, 1)")
        require(0 <= self.oneway < 1, f"{key}.oneway", self.oneway, "a fraction in [0, 1)")
        require(self.oneway_chain >= 1, f"{key}.oneway_chain", self.oneway_chain, "an integer >= 1")
        require(
            self.oneway_chain == 1 or self.kind in POINT_KINDS,
            f"{key}.oneway_chain",
            self.oneway_chain,
            f"1 for kind {self.kind!r} (chains need node positions: kind one of {', '.join(POINT_KINDS)})",
        )

    def sampler(self) -> GraphSamplerConfig:
        """The sampler these params describe."""
        return GraphSamplerConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})


MODEL_NAME_RULE = "ASCII letters, digits, - and _ (1 to 256 characters)"


def is_model_name(name: str) -> bool:
    """A registered model name goes into MLflow's search filters (``name='...'``) and ``models:/<name>@alias``
    URIs: ASCII letters, digits, - and _ only (no quote, slash, colon or @), at most MLflow's 256 characters."""
    return 0 < len(name) <= 256 and name.isascii() and name.replace("_", "").replace("-", "").isalnum()


def is_split_name(name: str) -> bool:
    """A split name becomes a directory (``<root>/<algorithm>/<split>``): letters, digits and _ only, so
    never a path (no ``/``, no ``..``)."""
    return name.replace("_", "").isalnum()


def _default_splits() -> Mapping[str, SplitParams]:
    return types.MappingProxyType(
        {
            "train": SplitParams(count=10000, sizes=(4, 7, 11, 13, 16)),
            "val": SplitParams(count=64, sizes=(16,)),
            "test": SplitParams(count=32, sizes=(64,)),
        }
    )


@dataclass(frozen=True)
class GenerateParams:
    seed: int = 42
    algorithms: tuple[str, ...] = ("bfs", "bellman_ford")
    shard_size: int = 2000
    sampler: SamplerParams = field(default_factory=SamplerParams)
    splits: Mapping[str, SplitParams] = field(default_factory=_default_splits)

    def check(self, key: str) -> None:
        from nar.algorithms import ALGORITHMS

        require(self.seed >= 0, f"{key}.seed", self.seed, "an integer >= 0")
        require(self.shard_size >= 1, f"{key}.shard_size", self.shard_size, "an integer >= 1")
        for i, name in enumerate(self.algorithms):
            require(name in ALGORITHMS, f"{key}.algorithms[{i}]", name, f"one of {sorted(ALGORITHMS)}")
        require(
            len(set(self.algorithms)) == len(self.algorithms), f"{key}.algorithms", list(self.algorithms), "no repeats"
        )
        for split in self.splits:
            require(is_split_name(split), f"{key}.splits", split, "split names of letters, digits and _")


@dataclass(frozen=True)
class MixParams:
    """train_data "mixed": graph families and sizes drawn at every step (nar.training.pretrain.MixedBatches)."""

    kinds: tuple[str, ...] = ("er", "grid", "geometric")
    sizes: tuple[int, ...] = (8, 16, 24, 32, 48, 64)
    nodes_per_batch: int = 512  # graphs per batch = max(4, nodes_per_batch // n)
    oneway: float = 0.0  # half the batches turn this fraction of two-way edges into one-way streets
    # extra steps with the hints held at their final values, as a fraction of each trajectory's steps:
    # trains settled nodes to keep their state over rollouts longer than the training graphs' depth
    hold: float = 0.0

    def check(self, key: str) -> None:
        allowed = ", ".join(SAMPLER_KINDS)
        require(len(self.kinds) > 0, f"{key}.kinds", list(self.kinds), f"a non-empty list of {allowed}")
        for i, kind in enumerate(self.kinds):
            require(kind in SAMPLER_KINDS, f"{key}.kinds[{i}]", kind, f"one of {allowed}")
        require(len(self.sizes) > 0, f"{key}.sizes", list(self.sizes), "a non-empty list of node counts")
        for i, n in enumerate(self.sizes):
            require(2 <= n <= 256, f"{key}.sizes[{i}]", n, "node counts from 2 to 256")
        require(self.nodes_per_batch >= 1, f"{key}.nodes_per_batch", self.nodes_per_batch, "an integer >= 1")
        require(0 <= self.oneway < 1, f"{key}.oneway", self.oneway, "a fraction in [0, 1)")
        require(0 <= self.hold <= 4, f"{key}.hold", self.hold, "a number from 0 to 4 (extra steps per step)")


@dataclass(frozen=True)
class ScaleSuiteParams:
    """Where ``nar pretrain`` scores the trained model on the scale suite (nar.scale, nar.execute.suite_scores)."""

    sizes: tuple[int, ...] = (256,)
    graphs_per_cell: int = 2

    def check(self, key: str) -> None:
        for i, n in enumerate(self.sizes):
            require(n in (64, 256, 1024), f"{key}.sizes[{i}]", n, "64, 256 or 1024")
        require(1 <= self.graphs_per_cell <= 100, f"{key}.graphs_per_cell", self.graphs_per_cell, "1 to 100")


@dataclass(frozen=True)
class PretrainRunParams:
    """One processor configuration: ``models/pretrain/<name>``.

    ``model`` and ``train`` are nar.models.ModelConfig and nar.training.loop.TrainConfig (their
    keys and checks); ``train.algorithms`` are the algorithms trained with one shared processor.
    """

    model: ModelConfig
    train: TrainConfig
    batch_size: int = 32
    # "dataset": batches from the generated train split; "online": fresh graphs drawn like it every step;
    # "mixed": fresh graphs from ``mix`` (families and sizes) every step
    train_data: str = "dataset"
    mix: MixParams = field(default_factory=MixParams)
    scale_suite: ScaleSuiteParams = field(default_factory=ScaleSuiteParams)

    @staticmethod
    def lazy_types() -> dict[str, type]:
        from nar.models.model import ModelConfig
        from nar.training.loop import TrainConfig

        return {"ModelConfig": ModelConfig, "TrainConfig": TrainConfig}

    def check(self, key: str) -> None:
        require(self.batch_size >= 1, f"{key}.batch_size", self.batch_size, "an integer >= 1")
        problem = processor_size_problem(dataclasses.asdict(self.model.processor))
        if problem is not None:
            name, value, allowed = problem
            raise ConfigError(f"{key}.model.processor.{name}", value, allowed)
        require(
            self.train_data in ("dataset", "online", "mixed"),
            f"{key}.train_data",
            self.train_data,
            "'dataset', 'online' or 'mixed'",
        )


@dataclass(frozen=True)
class PretrainParams:
    device: str = "auto"
    runs: Mapping[str, PretrainRunParams] = field(default_factory=lambda: types.MappingProxyType({}))

    def check(self, key: str) -> None:
        require(
            self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
            f"{key}.device",
            self.device,
            "'auto', 'cpu' or 'cuda[:index]'",
        )
        for name in self.runs:
            require(
                name.replace("_", "").replace("-", "").isalnum(),
                f"{key}.runs",
                name,
                "run names of letters, digits, - and _ (they become directory names)",
            )


@dataclass(frozen=True)
class RegisterParams:
    run: str = "bellman_ford"  # a key of pretrain.runs
    model_name: str = "nar-processor"
    gate_metric: str = "ood_score"
    gate_margin: float = 0.0

    def check(self, key: str) -> None:
        run_ok = self.run.replace("_", "").replace("-", "").isalnum()
        require(run_ok, f"{key}.run", self.run, "letters, digits, - and _")
        require(is_model_name(self.model_name), f"{key}.model_name", self.model_name, MODEL_NAME_RULE)


@dataclass(frozen=True)
class FlowsParams:
    """``flows``: the schedule ``nar serve`` gives the nightly deployment, and how often a stage that failed
    for a transient reason (DVC lock held, MLflow unreachable) is retried. Read by flows/ (flows.params adds
    Prefect's own check of the cron expression)."""

    schedule: str | None = "0 2 * * *"  # cron; null: no scheduled deployment
    timezone: str = "UTC"  # IANA name, e.g. Europe/Helsinki
    retries: int = 2
    retry_delay_seconds: float = 30.0

    def check(self, key: str) -> None:
        require(
            self.schedule is None or len(self.schedule.split()) == 5,
            f"{key}.schedule",
            self.schedule,
            'a cron expression of 5 fields ("0 2 * * *") or null',
        )
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"{key}.timezone", self.timezone, "an IANA time zone such as UTC or Europe/Helsinki"
            ) from None
        require(self.retries >= 0, f"{key}.retries", self.retries, "an integer >= 0")
        require(self.retry_delay_seconds >= 0, f"{key}.retry_delay_seconds", self.retry_delay_seconds, "a number >= 0")


@dataclass(frozen=True)
class Params:
    """All sections; those not asked for in ``load_params(path, *sections)`` stay None."""

    generate: GenerateParams | None = None
    pretrain: PretrainParams | None = None
    register: RegisterParams | None = None
    natural: NaturalParams | None = None
    flows: FlowsParams | None = None
    transfer: TransferParams | None = None
    evaluate: EvaluateParams | None = None


def _natural_params() -> type:
    from nar.natural.config import NaturalParams  # it builds on this module: imported on demand

    return NaturalParams


def _transfer_params() -> type:
    from nar.transfer.config import TransferParams  # builds on this module: imported on demand

    return TransferParams


def _evaluate_params() -> type:
    from nar.transfer.config import EvaluateParams

    return EvaluateParams


# section name -> its class, resolved only when that section is asked for
SECTIONS: dict[str, Any] = {
    "generate": lambda: GenerateParams,
    "pretrain": lambda: PretrainParams,
    "register": lambda: RegisterParams,
    "natural": _natural_params,
    "flows": lambda: FlowsParams,
    "transfer": _transfer_params,
    "evaluate": _evaluate_params,
}


def parse_params(data: Any, sections: tuple[str, ...] = ()) -> Params:
    """Validate an already-parsed params mapping (keys in errors read like ``generate.seed``).

    Only ``sections`` are built (all when empty), so ``nar generate`` never imports torch to
    check the pretraining section; unknown top-level sections are always refused.
    """
    if not isinstance(data, Mapping):
        raise ConfigError("params", data, f"a mapping with sections {sorted(SECTIONS)}")
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ConfigError(unknown[0], data[unknown[0]], f"one of the sections {sorted(SECTIONS)}")
    built = {}
    for name in sections or tuple(SECTIONS):
        built[name] = build(SECTIONS[name](), data.get(name), name)
    return Params(**built)


def _check_nodes(node: yaml.Node, path: Path) -> None:
    """Refuse a key given twice in one mapping (PyYAML keeps the last silently; DVC refuses the file) and a
    document that expands to more than MAX_PARAMS_VALUES values through aliases, before anything is built.

    Works on the composed node graph, where an alias is the same node object again: each node is checked
    once and its expanded size is memoised, so a billion-laughs document costs a few hundred steps.
    """
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, key: str) -> int:
        if id(node) in sizes:
            if sizes[id(node)] < 0:
                raise ConfigError(key or str(path), "a value that contains itself", "no recursive aliases")
            return sizes[id(node)]
        sizes[id(node)] = -1  # in progress
        total = 1
        if isinstance(node, yaml.MappingNode):
            first_line: dict[tuple[str, str], int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: later keys may override it
                    total += size(value_node, key)
                    continue
                name = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else f"<{key_node.tag}>"
                line = key_node.start_mark.line + 1
                if isinstance(key_node, yaml.ScalarNode):  # `1` and `"1"` differ: compare with the tag
                    if (key_node.tag, name) in first_line:
                        raise ConfigError(
                            join_key(key, name),
                            f"given twice, on lines {first_line[key_node.tag, name]} and {line} of {path}",
                            "each key once per mapping",
                        )
                    first_line[key_node.tag, name] = line
                total += size(value_node, join_key(key, name))
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(item, f"{key}[{i}]") for i, item in enumerate(node.value))
        sizes[id(node)] = total
        if total > MAX_PARAMS_VALUES:
            raise ConfigError(
                key or str(path),
                f"{total} values after YAML aliases are expanded",
                f"at most {MAX_PARAMS_VALUES} values in {path}",
            )
        return total

    size(node, "")


def read_params_file(path: str | Path) -> Any:
    """params.yaml parsed safely: a regular UTF-8 file of at most MAX_PARAMS_BYTES, not empty, no key twice,
    no alias bomb. Raises ConfigError naming the file (or the key) otherwise; no sections are checked here."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(str(path), None, "an existing params.yaml (run from the project root or pass --params)")
    if path.stat().st_size > MAX_PARAMS_BYTES:
        raise ConfigError(str(path), f"{path.stat().st_size} bytes", f"a params file of at most {MAX_PARAMS_BYTES}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), f"a byte that is not UTF-8 at offset {exc.start}", "UTF-8 text") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError(
                str(path), "an empty file", f"a mapping with sections {sorted(SECTIONS)} (`{{}}`: all defaults)"
            )
        _check_nodes(node, path)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), "<unparsable YAML>", f"valid YAML ({exc})") from None
    except RecursionError:
        raise ConfigError(str(path), "<nested too deep>", "YAML nested at most a few hundred levels") from None
    finally:
        loader.dispose()


def load_params(path: str | Path = DEFAULT_PARAMS, *sections: str) -> Params:
    """Read and validate params.yaml (``sections``, or all). Raises ConfigError for any bad key or value."""
    return parse_params(read_params_file(path), sections)
