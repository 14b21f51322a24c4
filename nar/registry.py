"""Freezing, registering and loading processors: the only module that talks to the MLflow registry.

A processor is stored as two files, never as a pickle::

    processor.safetensors   its state_dict, keys sorted (canonical bytes: their sha256 is the
                            processor's identity, ``weights_sha256``)
    processor.json          {"format", "name", "architecture", "hidden", "processor": ProcessorConfig,
                            "algorithms", "spec_versions", "weights_sha256", "weights_file", "config_sha256"}

``config_sha256`` is the sha256 of the JSON's content other than its hashes, in canonical form (sorted
keys, no spaces): the weights' hash says nothing about the config that runs them (``full_adjacency``
flipped in a registered processor.json changes its outputs). Registration records both hashes as
version tags, and loading checks both. Versions registered before this have no config tag and
no ``config_sha256`` in their JSON: they still load, with their weights verified only.

``register`` logs them as an MLflow pyfunc model (``loader_module="nar.registry"``: loading runs
this module's code, nothing is unpickled) and registers a version of ``nar-processor`` with its
lineage as tags, a Markdown model card, alias ``candidate`` and, if it passes the gate, alias
``champion``. ``load_processor`` verifies the sha256 and the config before it builds the module,
and returns it frozen (no gradients; kept in eval mode even when a wrapping model calls ``.train()``).

Consistency (what a registry user may rely on):

- A version is complete once its tag ``nar_status`` is ``ready``; that tag is set last.
  ``load_processor`` refuses versions that are not ready.
- If a step after ``create_model_version`` fails, the version is deleted again and the aliases it
  moved are put back (rollback). If even the rollback cannot reach MLflow, the version stays
  ``pending``: loaders refuse it and a later ``register`` deletes it (the next one on a locked
  SQLite store; against a server once it is older than ``stale_after``, 15 minutes by default).
- Registrations are serialised by a lock file: beside the database for a SQLite store (so in the
  workspace by default), in the temp directory for a server URI (same machine only). Across
  machines, identical weights still end in one version: every version carries its weights'
  sha256 from the moment it is created, and when two exist the lower version number wins and the
  other registration deletes its own and returns the winner. Alias moves across machines are
  last-writer-wins (a shared lock would be needed to serialise the gate itself).
- Transient MLflow errors (connection refused, timeouts, 5xx, a locked SQLite file) are retried a
  bounded number of times with exponential backoff (``RetryPolicy``, env ``NAR_REGISTRY_RETRIES``
  and ``NAR_REGISTRY_RETRY_DELAY``); then a ``RegistryUnavailable`` names the tracking URI.
  MLflow's own HTTP retries (7 by default, minutes) are switched off for these calls unless
  ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` is set, so that the bound is ours.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import math
import os
import re
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save
from torch import nn

from nar.config import MODEL_NAME_RULE, is_model_name, processor_size_problem, shown
from nar.errors import NarError
from nar.limits import read_capped
from nar.models.processors import PROCESSORS, Processor, ProcessorConfig, build_processor
from nar.tracking import (
    RetryingClient,
    RetryPolicy,
    dataset_version,
    details_path,
    dvc_locked_hashes,
    ensure_experiment,
    git_commit,
    is_transient,
    params_hash,
    portable_uri,
    read_with_details,
    safe_uri,
    sqlite_path,
    tracking_uri,
)

log = logging.getLogger(__name__)

REGISTERED_MODEL = "nar-processor"
EXPERIMENT = "nar-register"
WEIGHTS_FILE = "processor.safetensors"
CONFIG_FILE = "processor.json"
CARD_FILE = "model_card.md"
LINEAGE_FILE = "lineage.json"
FORMAT = 1
#: where the processor's files live inside the logged MLflow model
MODEL_DATA_DIR = "data/processor"
DEFAULT_OUT = Path("models/registered.json")

# version tags
TAG_SHA = "weights_sha256"
TAG_CONFIG_SHA = "config_sha256"
TAG_STATUS = "nar_status"
TAG_GATE = "nar_gate"
TAG_ATTEMPT = "nar_registration"  # one id per register() call: tells its own retried creations apart
MODEL_VERSIONS_TAG = "mlflow.modelVersions"  # on a logged model: the versions registered from it (MLflow's own)
READY, PENDING = "ready", "pending"

#: out-of-distribution anchors (n = 64, % nodes with the correct predecessor), see DESIGN.md
CLRS_ANCHORS: dict[str, tuple[float, float]] = {
    # algorithm: (MPNN, CLRS-30 paper; Triplet-GMPNN, Ibarz et al. 2022 Table 2)
    "bfs": (99.89, 99.73),
    "bellman_ford": (92.01, 97.39),
    "dijkstra": (91.50, 96.05),
    "mst_prim": (69.08, 86.39),
    "floyd_warshall": (26.74, 48.52),
}


class RegistryError(NarError):
    """The registry refused an operation or a processor (tampered, mismatched, incomplete, unknown)."""


class RegistryUnavailable(RegistryError):
    """MLflow did not answer after the bounded retries."""


# =========================================================================== freezing and hashing


def _frozen_train(self: nn.Module, mode: bool = True) -> nn.Module:
    # A frozen processor stays in eval mode when the model that wraps it calls .train().
    return nn.Module.train(self, False)


def freeze(processor: nn.Module) -> nn.Module:
    """Freeze ``processor`` in place: eval mode (kept through a wrapper's ``.train()``), no gradients."""
    processor.eval()
    for p in processor.parameters():
        p.requires_grad_(False)
    # a partial of a module-level function (not a bound method): the module still pickles and deep-copies
    processor.train = functools.partial(_frozen_train, processor)
    return processor


def is_frozen(processor: nn.Module) -> bool:
    return not processor.training and not any(p.requires_grad for p in processor.parameters())


def _canonical_tensors(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share storage; contiguous CPU copies, sorted keys
    return {k: state_dict[k].detach().to("cpu").contiguous().clone() for k in sorted(state_dict)}


def weights_bytes(processor_or_state: nn.Module | Mapping[str, torch.Tensor]) -> bytes:
    """The canonical safetensors bytes of a processor's state_dict (sorted keys, no metadata)."""
    state = processor_or_state.state_dict() if isinstance(processor_or_state, nn.Module) else processor_or_state
    return safetensors_save(_canonical_tensors(state))


def weights_sha256(processor_or_state: nn.Module | Mapping[str, torch.Tensor]) -> str:
    """sha256 of :func:`weights_bytes`: the identity of a processor's weights."""
    return hashlib.sha256(weights_bytes(processor_or_state)).hexdigest()


# =========================================================================== files: save and load


@dataclass(frozen=True)
class ProcessorMeta:
    """What ``processor.json`` says about the weights beside it."""

    config: ProcessorConfig
    name: str = ""
    algorithms: tuple[str, ...] = ()
    spec_versions: dict[str, int] = field(default_factory=dict)
    weights_sha256: str | None = None
    #: what the file says its content hashes to (None: written before config hashes existed)
    config_sha256: str | None = None

    def content(self) -> dict[str, Any]:
        """Everything the file says except its hashes: what :func:`config_sha256` covers."""
        return {
            "format": FORMAT,
            "name": self.name,
            "architecture": self.config.kind,
            "hidden": self.config.hidden,
            "processor": self.config.to_dict(),
            "algorithms": list(self.algorithms),
            "spec_versions": dict(self.spec_versions),
            "weights_file": WEIGHTS_FILE,
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.content(), "weights_sha256": self.weights_sha256, "config_sha256": config_sha256(self)}


def config_sha256(meta: ProcessorMeta) -> str:
    """sha256 of ``meta``'s content in canonical JSON (sorted keys, no spaces, ASCII): parsed values, so
    whitespace or key order in the file do not matter, but every value that builds the processor does."""
    text = json.dumps(meta.content(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class LoadedProcessor:
    """A verified processor and where it came from."""

    processor: Processor
    meta: ProcessorMeta
    sha256: str
    uri: str
    version: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    # the whole pretrained network stored beside the processor (MODEL_FILES), when the version has it:
    # what ``nar.execute.load_pretrained`` runs; its processor weights must match ``sha256``
    model_files: dict[str, bytes] = field(default_factory=dict)


_PROCESSOR_FLAGS = ("layer_norm", "full_adjacency")  # true/false fields of ProcessorConfig ("gated": also null)


def _parse_meta(data: Any, where: str) -> ProcessorMeta:
    """processor.json's parsed JSON, checked field by field: every problem is one line naming the field and what
    is allowed (the file may have been edited by hand, or may not be one of ours)."""
    if not isinstance(data, dict):
        raise RegistryError(f"{where}: expected a JSON object, got {type(data).__name__}")
    processor = data.get("processor")
    if not isinstance(processor, dict):
        raise RegistryError(f"{where}: missing the 'processor' config (an object of ProcessorConfig fields)")
    kind = processor.get("kind")
    if not isinstance(kind, str) or kind not in PROCESSORS:
        raise RegistryError(f"{where}: processor kind {shown(kind)} is unknown; known kinds: {sorted(PROCESSORS)}")
    # sizes first, by the params rule: a width of 100000 would ask build_processor for a 240 GB matrix
    problem = processor_size_problem(processor)
    if problem is not None:
        name, value, allowed = problem
        raise RegistryError(f"{where}: processor.{name} is {shown(value)}; allowed: {allowed}")
    for name in (*_PROCESSOR_FLAGS, "gated"):
        value = processor.get(name, False)
        if not isinstance(value, bool) and not (name == "gated" and value is None):
            allowed = "true, false or null" if name == "gated" else "true or false"
            raise RegistryError(f"{where}: processor.{name} is {shown(value)}; allowed: {allowed}")
    try:
        config = ProcessorConfig.from_dict(processor)
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"{where}: bad processor config: {str(exc)[:300]}") from None
    # the redundant top-level fields (for humans and the UI) must agree with the config
    for key, expected in (("architecture", config.kind), ("hidden", config.hidden)):
        if key in data and data[key] != expected:
            raise RegistryError(f"{where}: {key} is {shown(data[key])} but the processor config says {expected!r}")
    name = data.get("name", "")
    algorithms = data.get("algorithms", [])
    spec_versions = data.get("spec_versions", {})
    if not isinstance(name, str):
        raise RegistryError(f"{where}: 'name' is {shown(name)}; allowed: a string")
    if not isinstance(algorithms, list) or not all(isinstance(a, str) for a in algorithms):
        raise RegistryError(f"{where}: 'algorithms' is {shown(algorithms)}; allowed: a list of names")
    if not isinstance(spec_versions, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in spec_versions.values()
    ):
        raise RegistryError(f"{where}: 'spec_versions' is {shown(spec_versions)}; allowed: an object of name: integer")
    sha = data.get("weights_sha256", data.get("sha256"))
    config_sha = data.get("config_sha256")
    for key, value in (("weights_sha256", sha), ("config_sha256", config_sha)):
        if value is not None and not (isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value)):
            raise RegistryError(f"{where}: '{key}' is {shown(value)}; allowed: 64 lowercase hex digits (a sha256)")
    return ProcessorMeta(
        config=config,
        name=name,
        algorithms=tuple(algorithms),
        spec_versions={str(k): int(v) for k, v in spec_versions.items()},
        weights_sha256=sha,
        config_sha256=config_sha,
    )


def _check_tensors(config: ProcessorConfig, tensors: Mapping[str, torch.Tensor], where: str) -> Processor:
    """Build the processor of ``config`` and load ``tensors``, which must match its state_dict exactly."""
    processor = build_processor(config)
    expected = processor.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise RegistryError(
            f"{where}: weights do not match a {config.kind} processor with hidden {config.hidden}: "
            f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}"
        )
    for key, ref in expected.items():
        got = tensors[key]
        if tuple(got.shape) != tuple(ref.shape) or got.dtype != ref.dtype:
            raise RegistryError(
                f"{where}: tensor {key!r} is {got.dtype} {tuple(got.shape)}, but a {config.kind} processor "
                f"with hidden {config.hidden} needs {ref.dtype} {tuple(ref.shape)} (config and weights disagree)"
            )
    processor.load_state_dict(dict(tensors), strict=True)
    return processor


MODEL_FILES = ("model.json", "model.safetensors")  # the pretrain stage's whole network (encoders, decoders)


def _model_files(directory: Path) -> dict[str, bytes]:
    """The whole network's files in ``directory``, if both are there (size-capped: never a surprise to read)."""
    paths = [Path(directory) / f for f in MODEL_FILES]
    if not all(p.is_file() and p.stat().st_size < 1 << 30 for p in paths):
        return {}
    return {p.name: p.read_bytes() for p in paths}


MAX_CONFIG_BYTES = 2**20  # processor.json is well under a kilobyte
MAX_WEIGHTS_BYTES = 4 * 2**30  # the largest processor the size rules allow (nar.config.PROCESSOR_SIZE_RULES) fits


def _read_dir(directory: Path) -> tuple[ProcessorMeta, bytes]:
    """(processor.json parsed and checked, the weights' bytes) of a processor directory. Both must be regular files
    of bounded size (nar.limits.read_capped: no FIFO, no /dev/zero); processor.json UTF-8 JSON of a sane depth."""
    directory = Path(directory)
    cfg, weights = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    read = {}
    for path, cap, what in ((cfg, MAX_CONFIG_BYTES, "processor config"), (weights, MAX_WEIGHTS_BYTES, "weights file")):
        try:
            read[path.name] = read_capped(path, cap, RegistryError, what=what)
        except FileNotFoundError:
            raise RegistryError(f"{directory}: no {path.name} (expected {CONFIG_FILE} and {WEIGHTS_FILE})") from None
    try:
        data = json.loads(read[CONFIG_FILE].decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RegistryError(f"{cfg}: byte {exc.start} is not UTF-8; allowed: UTF-8 JSON (an object)") from None
    except json.JSONDecodeError as exc:
        raise RegistryError(f"{cfg}: not valid JSON: {exc}") from None
    except RecursionError:
        raise RegistryError(f"{cfg}: JSON nested thousands of levels deep; allowed: a config object") from None
    return _parse_meta(data, str(cfg)), read[WEIGHTS_FILE]


def _build_verified(
    meta: ProcessorMeta, blob: bytes, where: str, expected_sha: str | None, expected_config_sha: str | None = None
) -> tuple[Processor, str]:
    """Verify ``blob`` against the expected sha256 (and the JSON's), build the processor from it, then verify
    the config against ``expected_config_sha`` (the registry's tag) and the JSON's own ``config_sha256``.
    The config is checked last so that a config that cannot fit the weights is named as such."""
    sha = hashlib.sha256(blob).hexdigest()
    for label, ref in (("the registry's weights_sha256 tag", expected_sha), (CONFIG_FILE, meta.weights_sha256)):
        if ref is not None and ref != sha:
            raise RegistryError(
                f"{where}: {WEIGHTS_FILE} has sha256 {sha[:16]}..., but {label} says {ref[:16]}...: "
                "the weights were modified or replaced; refusing to load them"
            )
    try:
        tensors = safetensors_load(blob)
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise RegistryError(f"{where}: {WEIGHTS_FILE} is not a valid safetensors file: {exc}") from None
    processor = _check_tensors(meta.config, tensors, where)
    actual = config_sha256(meta)
    for label, ref in (("the registry's config_sha256 tag", expected_config_sha), (CONFIG_FILE, meta.config_sha256)):
        if ref is not None and ref != actual:
            raise RegistryError(
                f"{where}: {CONFIG_FILE}'s content has sha256 {actual[:16]}..., but {label} says {str(ref)[:16]}...: "
                "the processor config was modified; refusing to load it"
            )
    return processor, sha


def save_processor(
    processor: Processor,
    directory: str | Path,
    *,
    name: str = "",
    algorithms: Sequence[str] = (),
    spec_versions: Mapping[str, int] | None = None,
) -> ProcessorMeta:
    """Write ``processor.safetensors`` (canonical bytes) and ``processor.json`` (with their sha256)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    blob = weights_bytes(processor)
    meta = ProcessorMeta(
        config=processor.config,
        name=name,
        algorithms=tuple(algorithms),
        spec_versions=dict(spec_versions or {}),
        weights_sha256=hashlib.sha256(blob).hexdigest(),
    )
    _write_atomic(directory / WEIGHTS_FILE, blob)
    _write_atomic(directory / CONFIG_FILE, (json.dumps(meta.to_json(), indent=2) + "\n").encode())
    return meta


def read_pretrained(pretrain_dir: str | Path) -> LoadedProcessor:
    """Read a pretrain stage output (``models/pretrain/<name>``), check it and freeze it.

    The pretrain stage need not record a sha256; when ``processor.json`` has one it is checked.
    """
    pretrain_dir = Path(pretrain_dir)
    meta, blob = _read_dir(pretrain_dir)
    processor, _ = _build_verified(meta, blob, str(pretrain_dir), None)
    freeze(processor)
    sha = weights_sha256(processor)  # canonical bytes: independent of how pretrain wrote the file
    name = meta.name or pretrain_dir.name
    meta = ProcessorMeta(meta.config, name, meta.algorithms, meta.spec_versions, sha)
    return LoadedProcessor(processor=processor, meta=meta, sha256=sha, uri=str(pretrain_dir))


# =========================================================================== fitting into a wrapper


def _wrapper_hidden(wrapper: Any) -> int:
    if isinstance(wrapper, int):
        return wrapper
    for path in ("hidden", "config.hidden", "config.processor.hidden"):
        obj = wrapper
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if isinstance(obj, int):
            return obj
    raise RegistryError(f"cannot tell the hidden size of {type(wrapper).__name__}: pass it as an int")


def check_fits(processor: Processor, wrapper: Any) -> None:
    """Check that ``processor`` fits encoders/decoders of ``wrapper`` (an int hidden size, or an
    object with ``hidden``, ``config.hidden`` or ``config.processor.hidden``)."""
    hidden = _wrapper_hidden(wrapper)
    if processor.config.hidden != hidden:
        raise RegistryError(
            f"the processor has hidden size {processor.config.hidden} but the encoders/decoders use {hidden}: "
            f"build them with hidden={processor.config.hidden}"
        )


def attach_processor(model: nn.Module, processor: Processor) -> nn.Module:
    """Put ``processor`` into ``model.processor`` (e.g. an ``EncodeProcessDecode``) after checking it fits."""
    check_fits(processor, model)
    current = getattr(model, "processor", None)
    if isinstance(current, Processor) and current.config != processor.config:
        raise RegistryError(
            f"the model was built for processor {current.config} but got {processor.config}: "
            "build the model with ModelConfig(processor=processor.config)"
        )
    model.processor = processor
    return model


# =========================================================================== MLflow access


def _error_code(exc: BaseException) -> str | None:
    return getattr(exc, "error_code", None)


# the retry machinery is shared with tracking (nar.tracking): these names stay importable from here
_is_transient = is_transient
_safe_uri = safe_uri
_sqlite_path = sqlite_path


class _Mlflow(RetryingClient):
    """An MlflowClient created and called inside bounded retries; registry errors when they run out."""

    def __init__(self, uri: str, retry: RetryPolicy | None = None) -> None:
        super().__init__(uri, retry, unavailable=RegistryUnavailable, error=RegistryError)


@contextlib.contextmanager
def _mlflow_env(uri: str) -> Iterator[None]:
    """MLflow settings for registry work, all restored afterwards.

    The fluent ``log_model`` needs the global tracking URI; ``mlflow.set_tracking_uri`` also
    writes ``MLFLOW_TRACKING_URI`` (and unsets it when reset), so the module globals and the
    environment are saved and put back by hand. The active experiment a stage selected earlier in
    the process (``nar.tracking.configure_mlflow``: nar-pretrain) is set aside too: ``start_run`` of
    the registration run refuses a run of another experiment than the active one.
    """
    defaults = {
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",  # our RetryPolicy bounds the retries
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    keys = [*defaults, "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"]
    saved = {k: os.environ.get(k) for k in keys}
    for k, v in defaults.items():
        os.environ.setdefault(k, v)
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    os.environ.pop("MLFLOW_EXPERIMENT_NAME", None)
    import mlflow
    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    old_tracking, old_registry = tracking_utils._tracking_uri, registry_utils._registry_uri
    old_experiment, fluent._active_experiment_id = fluent._active_experiment_id, None
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        if tracking_utils._tracking_uri != old_tracking:
            tracking_utils.set_tracking_uri(old_tracking)
        registry_utils._registry_uri = old_registry
        fluent._active_experiment_id = old_experiment
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def lock_path(uri: str) -> Path:
    """The lock file that serialises registrations against ``uri``.

    SQLite: ``<database>.lock`` beside the database (the workspace by default). A server:
    one per URI in the temp directory (serialises the processes of one machine).
    """
    db = _sqlite_path(uri)
    if db is not None:
        return db.with_name(db.name + ".lock")
    digest = hashlib.sha256(_safe_uri(uri).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"nar-registry-{digest}.lock"


@contextlib.contextmanager
def _registry_lock(uri: str, timeout: float) -> Iterator[None]:
    from filelock import FileLock, Timeout

    path = lock_path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise RegistryError(
            f"another registration holds {path} for more than {timeout:.0f}s; wait for it or remove the file "
            "if no `nar register` is running"
        ) from None
    try:
        yield
    finally:
        lock.release()


# =========================================================================== gate and metrics


@dataclass(frozen=True)
class Gate:
    """When a new version becomes ``champion``.

    metric: a dotted path into the pretrain metrics JSON (default ``ood_score``).
    margin: the new score must reach the champion's plus ``margin`` (minus, when lower is better);
        a negative margin tolerates small regressions.
    """

    metric: str = "ood_score"
    margin: float = 0.0
    higher_is_better: bool = True

    @property
    def tag(self) -> str:
        return "ood_score" if self.metric == "ood_score" else f"metric.{self.metric}"

    def decide(self, new: float, champion: float | None, champion_version: str | None) -> tuple[bool, str]:
        if champion_version is None:
            return True, f"no champion yet; {self.metric} {new:.4g}"
        if champion is None:
            return False, (
                f"champion version {champion_version} has no {self.metric} to compare with; "
                "kept it (promote by hand with `nar registry promote`)"
            )
        sign = 1.0 if self.higher_is_better else -1.0
        needed = champion + sign * self.margin
        ok = sign * (new - needed) >= 0
        rel = (">=" if ok else "<") if self.higher_is_better else ("<=" if ok else ">")
        cmp = (
            f"{self.metric} {new:.4g} {rel} champion version {champion_version}'s {champion:.4g} "
            f"{'+' if self.higher_is_better else '-'} margin {self.margin:g}"
        )
        return ok, (f"promoted: {cmp}" if ok else f"kept champion version {champion_version}: {cmp}")


TAG_SCALE = "scale_score"  # mean pointer accuracy (%) on the n = 256 scale suite (nar.execute.suite_scores)
#: every score a version is tagged with (ood_score, ood_score.<algorithm>, scale*) is in %; versions
#: registered before this tag had their per-algorithm scores as fractions (see version_ood_scores)
TAG_UNIT, PERCENT = "score_unit", "percent"


def scale_score(metrics: Mapping[str, Any]) -> float | None:
    """The pretrain metrics' scale-suite score (%), or None when the run has none (dense-only processor)."""
    value = (metrics.get("scale") or {}).get("score") if isinstance(metrics.get("scale"), Mapping) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _scale_gate(reason: str, new: float | None, champion_raw: str | None, champion_version: str) -> tuple[bool, str]:
    """A version that passed the metric gate must also not lose on the scale suite (when the champion has a
    score there): a processor that executes worse on large graphs does not become champion."""
    if champion_raw in (None, ""):
        return True, reason
    champion = float(champion_raw)
    if new is None:
        return False, f"kept champion version {champion_version}: it has {TAG_SCALE} {champion:.4g}, the new one none"
    if new < champion:
        return False, f"kept champion version {champion_version}: {TAG_SCALE} {new:.4g} < its {champion:.4g}"
    return True, f"{reason}; {TAG_SCALE} {new:.4g} >= {champion:.4g}"


def metric_value(metrics: Mapping[str, Any], path: str) -> float:
    obj: Any = metrics
    for part in path.split("."):
        if not isinstance(obj, Mapping) or part not in obj:
            raise RegistryError(f"metrics have no {path!r} (missing {part!r}); the gate needs it")
        obj = obj[part]
    if isinstance(obj, bool) or not isinstance(obj, int | float) or not math.isfinite(obj):
        raise RegistryError(f"metrics {path!r} is {obj!r}, not a finite number")
    return float(obj)


def as_percent(value: float) -> float:
    """A score in %: values in [0, 1] are fractions (what ``nar.training.metrics`` computes), larger ones are %.

    Only the fallback of :func:`ood_scores` (metrics written before per-algorithm scores in %) and versions
    registered before ``score_unit`` need it; the one reading it gets wrong is a score of at most 1 %
    written by hand in %, a processor that learned nothing either way."""
    return 100.0 * value if 0.0 <= value <= 1.0 else value


def ood_scores(metrics: Mapping[str, Any]) -> tuple[int | None, dict[str, float]]:
    """(largest test size, {algorithm: score in % at that size}) from the pretrain metrics.

    Per algorithm: its own ``ood_score`` (in %, as ``nar pretrain`` writes it) if given, else the test
    entry at the largest size (fractions, as the training metrics compute them): its ``score``, else its
    ``pi`` (predecessor pointers), else the mean of its numbers, in % (:func:`as_percent`).
    """
    sizes: set[int] = set()
    scores: dict[str, float] = {}
    for algo, entry in (metrics.get("algorithms") or {}).items():
        if not isinstance(entry, Mapping):
            continue
        test = entry.get("test") or {}
        sized = {int(k): v for k, v in test.items() if str(k).isdigit() and isinstance(v, Mapping)}
        own = entry.get("ood_score")
        if isinstance(own, int | float) and not isinstance(own, bool):
            scores[algo] = float(own)
        elif sized:
            at = sized[max(sized)]
            nums = {k: float(v) for k, v in at.items() if isinstance(v, int | float) and not isinstance(v, bool)}
            if "score" in nums:
                scores[algo] = as_percent(nums["score"])
            elif "pi" in nums:
                scores[algo] = as_percent(nums["pi"])
            elif nums:
                scores[algo] = as_percent(sum(nums.values()) / len(nums))
        sizes.update(sized)
    return (max(sizes) if sizes else None), scores


def version_ood_scores(tags: Mapping[str, str]) -> dict[str, float]:
    """A version's per-algorithm ``ood_score.<algorithm>`` tags in %; versions registered before
    ``score_unit`` tagged them as fractions."""
    percent = tags.get(TAG_UNIT) == PERCENT
    scores = {}
    for key, raw in tags.items():
        if key.startswith("ood_score.") and key.count(".") == 1:
            try:
                value = float(raw)
            except ValueError:
                continue
            scores[key.split(".", 1)[1]] = value if percent else as_percent(value)
    return scores


# =========================================================================== model card


def model_card(
    *,
    name: str,
    version: str | None,
    meta: ProcessorMeta,
    metrics: Mapping[str, Any],
    lineage: Mapping[str, Any],
    gate_reason: str = "",
) -> str:
    """The Markdown card of a registered processor."""
    cfg = meta.config
    size, scores = ood_scores(metrics)
    title = f"{name} version {version}" if version else name
    uri = f"models:/{name}/{version}" if version else f"models:/{name}@champion"
    lines = [
        f"# {title}",
        "",
        f"Frozen **{cfg.kind}** processor (hidden {cfg.hidden}, layer norm {cfg.layer_norm}, gated {cfg.gated}, "
        f"message MLP layers {cfg.msg_mlp_layers}"
        + (f", triplet features {cfg.triplet_features}" if cfg.kind == "triplet_gmpnn" else "")
        + f"), pretrained as `{meta.name}` on: {', '.join(meta.algorithms) or 'unknown'}.",
        "",
        f"- weights sha256: `{meta.weights_sha256}`",
        f"- processor.json content sha256: `{config_sha256(meta)}`",
        f"- spec versions: {', '.join(f'{a} v{v}' for a, v in sorted(meta.spec_versions.items())) or 'unknown'}",
        f"- git commit: `{lineage.get('git_commit', 'unknown')}`, params hash: `{lineage.get('params_hash', '')}`",
    ]
    if "ood_score" in metrics:
        lines.append(f"- OOD score (mean over algorithms): **{float(metrics['ood_score']):.2f} %**")
    if gate_reason:
        lines.append(f"- champion gate: {gate_reason}")
    at = f"n = {size}" if size else "the largest test size"
    lines += [
        "",
        f"## Out-of-distribution scores ({at}; % nodes with the correct predecessor pointer)",
        "",
        "CLRS anchors: trained on n <= 16, tested on n = 64 (Veličković et al. 2022; Ibarz et al. 2022, Table 2).",
        "",
        "| algorithm | this processor | MPNN (CLRS-30) | Triplet-GMPNN (Ibarz et al.) |",
        "|---|---|---|---|",
    ]
    for algo in sorted(set(meta.algorithms) | set(scores)):
        mpnn, triplet = CLRS_ANCHORS.get(algo, (None, None))
        ours = f"{scores[algo]:.2f}" if algo in scores else "-"
        lines.append(
            f"| {algo} | {ours} | {'-' if mpnn is None else f'{mpnn:.2f}'} | "
            f"{'-' if triplet is None else f'{triplet:.2f}'} |"
        )
    datasets = lineage.get("datasets") or {}
    lines += ["", "## Trained on", ""]
    if datasets:
        for algo, splits in sorted(datasets.items()):
            lines.append(f"- {algo}: " + ", ".join(f"{split} `{v}`" for split, v in sorted(splits.items())))
    else:
        lines.append("- dataset manifests were not found in the workspace")
    for path, md5 in sorted((lineage.get("dvc") or {}).items()):
        lines.append(f"- DVC `{path}`: md5 `{md5}`")
    lines += [
        "",
        "## How to load",
        "",
        "```python",
        "from nar.registry import load_processor, check_fits",
        "",
        f'processor = load_processor("{uri}")  # frozen, eval mode, sha256 and config verified',
        f"check_fits(processor, {cfg.hidden})  # new encoders/decoders must use hidden={cfg.hidden}",
        "```",
        "",
        f"Command line: `nar registry verify {uri}`. The files are `{MODEL_DATA_DIR}/{WEIGHTS_FILE}` "
        f"(safetensors, no pickle) and `{MODEL_DATA_DIR}/{CONFIG_FILE}` in the model's artifacts.",
        "",
    ]
    return "\n".join(lines)


# =========================================================================== registration


@dataclass(frozen=True)
class RegistrationResult:
    """What ``register`` did. ``reason`` says why (gate decision, or that nothing changed);
    ``gate`` is the gate decision recorded when the version was created."""

    name: str
    version: str
    uri: str
    sha256: str
    aliases: tuple[str, ...]
    created: bool
    champion: bool
    reason: str
    gate: str = ""
    model_uri: str = ""
    tracking_uri: str = ""
    config_sha256: str = ""  # empty for versions registered before config hashes

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["aliases"] = list(self.aliases)
        return d

    def record(self, workspace: Path | None = None) -> dict[str, Any]:
        """The content of ``models/registered.json``: the same for a rerun that changed nothing
        (so DVC does not rerun downstream stages), unless aliases moved meanwhile.

        The file is tracked by git, so it holds nothing of one machine or one store's history: no
        absolute path (a SQLite store inside ``workspace`` is named relative to it, e.g.
        ``sqlite:///mlflow.db``; one outside it not at all) and no logged-model id (``m-<random>``,
        new in every store; the registered version's ``uri`` finds it)."""
        keys = ("name", "version", "uri", "sha256", "config_sha256", "aliases", "gate")
        out = {k: v for k, v in self.to_dict().items() if k in keys}
        portable = portable_uri(self.tracking_uri, workspace or Path.cwd()) if self.tracking_uri else None
        if portable is not None:
            out["tracking_uri"] = portable
        return out


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _dataset_lineage(workspace: Path, algorithms: Sequence[str]) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    datasets: dict[str, dict[str, str]] = {}
    for algo in algorithms:
        root = workspace / "data" / "synthetic" / algo
        splits = {}
        if root.is_dir():
            for split_dir in sorted(p for p in root.iterdir() if (p / "manifest.json").is_file()):
                splits[split_dir.name] = dataset_version(split_dir)
        if splits:
            datasets[algo] = splits
    dvc = {
        path: md5
        for path, md5 in dvc_locked_hashes("generate", workspace).items()
        if any(Path(path).name == a or path.rstrip("/").endswith(f"/{a}") for a in algorithms)
    }
    return datasets, dvc


def _tag_value(value: Any, limit: int = 5000) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 30] + f"...(see {LINEAGE_FILE})"


def _experiment_id(ml: _Mlflow, name: str, workspace: Path) -> str:
    """The registration experiment: artifacts beside a SQLite database (mlruns/ in the workspace by
    default, not the cwd), refused when a copied workspace's database points into the original's."""
    db = sqlite_path(ml.uri)
    location = (db.parent / "mlruns").as_uri() if db is not None else None
    return ensure_experiment(ml, name, artifact_location=location, workspace=workspace)


def check_model_name(name: str) -> str:
    """``name`` if MLflow can store and search for it, else a RegistryError, raised before anything touches
    MLflow: ``a'b`` used to create an empty registered model that ``search_model_versions`` (a quoted
    filter) then failed on, and that ``nar registry list`` could never show."""
    if not isinstance(name, str) or not is_model_name(name):
        shown = repr(name[:80] + ("..." if len(name) > 80 else "")) if isinstance(name, str) else repr(name)
        raise RegistryError(f"registered model name {shown}: allowed are {MODEL_NAME_RULE}")
    return name


def _ensure_registered_model(ml: _Mlflow, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        ml.get_registered_model(name)
        return
    except MlflowException as exc:
        if _error_code(exc) != "RESOURCE_DOES_NOT_EXIST":
            raise
    try:
        ml.create_registered_model(
            name,
            tags={"nar.kind": "processor"},
            description="Frozen neural-algorithmic-reasoning processors (nar). Load with "
            f"`nar.registry.load_processor('models:/{name}@champion')`.",
        )
    except MlflowException as exc:
        if _error_code(exc) != "RESOURCE_ALREADY_EXISTS":
            raise


def _versions_with_sha(ml: _Mlflow, name: str, sha: str) -> list[Any]:
    return list(ml.search_model_versions(f"name='{name}' and tags.{TAG_SHA}='{sha}'"))


def _status(mv: Any) -> str:
    return (mv.tags or {}).get(TAG_STATUS, "")


def _age_s(mv: Any) -> float:
    return time.time() - (mv.creation_timestamp or 0) / 1000.0


def _aliases_of(ml: _Mlflow, name: str, version: str) -> tuple[str, ...]:
    aliases = ml.get_registered_model(name).aliases or {}
    return tuple(sorted(a for a, v in aliases.items() if str(v) == str(version)))


def _existing_result(ml: _Mlflow, name: str, mv: Any, reason: str, uri: str) -> RegistrationResult:
    tags = mv.tags or {}
    aliases = _aliases_of(ml, name, mv.version)
    return RegistrationResult(
        name=name,
        version=str(mv.version),
        uri=f"models:/{name}/{mv.version}",
        sha256=tags.get(TAG_SHA, ""),
        config_sha256=tags.get(TAG_CONFIG_SHA, ""),
        aliases=aliases,
        created=False,
        champion="champion" in aliases,
        reason=reason,
        gate=tags.get(TAG_GATE, ""),
        model_uri=mv.source or "",
        tracking_uri=_safe_uri(uri),
    )


def register(
    pretrain_dir: str | Path,
    metrics_path: str | Path | None = None,
    *,
    name: str = REGISTERED_MODEL,
    gate: Gate | None = None,
    workspace: str | Path | None = None,
    out: str | Path | None = DEFAULT_OUT,
    params: Mapping[str, Any] | None = None,
    uri: str | None = None,
    retry: RetryPolicy | None = None,
    use_lock: bool = True,
    lock_timeout: float = 600.0,
    stale_after: float = 900.0,
    wait_timeout: float = 300.0,
    experiment: str = EXPERIMENT,
) -> RegistrationResult:
    """Freeze the pretrained processor in ``pretrain_dir`` and register it as a version of ``name``.

    pretrain_dir: ``models/pretrain/<name>`` (``processor.safetensors`` + ``processor.json``).
    metrics_path: its metrics JSON (default ``metrics/pretrain/<name>.json``); the gate reads it.
    params: the configuration the processor came from; its hash is recorded (``params_hash``).
    uri: tracking URI (default: ``nar.tracking.tracking_uri(workspace)``).
    out: where to write ``registered.json`` (relative to the workspace; None: do not write).
    use_lock: serialise with other registrations through :func:`lock_path` (leave it on).
    stale_after: a ``pending`` version older than this (seconds) is an interrupted registration and
        is deleted; with the lock on a SQLite store every pending version is (nobody else can be running).

    Identical weights (same sha256) already registered: no new version; the existing one is returned.
    """
    check_model_name(name)
    ws = Path(workspace or Path.cwd()).resolve()
    pretrain_dir = ws / pretrain_dir
    loaded = read_pretrained(pretrain_dir)
    meta = loaded.meta
    metrics_file = ws / (metrics_path or Path("metrics") / "pretrain" / f"{meta.name}.json")
    if not metrics_file.is_file():
        raise RegistryError(f"no metrics file {metrics_file} (pass --metrics); the gate needs the scores")
    try:  # the headline file over its details (metrics/pretrain/details/<name>.json) when present
        metrics = read_with_details(metrics_file)
    except json.JSONDecodeError as exc:
        raise RegistryError(f"{metrics_file}: not valid JSON: {exc}") from None
    gate = gate or Gate()
    score = metric_value(metrics, gate.metric)
    size, per_algo = ood_scores(metrics)
    datasets, dvc = _dataset_lineage(ws, meta.algorithms)
    lineage = {
        "source": str(pretrain_dir.relative_to(ws)) if pretrain_dir.is_relative_to(ws) else str(pretrain_dir),
        "metrics": str(metrics_file.relative_to(ws)) if metrics_file.is_relative_to(ws) else str(metrics_file),
        "git_commit": git_commit(ws, outputs=[out] if out is not None else []),
        "params_hash": params_hash(params if params is not None else meta.to_json()),
        "datasets": datasets,
        "dvc": dvc,
        "ood_test_size": size,
        "ood_scores": per_algo,
        "gate": asdict(gate),
    }
    uri = uri or tracking_uri(ws)
    retry = retry or RetryPolicy.from_env()
    if use_lock and _sqlite_path(uri) is not None:
        stale_after = 0.0  # nobody else can be half-way through: every pending version is an orphan
    lock = _registry_lock(uri, lock_timeout) if use_lock else contextlib.nullcontext()
    with lock, _mlflow_env(uri):
        ml = _Mlflow(uri, retry)  # created inside the retries: a locked database is retried, a bad URI one line
        try:
            # first: a copied workspace's store is refused before anything is created in it
            experiment_id = _experiment_id(ml, experiment, ws)
            result = _register(
                ml, loaded, metrics, lineage, score, name, gate, experiment_id, stale_after, wait_timeout, metrics_file
            )
        except NarError:
            raise
        except Exception as exc:
            raise RegistryError(f"MLflow at {_safe_uri(uri)}: {type(exc).__name__}: {exc}") from exc
    if out is not None:
        _write_atomic(ws / out, (json.dumps(result.record(ws), indent=2) + "\n").encode())
    log.info("registered %s: %s", result.uri, result.reason)
    return result


def _register(
    ml: _Mlflow,
    loaded: LoadedProcessor,
    metrics: Mapping[str, Any],
    lineage: dict[str, Any],
    score: float,
    name: str,
    gate: Gate,
    experiment_id: str,
    stale_after: float,
    wait_timeout: float,
    metrics_file: Path,
) -> RegistrationResult:
    sha, meta = loaded.sha256, loaded.meta
    _ensure_registered_model(ml, name)
    for _ in range(3):  # a round restarts only if a concurrent registration we waited for rolled back
        # 1. identical weights already registered (or being registered right now elsewhere)?
        existing = _versions_with_sha(ml, name, sha)
        ready = sorted((v for v in existing if _status(v) == READY), key=lambda v: int(v.version))
        if ready:
            _backfill_link(ml, name, ready[0])
            return _existing_result(
                ml,
                name,
                ready[0],
                f"identical weights are already version {ready[0].version}; nothing registered",
                ml.uri,
            )
        _delete_stale(ml, name, stale_after)
        fresh = sorted((v for v in existing if _age_s(v) < stale_after), key=lambda v: int(v.version))
        if fresh:
            winner = _wait_ready(ml, name, str(fresh[0].version), wait_timeout)
            if winner is not None:
                return _existing_result(
                    ml,
                    name,
                    winner,
                    f"identical weights were registered concurrently as version {winner.version}",
                    ml.uri,
                )
            continue
        # 2. log the model, then create the version (tagged with the sha256 from the start)
        run_id, model_id, model_uri = _log_model(ml, loaded, metrics, lineage, experiment_id, metrics_file)
        tags = _version_tags(meta, metrics, lineage, gate, score)
        tags[TAG_ATTEMPT] = attempt = uuid.uuid4().hex
        aliases_before = dict(ml.get_registered_model(name).aliases or {})
        try:
            mv = ml.create_model_version(name, source=model_uri, run_id=run_id, tags=tags, model_id=model_id)
        except BaseException:
            # if MLflow created it but the answer was lost, it stays pending: refused, deleted later
            _end_run(ml, run_id, "FAILED")
            raise
        version = str(mv.version)
        try:
            result = _finish(
                ml, name, version, attempt, meta, metrics, lineage, gate, score, model_id, model_uri, stale_after
            )
        except BaseException as exc:
            _rollback(ml, name, version, aliases_before, exc, model_id)
            _end_run(ml, run_id, "FAILED")
            raise
        _end_run(ml, run_id, "FINISHED")
        if result is not None:
            return result
        # lost a race to a lower version with the same weights: ours was deleted; wait for the winner
    raise RegistryError(f"could not register {sha[:16]}...: concurrent registrations kept rolling back")


def _backfill_link(ml: _Mlflow, name: str, mv: Any) -> None:
    """Versions registered before the logged-model link get it when their weights are registered again
    (a rerun of the register stage). Best effort: a registration that changes nothing does not fail on it."""
    from mlflow.exceptions import MlflowException

    model_id = _logged_model_id(mv)
    if model_id is None:
        return
    try:
        _link_logged_model(ml, model_id, name, str(mv.version))
    except (MlflowException, RegistryError) as exc:
        log.warning("could not link logged model %s to %s version %s: %s", model_id, name, mv.version, exc)


def _finish(
    ml: _Mlflow,
    name: str,
    version: str,
    attempt: str,
    meta: ProcessorMeta,
    metrics: Mapping[str, Any],
    lineage: Mapping[str, Any],
    gate: Gate,
    score: float,
    model_id: str,
    model_uri: str,
    stale_after: float,
) -> RegistrationResult | None:
    sha = meta.weights_sha256 or ""
    others = [v for v in _versions_with_sha(ml, name, sha) if str(v.version) != version]
    # a create_model_version retried after a lost response may have created a twin: ours, delete it
    for twin in [v for v in others if (v.tags or {}).get(TAG_ATTEMPT) == attempt]:
        ml.delete_model_version(name, str(twin.version))
    others = [v for v in others if (v.tags or {}).get(TAG_ATTEMPT) != attempt]
    # 3. a concurrent registration of the same weights (no shared lock, e.g. two machines, one server):
    #    the lowest version number wins; the others delete themselves and return it
    live = [v for v in others if _status(v) == READY or _age_s(v) < stale_after]
    if live:
        winner = min(live, key=lambda v: (_status(v) != READY, int(v.version)))
        if _status(winner) == READY or int(winner.version) < int(version):
            ml.delete_model_version(name, version)
            return None
    # 4. card, aliases, gate
    aliases = dict(ml.get_registered_model(name).aliases or {})
    champion_version = aliases.get("champion")
    champion_score = None
    if champion_version is not None:
        champ = ml.get_model_version(name, str(champion_version))
        raw = (champ.tags or {}).get(gate.tag)
        champion_score = float(raw) if raw not in (None, "") else None
    promote, reason = gate.decide(score, champion_score, None if champion_version is None else str(champion_version))
    if promote and champion_version is not None:
        promote, reason = _scale_gate(reason, scale_score(metrics), (champ.tags or {}).get(TAG_SCALE), champion_version)
    card = model_card(name=name, version=version, meta=meta, metrics=metrics, lineage=lineage, gate_reason=reason)
    ml.update_model_version(name, version, description=card)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / CARD_FILE).write_text(card)
        ml.log_model_artifacts(model_id, tmp)
    ml.set_registered_model_alias(name, "candidate", version)
    if promote:
        ml.set_registered_model_alias(name, "champion", version)
    ml.set_model_version_tag(name, version, TAG_GATE, _tag_value(reason))
    _link_logged_model(ml, model_id, name, version)
    # 5. complete: from now on loaders accept it
    ml.set_model_version_tag(name, version, TAG_STATUS, READY)
    aliases = ("candidate", "champion") if promote else ("candidate",)
    return RegistrationResult(
        name=name,
        version=version,
        uri=f"models:/{name}/{version}",
        sha256=sha,
        config_sha256=config_sha256(meta),
        aliases=aliases,
        created=True,
        champion=promote,
        reason=reason,
        gate=reason,
        model_uri=model_uri,
        tracking_uri=_safe_uri(ml.uri),
    )


def _version_tags(
    meta: ProcessorMeta, metrics: Mapping[str, Any], lineage: Mapping[str, Any], gate: Gate, score: float
) -> dict[str, str]:
    tags = {
        TAG_SHA: meta.weights_sha256 or "",
        TAG_CONFIG_SHA: config_sha256(meta),  # what _log_model wrote as processor.json, canonical
        TAG_STATUS: PENDING,
        "processor_kind": meta.config.kind,
        "hidden": str(meta.config.hidden),
        "algorithms": ",".join(meta.algorithms),
        "spec_versions": _tag_value(meta.spec_versions),
        "dataset_versions": _tag_value(lineage["datasets"]),
        "dvc_hashes": _tag_value(lineage["dvc"]),
        "git_commit": lineage["git_commit"],
        "params_hash": lineage["params_hash"],
        "pretrain_name": meta.name,
        "ood_test_size": str(lineage["ood_test_size"] or ""),
        gate.tag: repr(score),
    }
    if "ood_score" in metrics:
        tags["ood_score"] = repr(float(metrics["ood_score"]))
    scale = scale_score(metrics)
    if scale is not None:
        tags[TAG_SCALE] = repr(scale)
        for algo, sizes in metrics["scale"].items():
            if isinstance(sizes, Mapping):
                for n, families in sizes.items():
                    for family, value in families.items():
                        tags[f"scale.{algo}.{n}.{family}"] = repr(float(value))
    for algo, value in lineage["ood_scores"].items():
        tags[f"ood_score.{algo}"] = repr(value)  # % (ood_scores), like ood_score and scale_score
    tags[TAG_UNIT] = PERCENT
    return tags


def _log_model(
    ml: _Mlflow,
    loaded: LoadedProcessor,
    metrics: Mapping[str, Any],
    lineage: Mapping[str, Any],
    experiment_id: str,
    metrics_file: Path,
) -> tuple[str, str, str]:
    """A run with the lineage, and the processor logged in it as a pyfunc model. Returns (run, model id, uri)."""
    import mlflow
    import safetensors

    meta = loaded.meta
    run = ml.create_run(
        experiment_id,
        run_name=f"register-{meta.name}",
        tags={TAG_SHA: meta.weights_sha256 or "", "git_commit": lineage["git_commit"], "source": lineage["source"]},
    )
    run_id = run.info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "processor"  # becomes MODEL_DATA_DIR inside the model
        save_processor(
            loaded.processor, data_dir, name=meta.name, algorithms=meta.algorithms, spec_versions=meta.spec_versions
        )
        (data_dir / LINEAGE_FILE).write_text(json.dumps(lineage, indent=2, sort_keys=True) + "\n")
        for fname, data in _model_files(Path(loaded.uri)).items():  # the whole network, for nar.execute
            (data_dir / fname).write_bytes(data)
        if hashlib.sha256((data_dir / WEIGHTS_FILE).read_bytes()).hexdigest() != meta.weights_sha256:
            raise RegistryError("internal: the canonical weights changed while saving them")
        written, _ = _read_dir(data_dir)
        if config_sha256(written) != config_sha256(meta):
            raise RegistryError("internal: processor.json does not read back as the config being registered")

        signature = processor_signature(loaded.processor)

        def log() -> Any:
            # nested: the caller (a flow, a training script) may have a run of its own open
            with mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None):
                mlflow.log_params({f"processor.{k}": v for k, v in meta.config.to_dict().items()})
                mlflow.log_param("algorithms", ",".join(meta.algorithms))
                scores = {f"ood_score.{a}": v for a, v in lineage["ood_scores"].items()}
                if isinstance(metrics.get("ood_score"), int | float):
                    scores["ood_score"] = float(metrics["ood_score"])
                mlflow.log_metrics(scores)
                mlflow.log_artifact(str(metrics_file), artifact_path="metrics")
                if details_path(metrics_file).is_file():
                    mlflow.log_artifact(str(details_path(metrics_file)), artifact_path="metrics/details")
                return mlflow.pyfunc.log_model(
                    name="processor",
                    loader_module="nar.registry",
                    data_path=str(data_dir),
                    signature=signature,
                    input_example=processor_example(meta.config.hidden),
                    pip_requirements=[
                        f"torch=={torch.__version__.split('+')[0]}",
                        f"safetensors=={safetensors.__version__}",
                        f"mlflow=={mlflow.__version__}",
                    ],
                )

        try:
            info = ml.call("log_model", log)
        except BaseException:
            _end_run(ml, run_id, "FAILED")
            raise
    return run_id, info.model_id, info.model_uri


