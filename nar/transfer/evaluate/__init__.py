"""The ``evaluate`` stage: aggregate the transfer sweeps, plot them, draw predictions, write the report.

Reads, for every task of ``evaluate.tasks`` (and only those), ``metrics/transfer/<task>.json`` (written by
``nar transfer``) and ``models/transfer/<task>/predictions.json``, and writes

* ``metrics/evaluate.json``: per task, split, variant and training size, the mean and the
  standard error (sample std / sqrt(number of seeds)) of every metric over the seeds, and the
  verdict (nar_frozen against e2e and bottleneck with few examples: per comparison the difference,
  its standard error and the outcome, "better", "worse" or "not distinguishable" (within two
  standard errors); which variant loses least out of distribution);
* ``metrics/evaluate/<task>.json``: the verdict's headline counts (DVC metrics, a row per task);
* ``plots/transfer/scores/<task>.csv`` (DVC plot: the headline metric against the number of
  training examples, one column per variant and split), ``plots/transfer/curves/<task>.csv`` (DVC plot:
  validation pointer accuracy against step, mean over seeds, per variant and size) and
  ``plots/transfer/tables/<task>.csv`` (every aggregate, long format): a folder per kind, so that
  dvc.yaml names each folder once whatever tasks are listed;
* ``plots/transfer/png/``: ``<task>_scores.png``, ``<task>_curves.png`` and ``<task>_<split>_example.png``
  (a digit grid with the true and predicted paths over the pixels / a road subgraph on its
  coordinates with the true and predicted shortest-path trees; mistakes in red);
* ``reports/blueprint.md``: the tables, the plots and the verdict (plus ``evaluate.notes``
  when that file exists: the investigation notes);

and logs them to MLflow (experiment ``nar-transfer``, run ``evaluate``). No torch: this stage
only reads JSON and the datasets.

Modules: ``stats`` (mean and standard error over seeds, the 2-s.e. comparison), ``verdict``,
``tables`` (the CSVs), ``figures`` (the PNGs), ``report`` (reports/blueprint.md), ``stage``
(:func:`run_evaluate`, the headline files, the MLflow run).
"""

from __future__ import annotations

from nar.transfer.evaluate.stage import run_evaluate

__all__ = ["run_evaluate"]
