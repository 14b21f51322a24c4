"""Freezing, registering and loading processors: the only package that talks to the MLflow registry.

One module per concept:

- :mod:`~nar.registry.format`: the two files a processor is stored as (safetensors + processor.json, never a
  pickle), their hashes, freezing;
- :mod:`~nar.registry.client`: the MLflow client with its bounded retries, and the settings registry work needs;
- :mod:`~nar.registry.locks`: the lock file that serialises registrations;
- :mod:`~nar.registry.gate`: when a new version becomes ``champion``; the scores it compares;
- :mod:`~nar.registry.card`: the Markdown model card;
- :mod:`~nar.registry.versions`: a version's tags and life cycle (pending, ready, rollback);
- :mod:`~nar.registry.registration`: ``register`` itself;
- :mod:`~nar.registry.pyfunc`: the processor as an MLflow pyfunc model (``loader_module="nar.registry"``);
- :mod:`~nar.registry.load`: ``load_registered`` / ``load_processor``, ``check_fits``, ``attach_processor``;
- :mod:`~nar.registry.catalog`: list, show, promote;
- :mod:`~nar.registry.cli`: ``nar register`` and ``nar registry ...``.

The names below are importable from ``nar.registry`` itself. They are loaded on first use (PEP 562): the
CLI's parsers (``nar.registry.cli``) are built on every ``nar`` command, and must not import torch and
MLflow for a ``nar --help``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "format": (
        "CONFIG_FILE",
        "FORMAT",
        "MAX_CONFIG_BYTES",
        "MAX_WEIGHTS_BYTES",
        "MODEL_DATA_DIR",
        "MODEL_FILES",
        "WEIGHTS_FILE",
        "LoadedProcessor",
        "ProcessorMeta",
        "RegistryError",
        "RegistryUnavailable",
        "_parse_meta",
        "config_sha256",
        "freeze",
        "is_frozen",
        "read_pretrained",
        "save_processor",
        "weights_bytes",
        "weights_sha256",
    ),
    "locks": ("lock_path",),
    "gate": (
        "PERCENT",
        "TAG_SCALE",
        "TAG_UNIT",
        "Gate",
        "as_percent",
        "metric_value",
        "ood_scores",
        "scale_score",
        "version_ood_scores",
    ),
    "card": ("CLRS_ANCHORS", "card_in_percent", "model_card"),
    "versions": (
        "MODEL_VERSIONS_TAG",
        "PENDING",
        "READY",
        "REGISTERED_MODEL",
        "TAG_ATTEMPT",
        "TAG_CONFIG_SHA",
        "TAG_GATE",
        "TAG_SHA",
        "TAG_STATUS",
        "check_model_name",
    ),
    "registration": ("CARD_FILE", "DEFAULT_OUT", "EXPERIMENT", "RegistrationResult", "register"),
    # _load_pyfunc: what MLflow calls for loader_module="nar.registry"
    "pyfunc": ("LINEAGE_FILE", "PROCESSOR_INPUTS", "_load_pyfunc", "processor_example", "processor_signature"),
    "load": ("attach_processor", "check_fits", "load_processor", "load_registered"),
    "catalog": ("VersionInfo", "list_versions", "promote", "show_version"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
_TRACKING = ("RetryPolicy", "RetryingClient")  # the retry machinery, shared with nar.tracking

__all__ = sorted([*_WHERE, *_TRACKING])


def __getattr__(name: str) -> Any:
    if name in _TRACKING:
        return getattr(importlib.import_module("nar.tracking"), name)
    if name not in _WHERE:
        raise AttributeError(f"module 'nar.registry' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"nar.registry.{_WHERE[name]}"), name)
    globals()[name] = value  # the next look-up is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