def _end_run(ml: _Mlflow, run_id: str, status: str) -> None:
    with contextlib.suppress(Exception):
        ml.set_terminated(run_id, status=status)


def _model_versions_links(ml: _Mlflow, model_id: str) -> list[dict[str, Any]]:
    raw = (ml.get_logged_model(model_id).tags or {}).get(MODEL_VERSIONS_TAG)
    try:
        links = json.loads(raw) if raw else []
    except json.JSONDecodeError:
        links = []
    return [link for link in links if isinstance(link, dict)] if isinstance(links, list) else []


def _link_logged_model(ml: _Mlflow, model_id: str, name: str, version: str) -> None:
    """Record on the logged model that it is ``name`` version ``version``, as ``mlflow.register_model`` does
    (tag ``mlflow.modelVersions``: a JSON list of {name, version}); the MLflow UI reads it to show the
    model as registered. ``create_model_version(model_id=...)`` alone links only the other way round.
    Idempotent: a link already there is not added twice."""
    links = _model_versions_links(ml, model_id)
    if any(link.get("name") == name and str(link.get("version")) == str(version) for link in links):
        return
    links.append({"name": name, "version": int(version)})  # an int, as mlflow.register_model writes it
    ml.set_logged_model_tags(model_id, {MODEL_VERSIONS_TAG: json.dumps(links)})


