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
   proxy cost; ``oracle``: on the hidden true costs) once per split, and reports them in every
   size x seed cell.
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
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nar.errors import NarError
from nar.transfer.config import TRAINED, TURN_TASKS, UNTRAINED, TransferParams
from nar.transfer.interrupt import Interrupted, signals_deferred, signals_raise, stop_pool, worker_signals
from nar.transfer.progress import SweepProgress, plan_line, run_summary

EXPERIMENT = "nar-transfer"
NEEDS_PROCESSOR = ("nar_frozen", "nar_finetune", "e2e")


@dataclass(frozen=True)
class ProcessorRecord:
    """The processor a sweep used: where from, its identity and its weights (canonical bytes)."""

    uri: str
    version: str | None
    sha256: str
    config: dict[str, Any]
    blob: bytes

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


# --------------------------------------------------------------------------- workers

_WORKER: dict[str, Any] = {}


def _init_worker(
    data_root: str,
    task: str,
    params: TransferParams,
    record: ProcessorRecord | None,
    threads: int,
    parent_pid: int | None = None,
):
    import torch

    from nar.runtime import tune_malloc
    from nar.transfer.train import TaskData

    if parent_pid is not None:  # a pool worker: the parent handles Ctrl-C; never outlive it
        worker_signals(parent_pid)
    tune_malloc()
    torch.set_num_threads(threads)
    tp = params.task(task)
    data = TaskData.load(data_root, task, tp)
    _WORKER.update(
        data=data,
        params=params,
        task_params=tp,
        processor=processor_from_record(record) if record is not None else None,
        eval_batches={name: s.batches(params.eval_batch_size, params.device) for name, s in data.splits.items()},
    )


def _run_job(spec, keep_state: bool, pictures: int):
    from nar.transfer.train import train_run

    w = _WORKER
    params: TransferParams = w["params"]
    return train_run(
        spec,
        w["task_params"],
        w["data"],
        w["processor"],
        eval_batch_size=params.eval_batch_size,
        device=params.device,
        mode=params.processor_mode,
        eval_batches=w["eval_batches"],
        keep_state=keep_state,
        picture_examples=pictures,
    )


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run_jobs(
    jobs: Sequence[Any],
    data_root: str,
    task: str,
    params: TransferParams,
    record: ProcessorRecord | None,
    keep: Callable[[Any], bool],
    pictures: Callable[[Any], int],
    on_done: Callable[[Any], None] | None = None,
) -> list[Any]:
    """Run ``jobs`` (RunSpecs) in ``params.workers`` processes (in this one when 1); results in job order."""
    results: dict[Any, Any] = {}
    if params.workers == 1 or len(jobs) <= 1:
        # one thread even here: the tensors are small, and OpenMP barriers on a busy machine cost
        # milliseconds per operation (measured: 1.2 ms per tiny linear layer with 2 threads)
        _init_worker(data_root, task, params, record, threads=1)
        for spec in jobs:
            results[spec] = _run_job(spec, keep(spec), pictures(spec))
            if on_done:
                on_done(results[spec])
        return [results[s] for s in jobs]
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # never fork a process that may have started OpenMP threads
    pool = ProcessPoolExecutor(
        max_workers=params.workers,
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(data_root, task, params, record, 1, os.getpid()),
    )
    try:
        futures = {pool.submit(_run_job, spec, keep(spec), pictures(spec)): spec for spec in jobs}
        for fut in as_completed(futures):
            res = fut.result()  # a failed run (e.g. a changed frozen processor) stops the sweep here
            results[futures[fut]] = res
            if on_done:
                on_done(res)
    except BaseException:
        # a failed run, Ctrl-C or SIGTERM: end the workers now. Only cancelling would leave the calls the
        # pool had already queued running for minutes, and a dead parent's workers blocked on its pipe.
        stop_pool(pool)
        raise
    pool.shutdown(wait=True)
    return [results[s] for s in jobs]


# --------------------------------------------------------------------------- the stage


