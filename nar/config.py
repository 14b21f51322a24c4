"""params.yaml, validated into typed, frozen objects before any work starts.

One dataclass per section. ``load_params`` checks every key against the dataclass fields and
their type hints (unknown keys, wrong types, empty lists), then each class's ``check`` method
checks ranges and names. Any problem raises :class:`ConfigError` naming the key (as a dotted
path), the value found and what is allowed; the CLI prints it without a traceback.
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from nar.errors import NarError

if TYPE_CHECKING:
    from flows.params import FlowsParams
    from nar.models.model import ModelConfig
    from nar.natural.config import NaturalParams
    from nar.training.loop import TrainConfig
    from nar.transfer.config import EvaluateParams, TransferParams

DEFAULT_PARAMS = Path("params.yaml")
MAX_PARAMS_BYTES = 8 * 2**20  # a params.yaml is a few KB; anything near this is not a configuration
MAX_PARAMS_VALUES = 100_000  # values after YAML aliases are expanded: an alias bomb stops here
SHOWN_CHARS = 200  # at most this much of a bad value goes into an error message

_REPR = reprlib.Repr()  # bounded by depth and length: never builds the whole repr of a huge value
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple = 3, 8, 10, 10
_REPR.maxstring, _REPR.maxlong, _REPR.maxother = SHOWN_CHARS, 60, SHOWN_CHARS


def shown(value: Any) -> str:
    """``repr(value)`` for an error message, cut to at most SHOWN_CHARS characters."""
    if isinstance(value, Mapping) and not isinstance(value, dict):
        value = dict(value)  # read-only views: reprlib would fall back to the full repr
    text = _REPR.repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


class ConfigError(NarError, ValueError):
    """A value in params.yaml (or a CLI override) is not allowed."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}: got {shown(value)}; allowed: {allowed}")