def _unlink_logged_model(ml: _Mlflow, model_id: str, name: str, version: str) -> None:
    """Remove a deleted version's link from its logged model (the UI would link a version that is gone)."""
    links = _model_versions_links(ml, model_id)
    kept = [link for link in links if not (link.get("name") == name and str(link.get("version")) == str(version))]
    if len(kept) != len(links):
        ml.set_logged_model_tags(model_id, {MODEL_VERSIONS_TAG: json.dumps(kept)})


def _logged_model_id(mv: Any) -> str | None:
    """The logged model a version was created from (its source is ``models:/m-<id>``), None for older sources."""
    source = mv.source or ""
    return source[len("models:/") :].strip("/") if source.startswith("models:/m-") else None


def _rollback(
    ml: _Mlflow,
    name: str,
    version: str,
    aliases_before: Mapping[str, Any],
    cause: BaseException,
    model_id: str | None = None,
) -> None:
    """Undo a version whose registration failed half-way: delete it, unlink its logged model, put moved
    aliases back."""
    # A version that exists but is not ready is the one state a registration must not leave behind, and what
    # made it fail (the tracking server's database restarting, the server itself) is usually what the undo
    # meets next: it gets a longer budget than the steps it undoes (by default about 45 s of waits, not 3.5 s).
    saved, ml.retry = ml.retry, replace(ml.retry, attempts=2 * ml.retry.attempts + 2)
    try:
        ml.delete_model_version(name, version)
        if model_id:
            _unlink_logged_model(ml, model_id, name, version)
        for alias, target in aliases_before.items():
            if str(target) != version:
                ml.set_registered_model_alias(name, alias, str(target))
        log.warning("registration of %s version %s failed; rolled back", name, version)
    except Exception as exc:
        raise RegistryError(
            f"registering {name} version {version} failed ({cause}) and the rollback failed too ({exc}); "
            f"the version is tagged {TAG_STATUS}={PENDING}: loaders refuse it and the next registration deletes it"
        ) from cause
    finally:
        ml.retry = saved


