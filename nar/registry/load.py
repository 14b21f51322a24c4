"""Loading a processor (from the registry or a directory), verified before it is built, and fitting it into
the encoders/decoders of a new model.

``load_processor`` verifies the sha256 and the config before it builds the module, and returns it frozen
(no gradients; kept in eval mode even when a wrapping model calls ``.train()``). Only safetensors are read.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from torch import nn

from nar.models.processors import Processor
from nar.registry.client import RegistryClient, _error_code, mlflow_env
from nar.registry.format import (
    CONFIG_FILE,
    MODEL_DATA_DIR,
    LoadedProcessor,
    RegistryError,
    _build_verified,
    _model_files,
    _read_dir,
    freeze,
)
from nar.registry.versions import READY, TAG_CONFIG_SHA, TAG_SHA, TAG_STATUS
from nar.tracking import RetryPolicy, safe_uri, tracking_uri

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))/?$")


def _resolve_version(ml: RegistryClient, uri: str) -> Any:
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
            raise RegistryError(f"{uri}: registered model {name!r} has no {what} at {safe_uri(ml.uri)}") from None
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
    with mlflow_env(tracking):
        ml = RegistryClient(tracking, retry or RetryPolicy.from_env())
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


def _download(ml: RegistryClient, mv: Any, dst: str) -> Path:
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
