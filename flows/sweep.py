"""Flow ``nar-sweep``: a grid of parameter overrides fanned out as DVC experiments on Dask.

Each grid point is one ``dvc exp run --temp -S key=value ...`` (flows.blueprint.run_experiment): DVC
copies the workspace for it, holds its repo lock only to set the copy up and to save the result, and
restores unchanged stages from its cache, so experiments run side by side and never stack. Prefect runs
the tasks on prefect-dask's DaskTaskRunner: a LocalCluster on this machine by default, or any Dask
scheduler (``address="tcp://scheduler:8786"``); no scheduling of our own. At the end the experiments'
metrics (read back through DVC) and their overrides form one pandas table, published as a Prefect table
artifact and written to CSV.

    from flows.sweep import run_sweep
    table = run_sweep(".", grid={"pretrain.runs.bellman_ford.train.seed": [0, 1, 2],
                                 "pretrain.runs.bellman_ford.model.processor.hidden": [32, 64]},
                      targets=["pretrain@bellman_ford"], n_workers=2)

Workers on other machines run ``dvc`` in ``root``, so they need the workspace at the same path (a shared
filesystem) and the same DVC cache; see flows/README.md, "Beyond one machine".
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import importlib.util
import itertools
import json
import logging
import math
import os
import shutil
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run
from prefect.states import Failed, State

from flows.blueprint import DEFAULT_RETRIES, run_experiment
from flows.report import markdown_table, metric_file_label, read_metrics
from flows.stages import create_tracking_store, has_commit, retry_if_transient
from nar.errors import NarError
from nar.limits import inside_workspace


class SweepFailed(NarError, RuntimeError):
    """Some experiments failed or were lost; the message names them and the results table (one line)."""


class SchedulerUnavailable(NarError):
    """No Dask scheduler answers at the address given."""


def format_value(value: Any) -> str:
    """A Python value as DVC's ``-S`` (Hydra) override syntax expects it."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)  # numbers, lists, mappings


def split_values(text: str) -> list[str]:
    """``0,1,2`` -> ['0', '1', '2']; commas inside brackets or quotes stay: ``[4,7],[16]`` -> ['[4,7]', '[16]']."""
    values, depth, quote, current = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            values.append("".join(current))
            current = []
            continue
        current.append(ch)
    values.append("".join(current))
    return [v.strip() for v in values]