def _delete_stale(ml: _Mlflow, name: str, stale_after: float) -> None:
    """Delete versions left pending by interrupted registrations (any weights)."""
    for mv in ml.search_model_versions(f"name='{name}' and tags.{TAG_STATUS}='{PENDING}'"):
        if _age_s(mv) >= stale_after and _status(mv) == PENDING:
            log.warning("deleting %s version %s: left pending by an interrupted registration", name, mv.version)
            ml.delete_model_version(name, str(mv.version))
            if model_id := _logged_model_id(mv):
                _unlink_logged_model(ml, model_id, name, str(mv.version))


def _wait_ready(ml: _Mlflow, name: str, version: str, timeout: float) -> Any | None:
    """Wait for another registration's version to become ready; None if it disappeared (rolled back)."""
    from mlflow.exceptions import MlflowException

    deadline = time.monotonic() + timeout
    while True:
        try:
            mv = ml.get_model_version(name, version)
        except MlflowException as exc:
            if _error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        if _status(mv) == READY:
            return mv
        if time.monotonic() > deadline:
            raise RegistryError(
                f"{name} version {version} with the same weights is still {_status(mv) or 'incomplete'} after "
                f"{timeout:.0f}s (another registration is running or was interrupted); try again later"
            )
        time.sleep(0.5)


