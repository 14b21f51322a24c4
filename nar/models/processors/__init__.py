"""Processors: one message-passing step, one file each, one shared signature (see ``base``).

``PROCESSORS`` names them; ``build_processor(config)`` makes one from its config. The kind
"gmpnn" is the MPNN with its gated update (``ProcessorConfig.gated``, on by default for that kind).
"""

from __future__ import annotations

from nar.models.processors.base import Processor, ProcessorConfig, ProcessorOutput
from nar.models.processors.mpnn import MPNN
from nar.models.processors.triplet_gmpnn import TripletGMPNN

PROCESSORS: dict[str, type[Processor]] = {
    "mpnn": MPNN,
    "gmpnn": MPNN,
    "triplet_gmpnn": TripletGMPNN,
}


def build_processor(config: ProcessorConfig) -> Processor:
    try:
        cls = PROCESSORS[config.kind]
    except KeyError:
        raise ValueError(f"processor kind {config.kind!r} is unknown; allowed: {sorted(PROCESSORS)}") from None
    return cls(config)


__all__ = ["MPNN", "PROCESSORS", "Processor", "ProcessorConfig", "ProcessorOutput", "TripletGMPNN"]
