"""MLflow runs of the transfer and evaluate stages (experiment ``nar-transfer``), one function per stage:
:func:`log_sweep` (a parent run per task, a child per variant x size x seed) and :func:`log_evaluation`."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nar.transfer.config import EvaluateParams

EXPERIMENT = "nar-transfer"


def _flat_params(prefix: str, d: Any, out: dict[str, str]) -> dict[str, str]:
    if isinstance(d, dict):
        for k, v in d.items():
            _flat_params(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = str(d)[:500]
    return out


def log_sweep(
    task: str, run_params: Mapping[str, Any], metrics: dict, results: Sequence[Any], artifacts: list[Path]
) -> str:
    """One parent run per task (``run_params``: the sweep's resolved parameters, as index.json records them,
    logged flat), one child per (variant, size, seed); explicit run ids throughout. Returns the parent's id."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    from nar.tracking import configure_mlflow, git_commit

    mlflow = configure_mlflow(experiment=EXPERIMENT)
    client = MlflowClient()
    exp = mlflow.get_experiment_by_name(EXPERIMENT).experiment_id
    proc = metrics.get("processor") or {}
    tags = {
        "nar.stage": "transfer",
        "nar.task": task,
        "git_commit": git_commit(),
        "processor_uri": str(proc.get("uri")),
        "processor_version": str(proc.get("version")),
        "processor_sha256": str(proc.get("sha256")),
    }
    parent = client.create_run(exp, run_name=f"transfer-{task}", tags=tags)
    pid = parent.info.run_id
    status = "FAILED"
    try:
        flat = _flat_params("", run_params, {})
        items = list(flat.items())
        for i in range(0, len(items), 90):
            client.log_batch(pid, params=[Param(k, v) for k, v in items[i : i + 90]])
        now = int(time.time() * 1000)
        summary = []
        for r in results:
            s = r.spec
            child = client.create_run(
                exp,
                run_name=f"{task}/{s.variant}/n{s.size}/s{s.seed}",
                tags={**tags, "mlflow.parentRunId": pid, "variant": s.variant},
            )
            cid = child.info.run_id
            ms = []
            for split, values in r.metrics.items():
                for k, v in values.items():
                    if isinstance(v, int | float) and v is not None:
                        ms.append(Metric(f"{split}_{k}", float(v), now, 0))
            for row in r.curve:
                ms.append(Metric("curve_val_pointer_acc", row["val_pointer_acc"], now, int(row["step"])))
                ms.append(Metric("curve_train_loss", row["train_loss"], now, int(row["step"])))
            ms.append(Metric("train_seconds", r.train_seconds, now, 0))
            ps = [Param("variant", s.variant), Param("size", str(s.size)), Param("seed", str(s.seed))]
            for i in range(0, len(ms), 900):
                client.log_batch(cid, metrics=ms[i : i + 900], params=ps if i == 0 else [])
            if r.processor_sha256_before:
                client.log_batch(
                    cid,
                    tags=[
                        RunTag("processor_sha256_before", r.processor_sha256_before),
                        RunTag("processor_sha256_after", str(r.processor_sha256_after)),
                    ],
                )
            client.set_terminated(cid)
            if s.seed == run_params["seeds"][0] and "test" in r.metrics:
                key = f"{s.variant}_n{s.size}_test_pointer_acc"
                summary.append(Metric(key, r.metrics["test"]["pointer_acc"], now, 0))
        for i in range(0, len(summary), 900):
            client.log_batch(pid, metrics=summary[i : i + 900])
        client.log_batch(pid, metrics=[Metric("wall_seconds", metrics["timing"]["wall_seconds"], now, 0)])
        for path in artifacts:
            if Path(path).is_file():
                client.log_artifact(pid, str(path))
        status = "FINISHED"
    finally:
        client.set_terminated(pid, status=status)
    return pid


def log_evaluation(params: EvaluateParams, per_task: Mapping[str, Any], artifacts: Sequence[Path]) -> None:
    """One MLflow run ``evaluate`` (experiment ``nar-transfer``): the headline mean of every cell, the
    low-data counts of each verdict, and the outputs as artifacts (each CSV and PNG under its folder's name:
    every task's CSVs are called ``<task>.csv``)."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from nar.tracking import configure_mlflow, git_commit

    mlflow = configure_mlflow(experiment=EXPERIMENT)
    client = MlflowClient()
    exp = mlflow.get_experiment_by_name(EXPERIMENT).experiment_id
    run = client.create_run(exp, run_name="evaluate", tags={"nar.stage": "evaluate", "git_commit": git_commit()})
    rid = run.info.run_id
    status = "FAILED"
    try:
        now = int(time.time() * 1000)
        ms = []
        for task, d in per_task.items():
            for split, by_variant in d["aggregate"].items():
                for variant, by_size in by_variant.items():
                    for size, cell in by_size.items():
                        st = cell.get(params.headline)
                        if st and st["mean"] is not None:
                            ms.append(Metric(f"{task}_{split}_{variant}_{size}_{params.headline}", st["mean"], now, 0))
            v = d["verdict"]
            ms.append(Metric(f"{task}_low_data_wins", v["low_data_wins"], now, 0))
            ms.append(Metric(f"{task}_low_data_clear_wins", v["low_data_clear_wins"], now, 0))
            ms.append(Metric(f"{task}_low_data_clear_losses", v["low_data_clear_losses"], now, 0))
        for i in range(0, len(ms), 900):
            client.log_batch(rid, metrics=ms[i : i + 900])
        client.log_batch(rid, params=[Param("headline", params.headline), Param("low_data", str(params.low_data))])
        for p in artifacts:
            if Path(p).is_file():
                client.log_artifact(
                    rid, str(p), artifact_path=Path(p).parent.name if Path(p).suffix in (".png", ".csv") else None
                )
        status = "FINISHED"
    finally:
        client.set_terminated(rid, status=status)