# =========================================================================== loading and inspecting

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))/?$")


def _resolve_version(ml: _Mlflow, uri: str) -> Any:
    from mlflow.exceptions import MlflowException

    m = _MODELS_URI.match(uri)
    if not m:
        raise RegistryError(f"{uri!r} is neither a directory nor models:/<name>/<version> or models:/<name>@<alias>")
    name = m["name"]
    try:
        if m["version"]:
            return ml.get_model_version(name, m["version"])
        return ml.get_model_version_by_alias(name, m["alias"])
    except MlflowException as exc:
        if _error_code(exc) in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            what = f"version {m['version']}" if m["version"] else f"alias @{m['alias']}"
            raise RegistryError(f"{uri}: registered model {name!r} has no {what} at {_safe_uri(ml.uri)}") from None
        raise


def load_registered(
    uri: str,
    *,
    tracking: str | None = None,
    retry: RetryPolicy | None = None,
    frozen: bool = True,
    allow_unverified: bool = False,
) -> LoadedProcessor:
    """Load and verify a processor: ``models:/<name>/<version>``, ``models:/<name>@<alias>`` or a directory.

    Verified: the weights' sha256 against the version's ``weights_sha256`` tag and ``processor.json``;
    the config (known kind and keys, redundant fields consistent); every tensor's key, shape and dtype
    against the state_dict of the processor the config describes. Only safetensors are read.
    A directory whose ``processor.json`` carries no sha256 (a raw pretrain output) is refused unless
    ``allow_unverified``.
    """
    path = Path(uri)
    if not str(uri).startswith("models:/") and path.is_dir():
        meta, blob = _read_dir(path)
        if meta.weights_sha256 is None and not allow_unverified:
            raise RegistryError(
                f"{path / CONFIG_FILE} records no weights_sha256, so the weights cannot be verified; "
                "register them (nar register) or save them with nar.registry.save_processor"
            )
        processor, sha = _build_verified(meta, blob, str(path), None)
        return LoadedProcessor(
            freeze(processor) if frozen else processor, meta, sha, str(path), model_files=_model_files(path)
        )
    if not str(uri).startswith("models:/"):
        raise RegistryError(f"{uri!r} is not a directory, nor a models:/<name>/<version> or models:/<name>@<alias> URI")
    tracking = tracking or tracking_uri()
    with _mlflow_env(tracking):
        ml = _Mlflow(tracking, retry or RetryPolicy.from_env())
        mv = _resolve_version(ml, uri)
        tags = dict(mv.tags or {})
        where = f"{uri} (version {mv.version})"
        if TAG_SHA not in tags:
            raise RegistryError(f"{where} has no {TAG_SHA} tag: it was not registered by nar; refusing to load it")
        if tags.get(TAG_STATUS) != READY:
            raise RegistryError(
                f"{where} is {tags.get(TAG_STATUS) or 'incomplete'}: its registration did not finish "
                "(run `nar register` again)"
            )
        with tempfile.TemporaryDirectory() as tmp:
            local = _download(ml, mv, tmp)
            meta, blob = _read_dir(local)
            model_files = _model_files(local)
    processor, sha = _build_verified(meta, blob, where, tags[TAG_SHA], tags.get(TAG_CONFIG_SHA) or None)
    return LoadedProcessor(
        freeze(processor) if frozen else processor,
        meta,
        sha,
        uri,
        version=str(mv.version),
        tags=tags,
        model_files=model_files,
    )