def parse_grid(specs: Sequence[str]) -> dict[str, list[str]]:
    """CLI form: ``["seed=0,1", "train.steps=100"]`` -> {"seed": ["0", "1"], "train.steps": ["100"]}."""
    grid: dict[str, list[str]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{spec!r} is not key=value[,value...]")
        grid[key.strip()] = split_values(values)
    return grid


def expand_grid(
    grid: Mapping[str, Sequence[Any]] | None = None, experiments: Sequence[Sequence[str]] | None = None
) -> list[list[str]]:
    """Every combination of ``grid`` (key -> values, in key order), then the explicit ``experiments``
    (each a list of ``key=value``), as lists of DVC overrides."""
    runs: list[list[str]] = []
    if grid:
        keys = list(grid)
        for key in keys:
            if isinstance(grid[key], str) or not isinstance(grid[key], Sequence) or not grid[key]:
                raise ValueError(f"grid[{key!r}] must be a non-empty list of values, got {grid[key]!r}")
        for combo in itertools.product(*(grid[k] for k in keys)):
            runs.append([f"{k}={format_value(v)}" for k, v in zip(keys, combo, strict=True)])
    for overrides in experiments or []:
        runs.append([str(o) for o in overrides])
    return runs


def _override_columns(overrides: Sequence[str]) -> dict[str, str]:
    out = {}
    for override in overrides:
        key, _, value = override.partition("=")
        out[key.lstrip("+~")] = value
    return out


def results_table(
    root: str, runs: Sequence[Mapping[str, Any]], metrics: Sequence[str] | None = None
) -> Any:  # pandas.DataFrame
    """One row per experiment: name, status, attempts (how many times it was started: more than 1 after a
    transient failure or a lost Dask worker), its overrides, seconds, then its metrics as
    ``<file>:<metric>`` columns (``pretrain/tiny:ood_score``), filtered by the glob ``metrics`` patterns."""
    import pandas as pd

    done = [r["experiment"] for r in runs if r["status"] == "completed"]
    shown = read_metrics(root, done) if done else {}
    rows = []
    for r in runs:
        row: dict[str, Any] = {"experiment": r["experiment"], "status": r["status"], "attempts": r.get("attempts")}
        row.update(_override_columns(r["overrides"]))
        row["seconds"] = r.get("seconds")
        for file, values in shown.get(r["experiment"], {}).items():
            for key, value in values.items():
                column = f"{metric_file_label(file)}:{key}"
                if metrics is None or any(fnmatch.fnmatchcase(column, p) for p in metrics):
                    row[column] = value
        if r.get("error"):
            row["error"] = r["error"]
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dask_runner(address: str | None = None, n_workers: int = 2, processes: bool | None = None) -> Any:
    """prefect-dask's DaskTaskRunner: the Dask scheduler at ``address``, else a LocalCluster of
    ``n_workers`` single-threaded workers on loopback (each experiment is a ``dvc`` subprocess).

    ``processes``: worker processes (None: when a Prefect API URL is configured, which they are told; a
    temporary local server lives in this process only, so without one the workers are threads here)."""
    from prefect.settings import PREFECT_API_URL
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    api = PREFECT_API_URL.value()
    if processes is None:
        processes = bool(api)
    cluster: dict[str, Any] = {
        "n_workers": n_workers,
        "threads_per_worker": 1,
        "processes": processes,
        "host": "127.0.0.1",
        # explicit: with processes=False distributed picks "inproc://", which refuses a host (2026.x: "Scheduler
        # failed to start", ValueError in inproc.validate_address); TCP on loopback works for threads and processes
        "protocol": "tcp://",
        "dashboard_address": "127.0.0.1:8787" if importlib.util.find_spec("bokeh") else None,
    }
    if processes and api:
        cluster["env"] = {"PREFECT_API_URL": api}  # the task runs report to this flow's server
    return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=cluster)


def runner_from_env() -> Any:
    """The sweep's default runner: NAR_DASK_ADDRESS (a Dask scheduler) or a LocalCluster of
    NAR_DASK_WORKERS workers (default 2). Deployments use it; run_sweep can pick another per call."""
    return dask_runner(os.environ.get("NAR_DASK_ADDRESS") or None, int(os.environ.get("NAR_DASK_WORKERS", "2")))


def check_scheduler(address: str, timeout: float = 10.0) -> None:
    """Refuse, as one line, an address where no Dask scheduler answers within ``timeout`` seconds: the task runner
    would otherwise fail inside the flow with a page of traceback (or wait 30 s first)."""
    from distributed import Client

    try:
        Client(address, timeout=timeout, set_as_default=False).close()
    except Exception as exc:  # OSError / TimeoutError (nothing there), ValueError (not an address)
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SchedulerUnavailable(
            f"no Dask scheduler answers at {address} ({detail[:300]}); start one (`dask scheduler`) and its "
            "workers, or leave out --address to run on a local cluster"
        ) from None


def starts_dir(root: str | Path, prefix: str) -> Path:
    """Where a sweep's experiments record each start (.dvc/tmp: git-ignored, in the workspace every worker
    shares). A Dask worker lost in the middle of an experiment tells nobody: Dask runs the task again on
    another worker, and only the extra start shows that it did."""
    return Path(root) / ".dvc" / "tmp" / "nar-sweep" / prefix