def _nested(results: Sequence[Any], field: Callable[[Any], Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in results:
        s = r.spec
        out.setdefault(s.variant, {}).setdefault(f"n{s.size}", {})[f"s{s.seed}"] = field(r)
    return out


def _clean(x: Any) -> Any:
    """JSON-safe: numpy scalars to Python numbers."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, str | bytes):
        return x.item()
    return x


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_clean(data), indent=1, sort_keys=False) + "\n")
    tmp.replace(path)


REQUIRED_SPLITS = ("train", "val", "test")


class ResumeStore:
    """Finished runs of one sweep, kept outside the DVC outputs until the sweep completes.

    ``<root>/<task>/<key>/<variant>-n<size>-s<seed>.json`` (the result, written last and
    atomically: its presence means the run finished) and ``.safetensors`` (its weights, when kept).
    """

    def __init__(
        self,
        root: Path,
        task: str,
        params: TransferParams,
        record: ProcessorRecord | None,
        versions: dict[str, str],
    ) -> None:
        identity = {
            "params": _params_dict(params, task),
            "processor": None if record is None else record.sha256,
            "data": versions,
        }
        key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
        self.path = Path(root) / task / key

    def _stem(self, spec: Any) -> Path:
        return self.path / f"{spec.variant}-n{spec.size}-s{spec.seed}"

    def save(self, r: Any) -> None:
        from safetensors.torch import save_file

        stem = self._stem(r.spec)
        stem.parent.mkdir(parents=True, exist_ok=True)
        if r.state is not None:
            tmp = stem.with_suffix(".safetensors.tmp")
            save_file({k: v.contiguous() for k, v in r.state.items()}, str(tmp))
            tmp.replace(stem.with_suffix(".safetensors"))
        _write_json(stem.with_suffix(".json"), {**r.to_json(), "predictions": r.predictions})

    def load(self, spec: Any) -> Any:
        """The finished run of ``spec``, or None (not run, or its files unreadable: run it again)."""
        from safetensors.torch import load_file

        from nar.transfer.train import RunResult

        stem = self._stem(spec)
        try:
            d = json.loads(stem.with_suffix(".json").read_text())
            weights = stem.with_suffix(".safetensors")
            state = load_file(str(weights)) if weights.is_file() else None
        except (OSError, ValueError):
            return None
        if d.get("variant") != spec.variant or d.get("size") != spec.size or d.get("seed") != spec.seed:
            return None
        return RunResult.from_json(spec, d, state)

    def clear(self) -> None:
        import shutil

        shutil.rmtree(self.path, ignore_errors=True)
        for parent in (self.path.parent, self.path.parent.parent):
            try:
                parent.rmdir()  # only when empty
            except OSError:
                break


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

    # bottleneck_turns prices turns: only on a turn task (transfer.variants may list it for every task)
    trained = [v for v in params.variants if v in TRAINED and (v != "bottleneck_turns" or task in TURN_TASKS)]
    # the slow variants first, so that the pool's last runs are short ones
    jobs = [RunSpec(task, v, n, s) for v in trained for n in reversed(params.sizes) for s in params.seeds]
    first_seed = params.seeds[0]
    untrained = [v for v in UNTRAINED if v in params.variants]

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
            fresh = run_jobs(todo, str(data_root), task, params, record, keep, pictures, on_done) if todo else []
            by_spec = {**finished, **{r.spec: r for r in fresh}}
            results = [by_spec[spec] for spec in jobs]
            for variant in untrained:  # scored once, reported in every size x seed cell
                once = run_untrained(RunSpec(task, variant, 0, 0), data)
                progress_out.untrained_done(variant, run_summary(once.metrics))
                for n in params.sizes:
                    for s in params.seeds:
                        results.append(RunResult(RunSpec(task, variant, n, s), once.metrics, eval_seconds=0.0))
            for r in results:
                if r.spec.variant == "nar_frozen" and r.processor_sha256_before != r.processor_sha256_after:
                    raise NarError(f"{r.spec.name}: frozen processor changed")  # train_run already refuses this
            progress_out.stop()
            progress_out.note(f"writing the outputs{' and logging the runs to MLflow' if track else ''}")
            with signals_deferred():
                metrics, metrics_path, out_dir = _write_outputs(
                    task, params, data, record, results, versions, base, models_root, metrics_root, t0
                )
            if track:
                artifacts = [metrics_path, out_dir / "index.json", out_dir / "predictions.json"]
                log_to_mlflow(task, params, metrics, results, artifacts)
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


def _write_outputs(
    task: str,
    params: TransferParams,
    data: Any,
    record: ProcessorRecord | None,
    results: list[Any],
    versions: dict[str, str],
    base: Path,
    models_root: Path,
    metrics_root: Path,
    t0: float,
) -> tuple[dict[str, Any], Path, Path]:
    """models/transfer/<task>/ (weights, predictions.json, index.json), then the metrics file, last: a
    metrics file on disk means every other output is there."""
    import shutil

    from nar.tracking import run_record_path
    from nar.transfer.train import untrained_predictions

    first_seed = params.seeds[0]
    out_dir = Path(models_root) / task
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    saved = _save_models(out_dir, results, record)
    predictions = {"task": task, "size": params.picture_size, "seed": first_seed, "variants": {}}
    for r in results:
        if r.predictions:
            predictions["variants"][r.spec.variant] = r.predictions
    for variant in UNTRAINED:
        if variant not in params.variants or not params.picture_examples:
            continue
        predictions["variants"][variant] = {
            name: [
                p.tolist()
                for p in untrained_predictions(variant, data.splits[name], data.algorithm, params.picture_examples)
            ]
            for name in ("test", "ood")
            if name in data.splits
        }
    _write_json(out_dir / "predictions.json", predictions)

    wall = time.perf_counter() - t0
    metrics: dict[str, Any] = {
        "task": task,
        "algorithm": data.algorithm,
        "processor": None if record is None else record.info(),
        "data": {"root": str(base), "versions": versions, "sizes": {"train": len(data.train)}},
        "variants": list(params.variants),
        "sizes": list(params.sizes),
        "seeds": list(params.seeds),
        "splits": list(data.splits),
        "results": _nested(results, lambda r: r.metrics),
        "curves": _nested([r for r in results if r.curve], lambda r: r.curve),
        # timings depend on the machine: in the git-ignored run record (and MLflow), not this tracked file
        "runs": _nested(results, lambda r: {k: v for k, v in r.to_json().items() if k not in UNTRACKED_RUN_KEYS}),
    }
    timing = {
        "wall_seconds": round(wall, 1),
        "train_seconds": round(sum(r.train_seconds for r in results), 1),
        "eval_seconds": round(sum(r.eval_seconds for r in results), 1),
        "workers": params.workers,
    }
    for key, split in (("val", "val"), ("test", "test"), ("ood", "ood")):
        metrics["data"]["sizes"][key] = len(data.splits[split]) if split in data.splits else 0
    metrics = _clean(metrics)
    index = {
        "task": task,
        "processor": metrics["processor"],
        "params": _params_dict(params, task),
        "models": saved,
        "data_versions": versions,
    }
    _write_json(out_dir / "index.json", index)
    metrics_path = Path(metrics_root) / f"{task}.json"
    _write_json(metrics_path, metrics)
    runs = _nested(results, lambda r: {"train_seconds": r.train_seconds, "eval_seconds": r.eval_seconds})
    _write_json(run_record_path(metrics_path), {"task": task, "timing": timing, "runs": runs})
    return {**metrics, "timing": timing}, metrics_path, out_dir


UNTRACKED_RUN_KEYS = ("metrics", "curve", "train_seconds", "eval_seconds")


def _with_device(params: TransferParams) -> TransferParams:
    """Resolved device, and a plain dict of tasks (a mappingproxy cannot be pickled for the workers)."""
    import dataclasses

    return dataclasses.replace(params, device=_resolve_device(params.device), tasks=dict(params.tasks))


def _params_dict(params: TransferParams, task: str) -> dict[str, Any]:
    import dataclasses

    d = {f.name: getattr(params, f.name) for f in dataclasses.fields(params) if f.name != "tasks"}
    d["task"] = dataclasses.asdict(params.task(task))
    return _clean(d)


def _save_models(out_dir: Path, results: Sequence[Any], record: ProcessorRecord | None) -> list[dict[str, Any]]:
    from safetensors.torch import save_file

    saved = []
    for r in results:
        if r.state is None:
            continue
        name = f"{r.spec.variant}-n{r.spec.size}-s{r.spec.seed}.safetensors"
        meta = {"variant": r.spec.variant, "size": str(r.spec.size), "seed": str(r.spec.seed)}
        if r.spec.variant == "nar_frozen" and record is not None:
            meta["processor_sha256"] = record.sha256  # the frozen processor is not stored again
        # one metadata key: safetensors writes a metadata map in hash order, a different file (and
        # dvc.lock hash) on every run; one JSON string is the same bytes every time (nar.data.dataset does so too)
        save_file(
            {k: v.contiguous() for k, v in r.state.items()},
            str(out_dir / name),
            metadata={"nar": json.dumps(meta, sort_keys=True)},
        )
        saved.append({"file": name, **meta})
    return saved


# --------------------------------------------------------------------------- MLflow


def _flat_params(prefix: str, d: Any, out: dict[str, str]) -> dict[str, str]:
    if isinstance(d, dict):
        for k, v in d.items():
            _flat_params(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = str(d)[:500]
    return out


def log_to_mlflow(task: str, params: TransferParams, metrics: dict, results: Sequence[Any], artifacts: list[Path]):
    """One parent run per task, one child per (variant, size, seed); explicit run ids throughout."""
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
        flat = _flat_params("", _params_dict(params, task), {})
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
            if s.seed == params.seeds[0] and "test" in r.metrics:
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