def _download(ml: _Mlflow, mv: Any, dst: str) -> Path:
    import mlflow

    source = mv.source or ""
    if source.startswith("models:/m-"):
        model = ml.get_logged_model(source[len("models:/") :].strip("/"))
        artifact_uri = model.artifact_location.rstrip("/") + "/" + MODEL_DATA_DIR
    else:
        artifact_uri = source.rstrip("/") + "/" + MODEL_DATA_DIR
    return Path(
        ml.call(
            "download_artifacts",
            mlflow.artifacts.download_artifacts,
            artifact_uri=artifact_uri,
            dst_path=dst,
            tracking_uri=ml.uri,
        )
    )


def load_processor(uri: str, *, tracking: str | None = None, frozen: bool = True, **kwargs: Any) -> Processor:
    """The verified, frozen processor at ``uri`` (see :func:`load_registered`), ready for new encoders."""
    return load_registered(uri, tracking=tracking, frozen=frozen, **kwargs).processor


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: str
    aliases: tuple[str, ...]
    status: str
    tags: dict[str, str]
    description: str
    source: str
    created: float  # unix seconds

    @property
    def sha256(self) -> str:
        return self.tags.get(TAG_SHA, "")


def _info(mv: Any, aliases: Mapping[str, Any]) -> VersionInfo:
    tags = dict(mv.tags or {})
    return VersionInfo(
        name=mv.name,
        version=str(mv.version),
        aliases=tuple(sorted(a for a, v in aliases.items() if str(v) == str(mv.version))),
        status=tags.get(TAG_STATUS, "foreign"),
        tags=tags,
        description=mv.description or "",
        source=mv.source or "",
        created=(mv.creation_timestamp or 0) / 1000.0,
    )


