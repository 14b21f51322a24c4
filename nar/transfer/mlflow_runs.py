"""MLflow runs of the transfer and evaluate stages (experiment ``nar-transfer``), one function per stage:
:func:`log_sweep` (a parent run per task, a child per variant x size x seed) and :func:`log_evaluation`.
Both write through :class:`nar.tracked_run.TrackedRun`, like pretraining and registration."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from nar.transfer.config import EvaluateParams

EXPERIMENT = "nar-transfer"


def _result_rows(result: Any) -> Iterator[tuple[str, float, int]]:
    """One transfer run's metrics as ``(key, value, step)``: ``<split>_<metric>`` at step 0, its learning curve
    (validation pointer accuracy and training loss at each logged step) and its training time."""
    for split, values in result.metrics.items():
        for key, value in values.items():
            if isinstance(value, int | float):
                yield f"{split}_{key}", value, 0
    for row in result.curve:
        yield "curve_val_pointer_acc", row["val_pointer_acc"], int(row["step"])
        yield "curve_train_loss", row["train_loss"], int(row["step"])
    yield "train_seconds", result.train_seconds, 0


def _log_child(child: Any, params: Mapping[str, Any], rows: list[tuple[str, float, int]]) -> None:
    """A child run's params and metric rows in one ``log_batch`` when they fit MLflow's per-call limits (a
    sweep logs a few hundred children: each store call costs a SQLite transaction), else as TrackedRun does."""
    from mlflow.entities import Metric, Param

    from nar.tracked_run import METRICS_PER_BATCH, PARAMS_PER_BATCH

    if len(params) > PARAMS_PER_BATCH or len(rows) > METRICS_PER_BATCH:
        child.log_params(params)
        child.log_metric_rows(rows)
        return
    now = int(time.time() * 1000)
    child.client.log_batch(
        child.run_id,
        metrics=[Metric(key, float(value), now, int(step)) for key, value, step in rows],
        params=[Param(k, str(v)) for k, v in params.items()],
    )


def log_sweep(
    task: str, run_params: Mapping[str, Any], metrics: dict, results: Sequence[Any], artifacts: list[Path]
) -> str:
    """One parent run per task (``run_params``: the sweep's resolved parameters, as index.json records them,
    logged flat), one child per (variant, size, seed). Returns the parent's id."""
    from nar.tracked_run import TrackedRun, open_experiment
    from nar.tracking import git_commit

    client, experiment_id = open_experiment(EXPERIMENT)
    proc = metrics.get("processor") or {}
    tags = {
        "nar.stage": "transfer",
        "nar.task": task,
        "git_commit": git_commit(),
        "processor_uri": str(proc.get("uri")),
        "processor_version": str(proc.get("version")),
        "processor_sha256": str(proc.get("sha256")),
    }
    parent = TrackedRun.start(client, experiment_id, f"transfer-{task}", tags)
    with parent.ending():
        parent.log_params(run_params, max_chars=500)
        summary = {}
        for r in results:
            s = r.spec
            child_tags = {**tags, "variant": s.variant}
            if r.processor_sha256_before:  # with the run's creation: one store call, not one per tag
                child_tags["processor_sha256_before"] = r.processor_sha256_before
                child_tags["processor_sha256_after"] = str(r.processor_sha256_after)
            child = parent.child(f"{task}/{s.variant}/n{s.size}/s{s.seed}", child_tags)
            _log_child(child, {"variant": s.variant, "size": s.size, "seed": s.seed}, list(_result_rows(r)))
            child.end()
            if s.seed == run_params["seeds"][0] and "test" in r.metrics:
                summary[f"{s.variant}_n{s.size}_test_pointer_acc"] = r.metrics["test"]["pointer_acc"]
        parent.log_metrics({**summary, "wall_seconds": metrics["timing"]["wall_seconds"]})
        parent.log_artifacts([p for p in artifacts if Path(p).is_file()])
    return parent.run_id


def log_evaluation(params: EvaluateParams, per_task: Mapping[str, Any], artifacts: Sequence[Path]) -> None:
    """One MLflow run ``evaluate`` (experiment ``nar-transfer``): the headline mean of every cell, the
    low-data counts of each verdict, and the outputs as artifacts (each CSV and PNG under its folder's name:
    every task's CSVs are called ``<task>.csv``)."""
    from nar.tracked_run import TrackedRun, open_experiment
    from nar.tracking import git_commit

    client, experiment_id = open_experiment(EXPERIMENT)
    run = TrackedRun.start(client, experiment_id, "evaluate", {"nar.stage": "evaluate", "git_commit": git_commit()})
    with run.ending():
        values: dict[str, float] = {}
        for task, d in per_task.items():
            for split, by_variant in d["aggregate"].items():
                for variant, by_size in by_variant.items():
                    for size, cell in by_size.items():
                        st = cell.get(params.headline)
                        if st and st["mean"] is not None:
                            values[f"{task}_{split}_{variant}_{size}_{params.headline}"] = st["mean"]
            verdict = d["verdict"]
            for key in ("low_data_wins", "low_data_clear_wins", "low_data_clear_losses"):
                values[f"{task}_{key}"] = verdict[key]
        run.log_metrics(values)
        run.log_params({"headline": params.headline, "low_data": params.low_data})
        for p in map(Path, artifacts):
            if p.is_file():
                run.log_artifacts([p], artifact_path=p.parent.name if p.suffix in (".png", ".csv") else None)