# --------------------------------------------------------------------------- generic checking


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return f"a list of {_type_name(args[0])}" if args else "a list"
    if origin in (dict, Mapping):
        return f"a mapping of name to {_type_name(typing.get_args(tp)[1])}"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return f"a mapping with keys {[f.name for f in dataclasses.fields(tp)]}"
    if tp is type(None):
        return "null"
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string"}.get(tp, str(tp))


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """Check ``value`` against type hint ``tp`` and convert lists to tuples, dicts to dataclasses."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(key, value, _type_name(tp))
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(arg, value, key)
            except ConfigError:
                continue
        raise ConfigError(key, value, _type_name(tp))
    if tp is type(None):
        if value is not None:
            raise ConfigError(key, value, "null")
        return None
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(key, value, _type_name(tp))
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(key, value, f"a list of exactly {len(args)} values")
            return tuple(_coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
        if not value:
            raise ConfigError(key, value, "a non-empty list")
        return tuple(_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping) or not value:
            raise ConfigError(key, value, "a non-empty " + _type_name(tp))
        _, val_tp = typing.get_args(tp)
        # read-only view: Params are frozen all the way down
        return types.MappingProxyType({str(k): _coerce(val_tp, v, f"{key}.{k}") for k, v in value.items()})
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, value, "true/false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, value, "an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, value, "a number")
        if not math.isfinite(value):  # YAML's .nan / .inf: no comparison or threshold means anything with them
            raise ConfigError(key, value, "a finite number")
        return float(value)
    if tp is str:
        if not isinstance(value, str) or not value:
            raise ConfigError(key, value, "a non-empty string")
        return value
    raise TypeError(f"unsupported config type {tp!r} at {key}")


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def build(cls: type, data: Any, key: str) -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys; then run ``cls.check``."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(key, data, _type_name(cls))
    # classes may name types from torch-importing modules; they resolve them on demand
    lazy = getattr(cls, "lazy_types", None)
    hints = typing.get_type_hints(cls, localns=lazy() if lazy else None)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(_join(key, unknown[0]), data[unknown[0]], f"one of the keys {sorted(names)}")
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(_join(key, missing[0]), "missing", f"{_type_name(hints[missing[0]])} (required)")
    kwargs = {name: _coerce(hints[name], data[name], _join(key, name)) for name in names if name in data}
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:  # the class's own validation (__post_init__)
        raise ConfigError(key or "params", dict(data), str(exc)) from None
    check = getattr(obj, "check", None)
    if check is not None:
        check(key)
    return obj


def _require(cond: bool, key: str, value: Any, allowed: str) -> None:
    if not cond:
        raise ConfigError(key, value, allowed)


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
        _require(ok, f"{key}[{i}]" if indexed else key, n, NODE_COUNT_RULE)


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
        _require(self.count > 0, f"{key}.count", self.count, "an integer >= 1")
        check_node_counts(self.sizes, f"{key}.sizes")


@dataclass(frozen=True)
class SamplerParams:
    kind: Literal["er", "grid", "geometric"] = "er"
    p_range: tuple[float, float] = (0.1, 0.9)  # Erdős–Rényi edge probability, drawn per graph
    weighted: bool | None = None  # None: what the algorithm's spec asks for
    directed: bool | None = None

    def check(self, key: str) -> None:
        lo, hi = self.p_range
        _require(0 < lo <= hi <= 1, f"{key}.p_range", list(self.p_range), "two probabilities 0 < low <= high <= 1")


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

        _require(self.seed >= 0, f"{key}.seed", self.seed, "an integer >= 0")
        _require(self.shard_size >= 1, f"{key}.shard_size", self.shard_size, "an integer >= 1")
        for i, name in enumerate(self.algorithms):
            _require(name in ALGORITHMS, f"{key}.algorithms[{i}]", name, f"one of {sorted(ALGORITHMS)}")
        _require(
            len(set(self.algorithms)) == len(self.algorithms), f"{key}.algorithms", list(self.algorithms), "no repeats"
        )
        for split in self.splits:
            _require(is_split_name(split), f"{key}.splits", split, "split names of letters, digits and _")


@dataclass(frozen=True)
class MixParams:
    """train_data "mixed": graph families and sizes drawn at every step (nar.training.pretrain.MixedBatches)."""

    kinds: tuple[str, ...] = ("er", "grid", "geometric")
    sizes: tuple[int, ...] = (8, 16, 24, 32, 48, 64)
    nodes_per_batch: int = 512  # graphs per batch = max(4, nodes_per_batch // n)
    oneway: float = 0.0  # half the batches turn this fraction of two-way edges into one-way streets

    def check(self, key: str) -> None:
        _require(len(self.kinds) > 0, f"{key}.kinds", list(self.kinds), "a non-empty list of er, grid, geometric")
        for i, kind in enumerate(self.kinds):
            _require(kind in ("er", "grid", "geometric"), f"{key}.kinds[{i}]", kind, "er, grid or geometric")
        _require(len(self.sizes) > 0, f"{key}.sizes", list(self.sizes), "a non-empty list of node counts")
        for i, n in enumerate(self.sizes):
            _require(2 <= n <= 256, f"{key}.sizes[{i}]", n, "node counts from 2 to 256")
        _require(self.nodes_per_batch >= 1, f"{key}.nodes_per_batch", self.nodes_per_batch, "an integer >= 1")
        _require(0 <= self.oneway < 1, f"{key}.oneway", self.oneway, "a fraction in [0, 1)")


@dataclass(frozen=True)
class ScaleSuiteParams:
    """Where ``nar pretrain`` scores the trained model on the scale suite (nar.scale, nar.execute.suite_scores)."""

    sizes: tuple[int, ...] = (256,)
    graphs_per_cell: int = 2

    def check(self, key: str) -> None:
        for i, n in enumerate(self.sizes):
            _require(n in (64, 256, 1024), f"{key}.sizes[{i}]", n, "64, 256 or 1024")
        _require(1 <= self.graphs_per_cell <= 100, f"{key}.graphs_per_cell", self.graphs_per_cell, "1 to 100")


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
        _require(self.batch_size >= 1, f"{key}.batch_size", self.batch_size, "an integer >= 1")
        problem = processor_size_problem(dataclasses.asdict(self.model.processor))
        if problem is not None:
            name, value, allowed = problem
            raise ConfigError(f"{key}.model.processor.{name}", value, allowed)
        _require(
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
        _require(
            self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
            f"{key}.device",
            self.device,
            "'auto', 'cpu' or 'cuda[:index]'",
        )
        for name in self.runs:
            _require(
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
        _require(run_ok, f"{key}.run", self.run, "letters, digits, - and _")
        _require(is_model_name(self.model_name), f"{key}.model_name", self.model_name, MODEL_NAME_RULE)


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


def _flows_params() -> type:
    from flows.params import FlowsParams  # Prefect-free; lives beside the flows it configures

    return FlowsParams


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
    "flows": _flows_params,
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
                            _join(key, name),
                            f"given twice, on lines {first_line[key_node.tag, name]} and {line} of {path}",
                            "each key once per mapping",
                        )
                    first_line[key_node.tag, name] = line
                total += size(value_node, _join(key, name))
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