def card_in_percent(description: str, tags: Mapping[str, str]) -> str:
    """A version's model card with its per-algorithm scores in %: cards of versions registered before
    ``score_unit`` show them as fractions (``| bellman_ford | 0.98 | 92.01 | 97.39 |``); their rows get the
    tag's value in % instead, so old and new cards read the same. New cards are returned unchanged."""
    if tags.get(TAG_UNIT) == PERCENT:
        return description
    scores = version_ood_scores(tags)

    def row(match: re.Match) -> str:
        algo, value = match["algo"], float(match["value"])
        if algo not in scores or value > 1.0:
            return match[0]
        return f"| {algo} | {scores[algo]:.2f} |"

    return re.sub(r"^\| (?P<algo>[\w-]+) \| (?P<value>\d+(?:\.\d+)?) \|", row, description, flags=re.M)


@contextlib.contextmanager
def _client(tracking: str | None, retry: RetryPolicy | None) -> Iterator[_Mlflow]:
    uri = tracking or tracking_uri()
    with _mlflow_env(uri):
        ml = _Mlflow(uri, retry or RetryPolicy.from_env())
        try:
            yield ml
        except RegistryError:
            raise
        except Exception as exc:
            raise RegistryError(f"MLflow at {_safe_uri(uri)}: {exc}") from exc


