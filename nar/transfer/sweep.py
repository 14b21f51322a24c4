"""The ``transfer`` stage: every variant x training-set size x seed of one task, in one process.

::

    result = run_transfer("digit_grid", params)   # TransferParams (params.yaml ``transfer``)

1. Loads the processor (``params.processor``: a registry URI, ``champion`` by default, or a
   local directory) verified by its sha256.
2. Trains the runs (:mod:`nar.transfer.train`), ``params.workers`` at a time in spawned
   processes with one thread each (runs are small: two single-threaded runs beat one
   two-threaded run). A run's result depends only on its (variant, size, seed), never on
   which worker ran it or in which order.
3. Scores the variants that need no training (``heuristic``: the exact algorithm on the visible
   proxy cost; ``oracle``: on the hidden true costs) once per split, as the pool's last jobs (beside
   the last training runs, one thread, as they are), and reports them in every size x seed cell.
4. Writes ``metrics/transfer/<task>.json`` (per variant, size, seed and split: every metric
   of :mod:`nar.transfer.metrics`; learning curves; the processor's sha256 before and
   after each nar_frozen run) and ``models/transfer/<task>/`` (``index.json``, the trained
   weights as safetensors per ``save_models``, ``predictions.json`` for the pictures).
5. Logs it all to MLflow (experiment ``nar-transfer``): one parent run per task, one child
   run per (variant, size, seed) with its metrics and its learning curve as metric history.

Resume: each finished run is kept in ``checkpoints/transfer/<task>/<key>/`` (its result as JSON,
written last, and its weights), outside the DVC outputs, which DVC deletes before rerunning a
stage. ``key`` hashes the resolved parameters, the processor's sha256 and the dataset versions,
so a sweep killed at any point and started again with the same inputs redoes only the runs
that had not finished (a run's result depends only on its spec); the directory is removed once
the outputs are written.

Parts: :mod:`~nar.transfer.record` (the processor and its sha256), :mod:`~nar.transfer.pool` (the
workers), :mod:`~nar.transfer.results` (the resume store and the outputs), :mod:`~nar.transfer.mlflow_runs`
(the MLflow runs); this module schedules them.
"""

from __future__ import annotations

import dataclasses
import signal
import time
from pathlib import Path
from typing import Any

from nar.errors import NarError
from nar.natural.config import NATURAL_TASKS
from nar.transfer.config import TransferParams
from nar.transfer.interrupt import Interrupted, signals_deferred, signals_raise
from nar.transfer.mlflow_runs import log_sweep
from nar.transfer.pool import run_jobs
from nar.transfer.progress import SweepProgress, plan_line, run_summary
from nar.transfer.record import load_processor_record
from nar.transfer.results import ResumeStore, params_dict, write_outputs
from nar.transfer.variants import (
    FROZEN_TRAINED,
    NEEDS_NETWORK,
    NEEDS_PROCESSOR,
    TRAINED,
    TRANSFER_VARIANTS,
    UNTRAINED,
)

REQUIRED_SPLITS = ("train", "val", "test")


