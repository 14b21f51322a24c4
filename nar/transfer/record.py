"""The processor a transfer sweep runs around: loaded once from the registry (or a local directory) and
verified by its sha256, then handed to the workers as canonical safetensors bytes and rebuilt there."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nar.errors import NarError


@dataclass(frozen=True)
class ProcessorRecord:
    """The processor a sweep used: where from, its identity and its weights (canonical bytes).

    network: the whole pretrained network stored beside it (``model.json`` and ``model.safetensors``: its own
    encoders and decoders too; empty when the source holds the processor only), what ``ceiling`` runs."""

    uri: str
    version: str | None
    sha256: str
    config: dict[str, Any]
    blob: bytes
    network: dict[str, bytes] = field(default_factory=dict, repr=False)

    def info(self) -> dict[str, Any]:
        return {"uri": self.uri, "version": self.version, "sha256": self.sha256, "config": self.config}


def load_processor_record(uri: str, allow_unverified: bool = False) -> ProcessorRecord:
    """Load (and verify) the processor at ``uri`` through the registry."""
    from nar.registry import load_registered, weights_bytes

    loaded = load_registered(uri, allow_unverified=allow_unverified)
    return ProcessorRecord(
        uri=uri,
        version=loaded.version,
        sha256=loaded.sha256,
        config=loaded.processor.config.to_dict(),
        blob=weights_bytes(loaded.processor),
        network=dict(loaded.model_files),
    )


def processor_from_record(record: ProcessorRecord):
    """Rebuild the frozen processor from a record, checking its sha256 (worker side)."""
    from safetensors.torch import load as safetensors_load

    from nar.models.processors import ProcessorConfig, build_processor
    from nar.registry import freeze, weights_sha256

    processor = build_processor(ProcessorConfig.from_dict(record.config))
    processor.load_state_dict(safetensors_load(record.blob), strict=True)
    freeze(processor)
    sha = weights_sha256(processor)
    if sha != record.sha256:
        raise NarError(f"processor {record.uri}: rebuilt weights have sha256 {sha[:16]}..., expected {record.sha256}")
    return processor


def network_from_record(record: ProcessorRecord):
    """Rebuild the whole pretrained network stored with the processor (its encoders and decoders too), frozen,
    its processor checked against the record's sha256 (worker side; ``nar_costs`` trains around it)."""
    from nar.registry import freeze

    if not record.network:
        raise NarError(ceiling_unavailable(record.uri, ["nar_costs"]))
    from nar.execute import executor_from_files

    return freeze(executor_from_files(dict(record.network), record.uri, processor_sha256=record.sha256).model)


def ceiling_unavailable(uri: str, variants: Sequence[str] = ("ceiling",)) -> str:
    """The error for ``variants`` (those that need the whole network, ``Variant.needs_network``) when ``uri``
    holds the processor only."""
    names = ", ".join(repr(v) for v in variants)
    runs = "runs" if len(variants) == 1 else "run"
    return (
        f"transfer.variants lists {names}, which {runs} the whole pretrained network (its own encoder and decoder "
        f"too), but {uri} holds the processor only; allowed: a registered version stored with its network (nar "
        f"register stores it), a pretraining run directory (models/pretrain/<run>), or drop {names}"
    )
