"""The sweep's worker pool: ``transfer.workers`` spawned processes, one thread each, every one holding the
task's data, evaluation batches and frozen processor (loaded once per worker by :func:`_init_worker`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from nar.transfer.config import TransferParams
from nar.transfer.interrupt import stop_pool, worker_signals
from nar.transfer.record import ProcessorRecord, network_from_record, processor_from_record

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
        record=record,
        processor=processor_from_record(record) if record is not None else None,
        network=network_from_record(record) if record is not None and _trains_on_network(params) else None,
        eval_batches={name: s.batches(params.eval_batch_size, params.device) for name, s in data.splits.items()},
    )


def _run_job(spec, keep_state: bool, pictures: int):
    """Train and score ``spec``; a variant that needs no training (heuristic, oracle, ceiling) is scored once on
    every split (its size and seed are placeholders), here rather than in the parent after the pool, so that it
    runs beside the last training runs instead of after them."""
    from nar.transfer.train import run_untrained, train_run
    from nar.transfer.variants import TRAINED

    w = _WORKER
    if spec.variant not in TRAINED:
        return run_untrained(spec, w["data"], w["record"])
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
        network=w["network"],
    )


def _trains_on_network(params: TransferParams) -> bool:
    """Whether a listed trained variant runs the whole pretrained network (nar_costs)."""
    from nar.transfer.variants import NEEDS_NETWORK, TRAINED

    return any(v in NEEDS_NETWORK and v in TRAINED for v in params.variants)


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
