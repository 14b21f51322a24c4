"""The ``evaluate`` stage itself: read every task's sweep, reduce it, write the outputs, log them to MLflow.

The outputs are listed in :mod:`nar.transfer.evaluate`; which tasks comes from ``evaluate.tasks`` alone.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nar.errors import NarError
from nar.transfer.config import EvaluateParams
from nar.transfer.evaluate.figures import draw_examples, plot_curves, plot_scores
from nar.transfer.evaluate.report import write_report
from nar.transfer.evaluate.stats import RATIOS, aggregate, mean_curves
from nar.transfer.evaluate.tables import clear_tables, write_tables
from nar.transfer.evaluate.verdict import verdict
from nar.transfer.mlflow_runs import log_evaluation
from nar.transfer.variants import FROZEN_TRAINED

HEADLINE_KEYS = ("low_data_wins", "low_data_clear_wins", "low_data_comparisons")


def write_headlines(summary: Mapping[str, Any], folder: Path) -> list[Path]:
    """``metrics/evaluate/<task>.json`` (DVC ``metrics:``): per task the verdict's low-data counts (nar_frozen's)
    and the mean OOD score in % of each variant around the frozen processor that ran (``nar_frozen_ood``,
    ``nar_costs_ood``), the same keys in every file of one sweep, so that ``dvc metrics show`` is one row per
    task and a few columns. The aggregates stay in ``metrics/evaluate.json`` (a plain output)."""
    shutil.rmtree(folder, ignore_errors=True)  # no stale row for a task no longer evaluated
    folder.mkdir(parents=True)
    written = []
    for task, d in summary.items():
        verdict = d.get("verdict") or {}
        head = {k: verdict[k] for k in HEADLINE_KEYS if isinstance(verdict.get(k), int | float)}
        for subject in FROZEN_TRAINED:
            ood = (verdict.get("ood_mean") or {}).get(subject)
            if isinstance(ood, int | float):  # in % like every score shown, unless the headline is a ratio
                head[f"{subject}_ood"] = round(ood, 4) if verdict.get("headline") in RATIOS else round(100.0 * ood, 2)
        path = folder / f"{task}.json"
        path.write_text(json.dumps(head, indent=1) + "\n")
        written.append(path)
    return written


def load_task_metrics(metrics_root: Path, task: str) -> dict[str, Any]:
    path = Path(metrics_root) / f"{task}.json"
    if not path.is_file():
        raise NarError(f"{path}: missing; run `nar transfer --task {task}` first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise NarError(f"{path}: not valid JSON ({exc})") from None


def run_evaluate(
    params: EvaluateParams,
    *,
    metrics_root: Path = Path("metrics/transfer"),
    models_root: Path = Path("models/transfer"),
    data_root: Path = Path("data/natural"),
    plots_root: Path = Path("plots/transfer"),
    out_metrics: Path = Path("metrics/evaluate.json"),
    track: bool = True,
) -> dict[str, Any]:
    per_task: dict[str, dict[str, Any]] = {}
    pngs: dict[str, list[Path]] = {}
    written: list[Path] = []
    png_root = Path(plots_root) / "png"
    clear_tables(Path(plots_root))
    for task in params.tasks:
        info = load_task_metrics(metrics_root, task)
        agg = aggregate(info["results"])
        curves = mean_curves(info.get("curves", {}))
        per_task[task] = {"aggregate": agg, "verdict": verdict(agg, params.headline, params.low_data), "info": info}
        written += write_tables(task, agg, curves, params.headline, Path(plots_root))
        metrics = [params.headline] + [m for m in ("path_match", "regret_all") if m != params.headline]
        pngs[task] = [plot_scores(task, agg, png_root / f"{task}_scores.png", metrics)]
        if curves:
            pngs[task].append(plot_curves(task, curves, png_root / f"{task}_curves.png"))
        pred_path = Path(models_root) / task / "predictions.json"
        if pred_path.is_file():
            preds = json.loads(pred_path.read_text())
            for split in ("test", "ood"):
                if any(split in p for p in preds.get("variants", {}).values()):
                    pngs[task].append(
                        draw_examples(task, preds, data_root, png_root / f"{task}_{split}_example.png", split)
                    )
        print(f"evaluate {task}: {len(pngs[task])} figures", file=sys.stderr)
    notes_path = Path(params.notes)
    notes = notes_path.read_text() if notes_path.is_file() else None
    report = write_report(Path(params.report), per_task, params, pngs, notes)
    summary = {task: {"verdict": d["verdict"], "aggregate": d["aggregate"]} for task, d in per_task.items()}
    out_metrics = Path(out_metrics)
    out_metrics.parent.mkdir(parents=True, exist_ok=True)
    out_metrics.write_text(json.dumps(summary, indent=1) + "\n")
    write_headlines(summary, out_metrics.with_suffix(""))
    if track:
        log_evaluation(params, per_task, [report, out_metrics, *written, *[p for ps in pngs.values() for p in ps]])
    print(f"evaluate: report -> {report}", file=sys.stderr)
    return summary
