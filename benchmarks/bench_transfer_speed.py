"""Where the transfer sweep's time goes: seconds per run of every trained variant, split into training steps,
validation and the final evaluation, and what the whole sweep costs.

    python benchmarks/bench_transfer_speed.py --tasks digit_grid road road_turns \\
        --processor models/pretrain/bellman_ford --out benchmarks/results/transfer_speed.json

Per task (``params.yaml`` ``transfer``, one torch thread: what a sweep worker does), per trained variant:

``probe``   the run ``variant:size:seed`` (the sweep's own subset, initialisation and batches,
            :func:`nar.transfer.train.train_run`) cut to ``--probe-steps`` training steps, timed in its
            three parts: ms per training step (forward, backward, Adam), seconds per validation
            (``quick_accuracy`` on the first ``val_examples`` validation examples, every ``eval_every``
            steps) and seconds of the final evaluation (val, test and ood predicted and scored). The
            step cost does not depend on the training size (the batch size is fixed); a run differs from
            another only in how many steps early stopping lets it take.
``run_seconds``  per size: steps x step + validations x validation + evaluation, with the steps the
            committed sweep took (``metrics/transfer/<task>.json``, mean over its seeds; ``max_steps``
            when there is none). ``--full-runs`` also trains whole runs and records their measured split.
``float32`` for a task whose ``precision`` is ``bfloat16``: the same probe under float32. On a CPU
            without AVX512-BF16 the bfloat16 matrix products fall back to a slow kernel; float32 changes
            results (rounding), so it is a decision for params.yaml, reported here, not made.
``ragged``  the share of processor node-steps spent on graphs that have already done their own number of
            steps (a batch runs max(steps) for every graph; ``nar.models.runner``), training and evaluation.
``untrained`` seconds to score heuristic, oracle and ceiling once (every split).
``mlflow``  seconds to log a sweep's runs (``nar.transfer.mlflow_runs.log_sweep``) into a fresh SQLite
            store, with synthetic results of the sweep's shape: ``before`` replays the earlier call pattern
            (params, metrics and the processor tags as separate calls per child run), ``after`` is the code's.

``sweep_estimate``: per task, the sum over variants x sizes x seeds of ``run_seconds`` divided by
``transfer.workers`` (the pool keeps both busy: slow runs first), plus the serial parts: untrained scoring
(before: after the pool; after: inside it) and MLflow logging; and the same with float32 steps.
Timings depend on the machine's load: the load average is recorded.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def sweep_steps(metrics_root: Path, task: str) -> dict[str, dict[int, float]]:
    """variant -> size -> mean steps of the committed sweep (empty when there is none)."""
    path = metrics_root / f"{task}.json"
    if not path.is_file():
        return {}
    runs = json.loads(path.read_text()).get("runs") or {}
    out: dict[str, dict[int, float]] = {}
    for variant, by_size in runs.items():
        for size, by_seed in by_size.items():
            steps = [r.get("steps") or 0 for r in by_seed.values()]
            if any(steps):
                out.setdefault(variant, {})[int(size.lstrip("n"))] = float(np.mean(steps))
    return out


def ragged_waste(split: Any, batch: int, rng: np.random.Generator | None = None, draws: int = 2000) -> float:
    """Share of node-steps spent past a graph's own step count: random batches (training) or fixed ones."""
    s, n = split.steps, split.num_nodes
    used = full = 0
    if rng is not None:
        for _ in range(draws):
            idx = rng.choice(len(s), batch, replace=False)
            used += int((s[idx] * n[idx]).sum())
            full += int(s[idx].max() * n[idx].sum())
    else:
        for a in range(0, len(s), batch):
            used += int((s[a : a + batch] * n[a : a + batch]).sum())
            full += int(s[a : a + batch].max() * n[a : a + batch].sum())
    return round(1 - used / max(full, 1), 3)


