"""Transfer: the frozen processor on raw inputs, against the baselines (DESIGN.md, steps 3 and 4).

``nar transfer`` (:mod:`nar.transfer.sweep`) trains, per natural task, every variant x
training-set size x seed:

``nar_frozen``    new encoder f~ and pointer decoder g~ around the pretrained processor P,
                  frozen (its sha256 checked before and after every run);
``nar_finetune``  the same with P trained too;
``e2e``           the same architecture with P randomly initialised;
``bottleneck``    a cost per cell/segment, the exact solver, blackbox differentiation or the tree hinge;
``bottleneck_turns`` (road_turns) a cost per segment and per turn, the exact edge-based solver;
``heuristic``     the exact algorithm on the most obvious visible proxy (segment length on
                  roads, a uniform cost per digit-grid cell): no learning, the floor to beat;
``oracle``        the exact algorithm on the hidden true costs (the ceiling).

``nar evaluate`` (:mod:`nar.transfer.evaluate`) aggregates over seeds, plots, draws
predictions and writes ``reports/blueprint.md``.

Modules: ``variants`` (the variants, registered once), ``config`` (params sections), ``graphs``
(flat edge-list batches), ``models`` (f~, the sparse processor runner, g~, the cost model),
``solver`` (exact solver and its blackbox gradient), ``metrics``, ``train`` (one run), ``sweep`` (the
stage), ``evaluate``, ``cli``. Importing ``nar.transfer`` is light; torch loads with ``graphs`` / ``models``.
"""

from __future__ import annotations

from nar.transfer.config import (
    TASKS,
    EvaluateParams,
    TaskTransferParams,
    TransferParams,
    parse_evaluate_params,
    parse_transfer_params,
)
from nar.transfer.variants import TRANSFER_VARIANTS, VARIANTS, Variant

__all__ = [
    "TASKS",
    "TRANSFER_VARIANTS",
    "VARIANTS",
    "Variant",
    "EvaluateParams",
    "TaskTransferParams",
    "TransferParams",
    "parse_evaluate_params",
    "parse_transfer_params",
]