def _starts(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except OSError:
        return []


@task(
    name="dvc-experiment",
    task_run_name="{name}",
    cache_policy=NO_CACHE,
    retries=DEFAULT_RETRIES,
    retry_condition_fn=retry_if_transient,
)
def sweep_experiment(
    root: str, name: str, overrides: Sequence[str], targets: Sequence[str] | None, starts: str
) -> dict[str, Any]:
    """:func:`flows.blueprint.run_experiment`, its start recorded first in ``starts/<name>``."""
    path = Path(starts) / name
    earlier = _starts(path)
    with open(path, "a") as f:  # one short appended line: whole even when two workers write at once
        f.write(f"{socket.gethostname()} pid {os.getpid()} {time.strftime('%H:%M:%S')}\n")
    if len(earlier) >= int(task_run.run_count or 1):  # more earlier starts than Prefect's own retries
        get_run_logger().warning(
            "experiment %s: start %d; earlier: %s (a start that did not end lost its Dask worker)",
            name, len(earlier) + 1, "; ".join(earlier),
        )  # fmt: skip
    return run_experiment.fn(root, name, overrides, targets)


def _lost(future: Any) -> str:
    """Why a Dask future ended without a final Prefect state (the scheduler gone, its workers killed)."""
    wrapped = future.wrapped_future
    try:
        exc = wrapped.exception(timeout=5)
    except Exception as err:
        exc = err
    if exc is None or isinstance(exc, asyncio.CancelledError):  # the client lost its scheduler: all cancelled
        detail = f"its Dask future was {wrapped.status}"
    else:
        detail = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return (
        f"no result from Dask ({detail[:500]}): the scheduler or the worker running it went away; "
        "a worker that is still up may finish it: `dvc exp ls` lists it if it did"
    )


class _WithoutTraceback(logging.Filter):
    """distributed's errors as one line each: when a sweep's client loses its scheduler, closing the client
    logs the reconnection it cancels (a CancelledError with two chained tracebacks: dropped) and the sweep
    says itself what was lost."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or record.exc_info[1] is None:
            return True
        exc = record.exc_info[1]
        if isinstance(exc, asyncio.CancelledError):
            return False
        record.msg = f"{record.getMessage().strip()} ({type(exc).__name__}: {exc})".strip()
        record.args, record.exc_info, record.exc_text = None, None, None
        return True


@contextlib.contextmanager
def _quiet_dask_errors() -> Iterator[None]:
    loggers = [logging.getLogger(n) for n in ("distributed.client", "distributed.utils", "distributed.core")]
    quiet = _WithoutTraceback()
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)


def results_path(root: str | Path, csv: str | None, prefix: str) -> Path:
    """Where the results table goes: ``csv``, else sweeps/<prefix>.csv; refused (UserError) outside ``root``
    (a --name with a path in it would lead the default file out too)."""
    return inside_workspace(csv or f"sweeps/{prefix}.csv", "--csv" if csv else "--name", root)


@flow(
    name="nar-sweep",
    description="A grid of parameter overrides as parallel DVC experiments, one results table.",
    task_runner=runner_from_env(),
)
def sweep(
    root: str = ".",
    grid: dict[str, list[Any]] | None = None,
    experiments: list[list[str]] | None = None,
    targets: list[str] | None = None,
    name: str | None = None,
    metrics: list[str] | None = None,
    csv: str | None = None,
    retries: int = DEFAULT_RETRIES,
    retry_delay_seconds: float = 10.0,
) -> list[dict[str, Any]] | State:
    """Run every grid point as a DVC experiment, in parallel on this flow's task runner.

    grid: override key -> values; every combination is one experiment. experiments: explicit lists of
    ``key=value`` overrides, added after the grid. targets: stages to reproduce (default: the whole
    pipeline; DVC restores unchanged stages from its cache). name: experiment name prefix (default
    ``sweep-<time>``; experiments are ``<name>-001``, ...). metrics: glob patterns of result columns to keep
    (``pretrain/*:ood_score``). csv: where to write the table (default ``sweeps/<name>.csv`` in ``root``).
    An experiment that fails, or is lost with its Dask worker or scheduler, does not stop the others; the table
    is written all the same and the flow then ends Failed (a direct call raises :class:`SweepFailed`).
    """
    logger = get_run_logger()
    root = str(Path(root).resolve())
    runs = expand_grid(grid, experiments)
    if not runs:
        raise ValueError("nothing to sweep: give a grid (key -> values) or a list of experiments")
    if not has_commit(root):
        raise ValueError(f"DVC experiments start from a git commit; {root} has none (commit dvc.yaml, params.yaml)")
    prefix = name or time.strftime("sweep-%Y%m%d-%H%M%S")
    out = results_path(root, csv, prefix)  # refused before any experiment runs
    names = [f"{prefix}-{i:03d}" for i in range(1, len(runs) + 1)]
    create_tracking_store(root)  # once, here: the experiments would race to create a fresh mlflow.db
    starts = starts_dir(root, prefix)
    shutil.rmtree(starts, ignore_errors=True)  # a sweep run again under the same name counts afresh
    starts.mkdir(parents=True)
    logger.info("%d experiments on %s, targets %s", len(runs), root, targets or "all stages")
    task = sweep_experiment.with_options(retries=retries, retry_delay_seconds=retry_delay_seconds)
    futures = [task.submit(root, n, o, targets, str(starts)) for n, o in zip(names, runs, strict=True)]
    results = []
    for exp_name, overrides, future in zip(names, runs, futures, strict=True):
        future.wait()
        state = future.state
        attempts = len(_starts(starts / exp_name))
        if state.is_completed():
            result = future.result()
            results.append({**result, "status": "completed", "attempts": max(attempts, result.get("attempts", 1))})
        else:
            # not final: Dask gave up on it (its workers killed) or lost its scheduler; Prefect never heard an end
            error = state.result(raise_on_failure=False) if state.is_final() else _lost(future)
            results.append(
                {
                    "experiment": exp_name,
                    "overrides": overrides,
                    "status": "failed" if state.is_final() else "lost",
                    "attempts": attempts,
                    "error": str(error)[:2000],
                }
            )
    table = results_table(root, results, metrics)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    logger.info("results of %d experiments: %s\n%s", len(table), out, table.to_string(index=False, max_colwidth=40))
    records = [{k: _cell(v) for k, v in row.items()} for row in table.to_dict("records")]
    create_table_artifact(table=records, key="nar-sweep-results", description=f"Sweep {prefix}: one row per experiment")
    short = table.drop(columns=[c for c in ("error",) if c in table.columns])
    create_markdown_artifact(
        markdown=f"# Sweep `{prefix}`\n\n{len(table)} experiments in `{root}`; table in `{out}`.\n\n"
        + markdown_table(list(short.columns), short.itertuples(index=False))
        + "\n\nApply one to the workspace with `dvc exp apply <experiment>`; compare with `dvc exp show`.\n",
        key="nar-sweep-report",
        description=f"Sweep {prefix}",
    )
    failed = [f"{r['experiment']} ({r['status']})" for r in results if r["status"] != "completed"]
    if failed:
        # a failed state, not an exception raised here: Prefect would print its traceback under the table
        message = f"{len(failed)} of {len(results)} experiments did not complete: {', '.join(failed)} (see {out})"
        return Failed(message=message, data=SweepFailed(message))
    return records


def run_sweep(
    root: str = ".",
    grid: Mapping[str, Sequence[Any]] | None = None,
    experiments: Sequence[Sequence[str]] | None = None,
    *,
    address: str | None = None,
    n_workers: int = 2,
    processes: bool | None = None,
    **kwargs: Any,
) -> Any:
    """Run flow ``nar-sweep`` on Dask (see :func:`dask_runner`); returns the results as a DataFrame."""
    import pandas as pd

    if kwargs.get("csv") or kwargs.get("name"):  # refused here, before Dask and the flow start, as one line
        results_path(root, kwargs.get("csv"), kwargs.get("name") or "")
    if address:
        check_scheduler(address)
    runner = dask_runner(address, n_workers, processes)
    with _quiet_dask_errors() if address else contextlib.nullcontext():
        records = sweep.with_options(task_runner=runner)(
            root=root,
            grid={k: list(v) for k, v in grid.items()} if grid else None,
            experiments=[list(e) for e in experiments] if experiments else None,
            **kwargs,
        )
    return pd.DataFrame(records)