class ValidationClock:
    """Wraps ``nar.transfer.train.quick_accuracy`` to time the validations inside a run."""

    def __init__(self) -> None:
        from nar.transfer import train

        self.train, self.original, self.seconds, self.calls = train, train.quick_accuracy, 0.0, 0

    def __enter__(self) -> ValidationClock:
        def timed(*args: Any, **kwargs: Any) -> float:
            start = time.perf_counter()
            try:
                return self.original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.calls += 1

        self.train.quick_accuracy = timed
        return self

    def __exit__(self, *exc: Any) -> None:
        self.train.quick_accuracy = self.original


def timed_run(spec: Any, tp: Any) -> dict[str, Any]:
    """One run with its parts timed, as a sweep worker runs it (``nar.transfer.pool._run_job`` in this process,
    after ``pool._init_worker``), with the task's transfer params ``tp`` in place of the worker's (to cut steps)."""
    from nar.transfer import pool

    own = pool._WORKER["task_params"]
    pool._WORKER["task_params"] = tp
    try:
        with ValidationClock() as clock:
            start = time.perf_counter()
            r = pool._run_job(spec, False, 0)  # no state kept, no pictures: the train_run defaults
            total = time.perf_counter() - start
    finally:
        pool._WORKER["task_params"] = own
    steps_s = r.train_seconds - clock.seconds
    return {
        "steps": r.steps,
        "best_step": r.best_step,
        "seconds": round(total, 2),
        "train_steps_seconds": round(steps_s, 2),
        "validation_seconds": round(clock.seconds, 2),
        "validations": clock.calls,
        "eval_seconds": round(r.eval_seconds, 2),
        "ms_per_step": round(1000 * steps_s / max(r.steps, 1), 1),
        "s_per_validation": round(clock.seconds / max(clock.calls, 1), 3),
        "test_pointer_acc": r.metrics["test"]["pointer_acc"],
    }


def modeled(probe: dict[str, Any], steps: float, eval_every: int) -> float:
    validations = math.ceil(steps / eval_every)
    return probe["ms_per_step"] / 1000 * steps + probe["s_per_validation"] * validations + probe["eval_seconds"]


def synthetic_results(task: str, variants: list[str], sizes: list[int], seeds: list[int], curve_len: int) -> list:
    from nar.transfer.train import RunResult, RunSpec
    from nar.transfer.variants import FROZEN_TRAINED

    split = {
        "pointer_acc": 0.9,
        "pointer_acc_tie": 0.9,
        "path_match": 0.5,
        "path_optimal": 0.5,
        "regret": 0.1,
        "regret_all": 0.2,
        "invalid": 1,
        "invalid_rate": 0.01,
        "examples": 200,
        "nodes": 5000,
    }
    curve = [{"step": 25 * i, "train_loss": 1.0, "val_pointer_acc": 0.5} for i in range(1, curve_len + 1)]
    sha = "0" * 64
    return [
        RunResult(
            RunSpec(task, v, n, s),
            {k: dict(split) for k in ("val", "test", "ood")},
            curve=curve,
            train_seconds=1.0,
            processor_sha256_before=sha if v in FROZEN_TRAINED else None,
            processor_sha256_after=sha if v in FROZEN_TRAINED else None,
        )
        for v in variants
        for n in sizes
        for s in seeds
    ]


def log_sweep_before(task: str, run_params: dict, metrics: dict, results: list) -> None:
    """The child-run call pattern of log_sweep before it was batched (params, metrics, each tag: one call each)."""
    from nar.tracked_run import TrackedRun, open_experiment
    from nar.transfer.mlflow_runs import EXPERIMENT, _result_rows

    client, experiment_id = open_experiment(EXPERIMENT)
    parent = TrackedRun.start(client, experiment_id, f"transfer-{task}", {"nar.task": task})
    with parent.ending():
        parent.log_params(run_params, max_chars=500)
        for r in results:
            s = r.spec
            child = parent.child(f"{task}/{s.variant}/n{s.size}/s{s.seed}", {"nar.task": task, "variant": s.variant})
            child.log_params({"variant": s.variant, "size": s.size, "seed": s.seed})
            child.log_metric_rows(_result_rows(r))
            if r.processor_sha256_before:
                child.set_tags(
                    {
                        "processor_sha256_before": r.processor_sha256_before,
                        "processor_sha256_after": str(r.processor_sha256_after),
                    }
                )
            child.end()


