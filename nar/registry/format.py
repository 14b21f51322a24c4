"""The frozen-processor file format: two files, never a pickle, and the hashes that identify them.

::

    processor.safetensors   its state_dict, keys sorted (canonical bytes: their sha256 is the
                            processor's identity, ``weights_sha256``)
    processor.json          {"format", "name", "architecture", "hidden", "processor": ProcessorConfig,
                            "algorithms", "spec_versions", "weights_sha256", "weights_file", "config_sha256"}

``config_sha256`` is the sha256 of the JSON's content other than its hashes, in canonical form (sorted
keys, no spaces): the weights' hash says nothing about the config that runs them (``full_adjacency``
flipped in a registered processor.json changes its outputs). Registration records both hashes as
version tags, and loading checks both. Versions registered before this have no config tag and
no ``config_sha256`` in their JSON: they still load, with their weights verified only.

A frozen processor has no gradients and stays in eval mode even when a wrapping model calls ``.train()``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save
from torch import nn

from nar.config import processor_size_problem, shown
from nar.errors import NarError
from nar.limits import read_capped
from nar.models.processors import PROCESSORS, Processor, ProcessorConfig, build_processor

WEIGHTS_FILE = "processor.safetensors"
CONFIG_FILE = "processor.json"
FORMAT = 1
#: where the processor's files live inside the logged MLflow model
MODEL_DATA_DIR = "data/processor"


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


# true/false fields of ProcessorConfig ("gated": also null)
_PROCESSOR_FLAGS = ("layer_norm", "full_adjacency", "global_max")


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