def run_transfer(
    task: str,
    params: TransferParams,
    *,
    models_root: Path = Path("models/transfer"),
    metrics_root: Path = Path("metrics/transfer"),
    checkpoints_root: Path = Path("checkpoints/transfer"),
    track: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the sweep of ``task`` and write its outputs (module docstring); returns the metrics.

    SIGINT or SIGTERM (in the main thread) stop it within seconds as :class:`Interrupted` (a
    KeyboardInterrupt) saying how many runs were kept for the next sweep to resume from; the workers
    are ended, and no output is left half-written."""
    from nar.tracking import dataset_version
    from nar.transfer.record import ceiling_unavailable
    from nar.transfer.train import RunResult, RunSpec, TaskData, run_untrained

    t0 = time.perf_counter()
    params = _with_device(params)
    tp = params.task(task)
    data_root = Path(params.data)
    base = data_root / task
    if not (base / "train").is_dir():
        raise NarError(f"no natural dataset at {base}: run `nar natural --task {task}` first")
    missing = [name for name in REQUIRED_SPLITS if not (base / name).is_dir()]
    if missing:
        raise NarError(
            f"{base}: missing split(s) {missing}; transfer needs {list(REQUIRED_SPLITS)} "
            f"(ood is optional): run `nar natural --task {task}`"
        )
    record = None
    if any(v in NEEDS_PROCESSOR for v in params.variants):
        record = load_processor_record(params.processor, params.allow_unverified)
    data = TaskData.load(str(data_root), task, tp)
    for i, size in enumerate(params.sizes):
        if size > len(data.train):
            raise NarError(
                f"transfer.sizes[{i}] = {size}: the {task} train split has only {len(data.train)} examples "
                f"({base / 'train'})"
            )

    # a variant that prices turns (bottleneck_turns) runs only on a task whose routes pay turn delays
    # (transfer.variants may list it for every task)
    turn_costs = NATURAL_TASKS[task].turn_costs
    trained = [v for v in params.variants if v in TRAINED and (turn_costs or not TRANSFER_VARIANTS[v].turn_costs)]
    # the slow variants first, so that the pool's last runs are short ones
    jobs = [RunSpec(task, v, n, s) for v in trained for n in reversed(params.sizes) for s in params.seeds]
    first_seed = params.seeds[0]
    untrained = [v for v in UNTRAINED if v in params.variants]
    needs_network = [v for v in NEEDS_NETWORK if v in params.variants]
    if needs_network and not record.network:  # say so now, not after an hour of training
        raise NarError(ceiling_unavailable(record.uri, needs_network))

    def keep(spec: RunSpec) -> bool:
        return params.save_models == "all" or (params.save_models == "first_seed" and spec.seed == first_seed)

    def pictures(spec: RunSpec) -> int:
        return params.picture_examples if (spec.size == params.picture_size and spec.seed == first_seed) else 0

    versions = {name: dataset_version(base / name) for name in ["train", *data.splits]}
    resume = ResumeStore(checkpoints_root, task, params, record, versions)
    finished = {spec: r for spec in jobs if (r := resume.load(spec)) is not None}
    todo = [spec for spec in jobs if spec not in finished]
    progress_out = SweepProgress(
        task,
        len(jobs),
        already_done=len(finished),
        untrained=untrained,
        cells=len(params.sizes) * len(params.seeds),
        enabled=progress,
    )

    def on_done(r: RunResult) -> None:
        if r.spec.variant in untrained:  # scored in a minute: not kept for a resume
            progress_out.untrained_done(r.spec.variant, run_summary(r.metrics))
            return
        with signals_deferred():  # a finished run is kept whole or not at all
            resume.save(r)
        progress_out.run_done(r.spec.name, run_summary(r.metrics, r.steps, r.train_seconds + r.eval_seconds))

    # from here on SIGINT/SIGTERM stop the sweep (and its workers) as an Interrupted exception, and the
    # outputs below are written with signals held: a stopped sweep leaves its finished runs, never a
    # half-written output
    try:
        with signals_raise():
            at_once = params.workers if len(todo) > 1 else 1
            plan = plan_line(task, trained, params.sizes, params.seeds, at_once, untrained)
            progress_out.start(plan, resumed_from=str(resume.path))
            # the untrained variants are scored once each, as the pool's last jobs: beside the last training runs
            # (in a worker, one thread, as the training runs), not after them
            scored = [RunSpec(task, v, 0, 0) for v in untrained]
            queue = todo + scored
            fresh = run_jobs(queue, str(data_root), task, params, record, keep, pictures, on_done) if todo else []
            by_spec = {**finished, **{r.spec: r for r in fresh}}
            results = [by_spec[spec] for spec in jobs]
            for variant, spec in zip(untrained, scored, strict=True):  # reported in every size x seed cell
                once = by_spec.get(spec)
                if once is None:  # every training run was resumed: no pool ran
                    once = run_untrained(spec, data, record)
                    progress_out.untrained_done(variant, run_summary(once.metrics))
                for n in params.sizes:
                    for s in params.seeds:
                        results.append(RunResult(RunSpec(task, variant, n, s), once.metrics, eval_seconds=0.0))
            for r in results:
                if r.spec.variant in FROZEN_TRAINED and r.processor_sha256_before != r.processor_sha256_after:
                    raise NarError(f"{r.spec.name}: frozen processor changed")  # train_run already refuses this
            progress_out.stop()
            progress_out.note(f"writing the outputs{' and logging the runs to MLflow' if track else ''}")
            with signals_deferred():
                metrics, metrics_path, out_dir = write_outputs(
                    task, params, data, record, results, versions, base, models_root, metrics_root, t0
                )
            if track:
                artifacts = [metrics_path, out_dir / "index.json", out_dir / "predictions.json"]
                log_sweep(task, params_dict(params, task), metrics, results, artifacts)
            resume.clear()  # every output is written: nothing left to resume
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM (Interrupted), or a worker's KeyboardInterrupt
        progress_out.stop()
        kept = len(list(resume.path.glob("*.json"))) if resume.path.is_dir() else 0
        detail = (
            f"{kept} of {len(jobs)} training runs finished and are kept in {resume.path}: the same command "
            "resumes from them"
            if kept
            else "no training run had finished"
        )
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        raise Interrupted(signum, detail) from None
    finally:
        progress_out.stop()
    progress_out.finish(len(results), len(jobs), str(metrics_path), time.perf_counter() - t0)
    return {k: v for k, v in metrics.items() if k != "timing"}  # the metrics file's content (timing: MLflow, runs/)


def _with_device(params: TransferParams) -> TransferParams:
    """Resolved device, and a plain dict of tasks (a mappingproxy cannot be pickled for the workers)."""
    return dataclasses.replace(params, device=_resolve_device(params.device), tasks=dict(params.tasks))


def _resolve_device(device: str) -> str:
    from nar.training.fit import resolve_device  # torch is imported only when a sweep runs

    return str(resolve_device(device))