def mlflow_seconds(task: str, variants: list[str], sizes: list[int], seeds: list[int]) -> dict[str, float]:
    """Seconds to log one task's runs, before and after, each into a fresh SQLite store."""
    from nar.transfer.mlflow_runs import log_sweep

    results = synthetic_results(task, variants, sizes, seeds, curve_len=12)
    run_params = {"seeds": list(seeds), "sizes": list(sizes)}
    metrics = {"processor": {}, "timing": {"wall_seconds": 1.0}}
    out = {"runs": len(results)}
    old = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        for name, fn in (("before", log_sweep_before), ("after", log_sweep)):
            with tempfile.TemporaryDirectory() as tmp:
                os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
                from nar.tracked_run import open_experiment
                from nar.transfer.mlflow_runs import EXPERIMENT

                open_experiment(EXPERIMENT)  # the store's tables are created outside the timing
                start = time.perf_counter()
                if fn is log_sweep:
                    fn(task, run_params, metrics, results, [])
                else:
                    fn(task, run_params, metrics, results)
                out[name] = round(time.perf_counter() - start, 2)
    finally:
        if old is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old
    return out


def bench_task(task: str, params: Any, record: Any, args: argparse.Namespace) -> dict[str, Any]:
    from nar.natural.config import NATURAL_TASKS
    from nar.transfer import pool
    from nar.transfer.train import RunSpec, run_untrained
    from nar.transfer.variants import TRAINED, TRANSFER_VARIANTS, UNTRAINED

    start = time.perf_counter()
    pool._init_worker(params.data, task, params, record, 1)
    worker = dict(pool._WORKER)
    setup = time.perf_counter() - start
    tp = worker["task_params"]
    data = worker["data"]
    turn = NATURAL_TASKS[task].turn_costs
    variants = [
        v for v in (args.variants or params.variants) if v in TRAINED and (turn or not TRANSFER_VARIANTS[v].turn_costs)
    ]
    committed = sweep_steps(args.metrics, task)
    out: dict[str, Any] = {
        "worker_setup_seconds": round(setup, 2),
        "precision": tp.precision,
        "batch_size": tp.batch_size,
        "max_steps": tp.max_steps,
        "eval_every": tp.eval_every,
        "ragged": {
            "train": ragged_waste(data.train, tp.batch_size, np.random.default_rng(0)),
            **{name: ragged_waste(s, params.eval_batch_size) for name, s in data.splits.items()},
        },
        "variants": {},
    }
    cut = dataclasses.replace(tp, max_steps=args.probe_steps)
    for v in variants:
        spec = RunSpec(task, v, args.probe_size, args.seed)
        row: dict[str, Any] = {"probe": timed_run(spec, cut)}
        if tp.precision == "bfloat16" and not args.no_float32:
            row["float32"] = timed_run(spec, dataclasses.replace(cut, precision="float32"))
        steps = {n: committed.get(v, {}).get(n, float(tp.max_steps)) for n in params.sizes}
        row["sweep_mean_steps"] = {str(n): round(s, 1) for n, s in steps.items()}
        row["run_seconds"] = {str(n): round(modeled(row["probe"], s, tp.eval_every), 1) for n, s in steps.items()}
        if "float32" in row:
            row["run_seconds_float32"] = {
                str(n): round(modeled(row["float32"], s, tp.eval_every), 1) for n, s in steps.items()
            }
        for n in args.full_runs:
            row.setdefault("full_runs", {})[str(n)] = timed_run(RunSpec(task, v, n, args.seed), tp)
        out["variants"][v] = row
        print(f"{task} {v}: {json.dumps(row)}", file=sys.stderr, flush=True)

    untrained = [v for v in UNTRAINED if v in params.variants]
    out["untrained_seconds"] = {}
    for v in untrained:
        start = time.perf_counter()
        run_untrained(RunSpec(task, v, 0, 0), data, record)
        out["untrained_seconds"][v] = round(time.perf_counter() - start, 2)
    if not args.no_mlflow:
        out["mlflow"] = mlflow_seconds(task, variants + untrained, list(params.sizes), list(params.seeds))

    runs = len(params.seeds)
    train_sum = sum(sum(r["run_seconds"].values()) for r in out["variants"].values()) * runs
    f32_sum = sum(sum(r.get("run_seconds_float32", r["run_seconds"]).values()) for r in out["variants"].values()) * runs
    serial_untrained = sum(out["untrained_seconds"].values())
    log = out.get("mlflow", {})
    pool_wall = train_sum / params.workers
    out["sweep_estimate"] = {
        "training_runs": len(variants) * len(params.sizes) * runs,
        "run_seconds_sum": round(train_sum),
        "before_seconds": round(pool_wall + serial_untrained + log.get("before", 0.0)),
        # untrained scoring runs inside the pool, beside the training runs (its cost split over the workers)
        "after_seconds": round(pool_wall + serial_untrained / params.workers + log.get("after", 0.0)),
        "float32_seconds": round(f32_sum / params.workers + serial_untrained / params.workers + log.get("after", 0.0)),
    }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["digit_grid", "road", "road_turns"])
    ap.add_argument("--variants", nargs="+", help="trained variants (default: transfer.variants)")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--processor", help="registry URI or local directory (default: transfer.processor)")
    ap.add_argument("--data", help="natural datasets root (default: transfer.data)")
    ap.add_argument("--metrics", type=Path, default=ROOT / "metrics/transfer", help="the committed sweep (its steps)")
    ap.add_argument("--probe-steps", type=int, default=25, help="training steps of each probe (one validation)")
    ap.add_argument("--probe-size", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--full-runs", type=int, nargs="*", default=[], help="sizes to also train whole (slow)")
    ap.add_argument("--no-float32", action="store_true", help="skip the float32 probes of bfloat16 tasks")
    ap.add_argument("--no-mlflow", action="store_true", help="skip the MLflow logging timing")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.probe_steps < 1:
        raise SystemExit("--probe-steps must be >= 1")

    from bench_train import cpu_model  # a sibling script: python puts benchmarks/ on sys.path

    from nar.config import load_params
    from nar.transfer.record import load_processor_record
    from nar.transfer.results import write_json
    from nar.transfer.sweep import _with_device

    torch.set_num_threads(1)  # as the sweep's workers
    params = load_params(args.params, "transfer").transfer
    overrides: dict[str, Any] = {}
    if args.processor:
        overrides.update(processor=args.processor)
    if args.data:
        overrides.update(data=args.data)
    params = _with_device(dataclasses.replace(params, **overrides))
    record = load_processor_record(params.processor, params.allow_unverified)
    t0 = time.perf_counter()
    tasks = {task: bench_task(task, params, record, args) for task in args.tasks}
    total = {
        key: sum(t["sweep_estimate"][key] for t in tasks.values())
        for key in ("before_seconds", "after_seconds", "float32_seconds")
    }
    out = {
        "benchmark": "transfer_speed",
        "command": "python benchmarks/bench_transfer_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "processor": {"uri": record.uri, "sha256": record.sha256},
        "sizes": list(params.sizes),
        "seeds": list(params.seeds),
        "workers": params.workers,
        "machine": {
            "cpu": cpu_model(),
            "torch": torch.__version__,
            "threads": 1,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "tasks": tasks,
        "sweep_estimate_seconds": total,
    }
    write_json(args.out, out)  # atomic: a killed run leaves no half-written file
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
