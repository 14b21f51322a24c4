"""The transfer variants, registered once: the blueprint's models and the baselines they are measured against.

Each variant is one entry of ``TRANSFER_VARIANTS``; the params validation, the sweep, its progress lines and
the figures read everything they need from it. Its code is named as ``"module:function"`` and imported when
a run needs it, so this table stays light (no torch). The entries' order is the order of the variants in
every table, CSV and figure.

The ``"module:function"`` references are resolved at run time (entry-point style): ``nar.config`` imports this
table for the variants' names without pulling in torch or the transfer stage's code (``tests/test_dvc_deps.py``
reads a plain ``"nar.<module>"`` string as an import, not these). Put a new baseline's module under
``nar/transfer/`` so the ``transfer`` and ``evaluate`` stages' deps (the whole folder) cover it.

A new baseline is one function (in a module of its own if you like) plus one entry here:

- an untrained one (``predict``): ``predict(split: FlatSplit, algorithm: str, limit: int | None)`` returns
  the predicted predecessors of the split's first ``limit`` examples, a list of (n,) int arrays; it is
  scored once per split and reported in every size x seed cell (``heuristic``, ``oracle``); one that uses the
  processor (``processor`` set: ``ceiling``) is also given ``processor=`` the sweep's
  :class:`~nar.transfer.record.ProcessorRecord`, and one that runs the whole pretrained network from it
  (``needs_network``: ``ceiling``) is refused by the sweep, before any training, when the record has none;
- a trained one (``build``): ``build(variant: Variant, params: TaskTransferParams, data: TaskData,
  pretrained: Processor | None, mode: str)`` returns its ``nn.Module``, a pointer model
  (:class:`~nar.transfer.models.TransferModel`: trained on the pointer cross-entropy) or a cost model
  (:class:`~nar.transfer.models.CostModel` or a subclass: trained through the exact solver by blackbox
  differentiation); torch is seeded from the run's seed and the variant's name before it is called. A trained
  one with ``needs_network`` (``nar_costs``) is given the whole pretrained network (frozen
  :class:`~nar.models.model.EncodeProcessDecode`, its processor checked against the registered sha256) as
  ``pretrained``; its model's ``processor`` must be that network's, which the sweep checks stays unchanged.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Variant:
    """One transfer variant.

    what: one line saying what it is (progress lines).
    color: its colour in every figure (matplotlib colour name).
    build: trained variants: ``"module:function"`` making its model (module docstring).
    predict: untrained variants: ``"module:function"`` predicting a split's pointers (module docstring).
    processor: what it does with the registered processor: ``frozen`` (kept as is, its sha256 checked before
        and after), ``finetuned`` (trained too), ``fresh`` (its architecture with new weights) or None (unused).
    turn_costs: runs only on tasks whose routes pay turn delays (``NaturalTask.turn_costs``).
    needs_network: runs the whole pretrained network (its own encoders and decoders too:
        ``ProcessorRecord.network``), not the processor alone, so the sweep refuses a processor stored without
        it before any training; only with ``processor`` set (the sweep loads the record for those).
    """

    what: str
    color: str
    build: str | None = None
    predict: str | None = None
    processor: Literal["frozen", "finetuned", "fresh"] | None = None
    turn_costs: bool = False
    needs_network: bool = False

    def __post_init__(self) -> None:
        if self.needs_network and self.processor is None:
            raise ValueError("a variant that needs the whole network uses the processor: set processor")

    @property
    def trained(self) -> bool:
        return self.build is not None

    def builder(self) -> Callable[..., Any]:
        return _function(self.build)

    def predictor(self) -> Callable[..., Any]:
        return _function(self.predict)


def _function(ref: str | None) -> Callable[..., Any]:
    if ref is None:
        raise ValueError("this variant has no such function (trained variants build, untrained ones predict)")
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


TRANSFER_VARIANTS: Mapping[str, Variant] = types.MappingProxyType(
    {
        "nar_frozen": Variant(
            "new encoder and decoder around the pretrained processor, frozen",
            "tab:blue",
            build="nar.transfer.train:processor_model",
            processor="frozen",
        ),
        "nar_costs": Variant(
            "one learned cost per cell/segment into the frozen pretrained network (its encoders, processor and "
            "hint loop), a new decoder",
            "tab:red",
            build="nar.transfer.train:network_model",
            processor="frozen",
            needs_network=True,
        ),
        "nar_finetune": Variant(
            "the same, the processor trained too",
            "tab:cyan",
            build="nar.transfer.train:processor_model",
            processor="finetuned",
        ),
        "e2e": Variant(
            "the same architecture, processor randomly initialised and trained",
            "tab:orange",
            build="nar.transfer.train:processor_model",
            processor="fresh",
        ),
        "bottleneck": Variant(
            "a cost per cell/segment and the exact solver, trained by blackbox differentiation or the tree hinge",
            "tab:green",
            build="nar.transfer.train:cost_model",
        ),
        "bottleneck_turns": Variant(
            "a cost per segment and per turn and the exact edge-based solver",
            "tab:olive",
            build="nar.transfer.train:turn_cost_model",
            turn_costs=True,
        ),
        "heuristic": Variant(
            "the heuristic (exact algorithm on the visible proxy cost, no training)",
            "tab:gray",
            predict="nar.transfer.train:heuristic_predictions",
        ),
        "oracle": Variant(
            "the oracle (exact algorithm on the hidden costs, no training)",
            "black",
            predict="nar.transfer.train:oracle_predictions",
        ),
        "ceiling": Variant(
            "the processor's ceiling (the whole pretrained network on the hidden costs, no training)",
            "tab:purple",
            predict="nar.transfer.train:ceiling_predictions",
            processor="frozen",
            needs_network=True,
        ),
    }
)
VARIANTS = tuple(TRANSFER_VARIANTS)
TRAINED = tuple(name for name, v in TRANSFER_VARIANTS.items() if v.trained)
UNTRAINED = tuple(name for name, v in TRANSFER_VARIANTS.items() if not v.trained)  # scored once per split
NEEDS_PROCESSOR = tuple(name for name, v in TRANSFER_VARIANTS.items() if v.processor is not None)
NEEDS_NETWORK = tuple(name for name, v in TRANSFER_VARIANTS.items() if v.needs_network)  # a subset of NEEDS_PROCESSOR
# the blueprint's own models: trained around the pretrained processor, which stays frozen (nar_frozen, nar_costs);
# the verdict measures each against the baselines, and the sweep checks each leaves the processor unchanged
FROZEN_TRAINED = tuple(name for name, v in TRANSFER_VARIANTS.items() if v.trained and v.processor == "frozen")