def list_versions(
    name: str = REGISTERED_MODEL, *, tracking: str | None = None, retry: RetryPolicy | None = None
) -> list[VersionInfo]:
    """Every version of ``name``, newest first."""
    from mlflow.exceptions import MlflowException

    check_model_name(name)
    with _client(tracking, retry) as ml:
        try:
            aliases = ml.get_registered_model(name).aliases or {}
        except MlflowException as exc:
            if _error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
                return []
            raise
        versions = ml.search_model_versions(f"name='{name}'")
        return sorted((_info(v, aliases) for v in versions), key=lambda i: -int(i.version))


def show_version(
    ref: str = "@champion",
    name: str = REGISTERED_MODEL,
    *,
    tracking: str | None = None,
    retry: RetryPolicy | None = None,
) -> VersionInfo:
    """One version: ``ref`` is a version number, ``@alias`` or a ``models:/`` URI."""
    if not ref.startswith("models:/"):
        check_model_name(name)
    uri = ref if ref.startswith("models:/") else f"models:/{name}{ref if ref.startswith('@') else '/' + ref}"
    with _client(tracking, retry) as ml:
        mv = _resolve_version(ml, uri)
        return _info(mv, ml.get_registered_model(mv.name).aliases or {})


def promote(
    version: str,
    alias: str = "champion",
    name: str = REGISTERED_MODEL,
    *,
    tracking: str | None = None,
    retry: RetryPolicy | None = None,
) -> str | None:
    """Point ``alias`` at ``version`` by hand (no gate). Returns the version it pointed at before."""
    check_model_name(name)
    with _client(tracking, retry) as ml:
        mv = _resolve_version(ml, f"models:/{name}/{version}")
        if (mv.tags or {}).get(TAG_STATUS) != READY:
            raise RegistryError(f"{name} version {version} is not a complete nar registration; refusing to promote it")
        before = (ml.get_registered_model(name).aliases or {}).get(alias)
        ml.set_registered_model_alias(name, alias, str(version))
        return None if before is None else str(before)


# =========================================================================== MLflow pyfunc flavour


#: what one processor step takes: (name, dtype, shape with -1 for batch B and nodes N, H for hidden)
PROCESSOR_INPUTS = (
    ("node_fts", "float32", ("B", "N", "H")),
    ("edge_fts", "float32", ("B", "N", "N", "H")),
    ("graph_fts", "float32", ("B", "H")),
    ("adj", "bool", ("B", "N", "N")),  # adj[b, i, j]: a message from node j to node i
    ("hidden", "float32", ("B", "N", "H")),  # the previous step's latents (zeros at the first step)
    ("node_mask", "bool", ("B", "N")),  # real nodes (graphs of different sizes padded to N)
)


def processor_example(hidden: int) -> dict[str, Any]:
    """The smallest valid input of one processor step: one graph of two connected nodes, zero features."""
    import numpy as np

    shapes = {"B": 1, "N": 2, "H": hidden}
    example = {n: np.zeros(tuple(shapes[d] for d in shape), dtype=t) for n, t, shape in PROCESSOR_INPUTS}
    example["adj"][:] = True
    example["node_mask"][:] = True
    return example


def processor_signature(processor: Processor) -> Any:
    """The MLflow signature of the pyfunc model: six named tensors in, the new latents (and, for processors
    that keep edge latents, the edge latents) out, shapes with -1 for the batch and node axes.

    Every input is required: MLflow's tensor schemas cannot mark one optional, and enforcing a schema drops
    the inputs it does not list, so an optional ``hidden`` left out would be silently replaced by zeros.
    The outputs come from one step on a two-node graph: exactly what this processor returns."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    hidden = processor.config.hidden
    dims = {"B": -1, "N": -1, "H": hidden}
    inputs = Schema([TensorSpec(np.dtype(t), tuple(dims[d] for d in shape), n) for n, t, shape in PROCESSOR_INPUTS])
    out = _PyfuncProcessor(processor).predict(processor_example(hidden))
    # every axis but the features is batch or nodes: -1
    outputs = Schema([TensorSpec(v.dtype, (-1,) * (v.ndim - 1) + (v.shape[-1],), k) for k, v in out.items()])
    return ModelSignature(inputs=inputs, outputs=outputs)


class _PyfuncProcessor:
    """``mlflow.pyfunc.load_model`` of a registered processor: one processor step on numpy arrays.

    predict({"node_fts": (B, N, H), "edge_fts": (B, N, N, H), "graph_fts": (B, H), "adj": (B, N, N),
    "hidden": (B, N, H), "node_mask": (B, N)}) -> {"hidden": (B, N, H)[, "edges": (B, N, N, H)]}
    (the signature requires all six; called directly, ``hidden`` defaults to zeros and ``node_mask`` to ones)
    """

    def __init__(self, processor: Processor) -> None:
        self.processor = processor

    def predict(self, model_input: Mapping[str, Any], params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        x = {k: torch.as_tensor(v) for k, v in model_input.items()}
        node = x["node_fts"].float()
        B, N, H = node.shape
        hidden = x.get("hidden", torch.zeros(B, N, H)).float()
        mask = x.get("node_mask", torch.ones(B, N, dtype=torch.bool)).bool()
        with torch.no_grad():
            out = self.processor(node, x["edge_fts"].float(), x["graph_fts"].float(), x["adj"].bool(), hidden, mask)
        result = {"hidden": out.hidden.numpy()}
        if out.edges is not None:
            result["edges"] = out.edges.numpy()
        return result


def _load_pyfunc(data_path: str) -> _PyfuncProcessor:
    """MLflow's entry point for ``loader_module="nar.registry"`` (verifies like ``load_processor``)."""
    return _PyfuncProcessor(load_processor(data_path))
