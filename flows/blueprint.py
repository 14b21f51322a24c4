"""Flow ``nar-blueprint``: the DVC pipeline, one Prefect task per stage, in dependency order.

Each task runs ``dvc repro --single-item <stage>``, so DVC's cache decides what reruns; the task logs
DVC's and the stage's output (once) and whether the stage ran, was skipped (unchanged) or was restored
from DVC's run cache. A failed stage fails its task with the stage's own error; only transient
failures (DVC's repo lock held by another process, MLflow or a remote unreachable) are retried.

With parameter overrides (``key=value``, DVC's ``-S`` syntax: ``+key=value`` adds a key) the selected
stages run instead as one isolated DVC experiment, ``dvc exp run --temp``: the workspace is not
touched, nothing stacks on the next run, and ``dvc exp show`` / ``dvc exp apply <name>`` find it.

Run it: ``nar blueprint`` (flows/cli.py), ``python -m flows.blueprint``, or from Python::

    from flows.blueprint import blueprint
    blueprint(root=".", stages=["pretrain"], overrides=["pretrain.runs.bellman_ford.train.steps=500"])
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.report import blueprint_markdown, headline_table, read_metrics
from flows.stages import (
    StageFailed,
    has_commit,
    pipeline_stages,
    retry_if_transient,
    run_dvc,
    select_stages,
    tracking_env,
)

DEFAULT_RETRIES = 2
DEFAULT_RETRY_DELAY = 30.0
_DESCRIBE = {
    "ran": "ran",
    "skipped": "skipped: unchanged since the last run (dvc.lock)",
    "restored": "not rerun: outputs restored from DVC's run cache",
}


def _attempt() -> int:
    from prefect.runtime import task_run

    return int(task_run.run_count or 1)


@task(
    name="dvc-stage",
    task_run_name="{stage}",
    cache_policy=NO_CACHE,  # DVC decides what reruns; a Prefect cache keyed on the name would skip needed work
    retries=DEFAULT_RETRIES,
    retry_delay_seconds=DEFAULT_RETRY_DELAY,
    retry_condition_fn=retry_if_transient,
)
def run_stage(root: str, stage: str, force: bool = False) -> dict[str, Any]:
    """``dvc repro --single-item <stage>`` in ``root``; its output goes to this task's log."""
    logger = get_run_logger()
    attempt = _attempt()
    if attempt > 1:
        logger.info("%s: attempt %d", stage, attempt)
    run = run_dvc(["repro", "--single-item", *(["--force"] if force else []), stage], root, log=logger.info)
    if run.returncode != 0:
        raise StageFailed(f"stage {stage!r}", run.returncode, run.errors())
    status = run.outcomes.get(stage, "skipped")
    logger.info("%s: %s (%.1f s)", stage, _DESCRIBE[status], run.seconds)
    return {"stage": stage, "status": status, "seconds": round(run.seconds, 1), "attempts": attempt}


@task(
    name="dvc-experiment",
    task_run_name="{name}",
    cache_policy=NO_CACHE,
    retries=DEFAULT_RETRIES,
    retry_delay_seconds=DEFAULT_RETRY_DELAY,
    retry_condition_fn=retry_if_transient,
)
def run_experiment(
    root: str, name: str, overrides: Sequence[str], targets: Sequence[str] | None = None, force: bool = False
) -> dict[str, Any]:
    """``dvc exp run --temp -n <name> -S <override>... [targets]``: an isolated experiment in a copy of the
    workspace (DVC's repo lock is held only to set it up and to save it, so experiments run in parallel)."""
    logger = get_run_logger()
    attempt = _attempt()
    args = ["exp", "run", "--temp", "-n", name, *(["--force"] if force else [])]
    for override in overrides:
        args += ["-S", override]
    args += list(targets or [])
    logger.info("experiment %s: dvc %s (attempt %d)", name, " ".join(args), attempt)
    run = run_dvc(args, root, log=logger.info, env=tracking_env(root))
    if run.returncode != 0:
        raise StageFailed(f"experiment {name!r} ({' '.join(overrides)})", run.returncode, run.errors())
    outcomes = run.outcomes
    for stage, status in outcomes.items():
        logger.info("experiment %s: %s: %s", name, stage, _DESCRIBE[status])
    logger.info("experiment %s finished in %.1f s", name, run.seconds)
    return {
        "experiment": name,
        "overrides": list(overrides),
        "outcomes": outcomes,
        "seconds": round(run.seconds, 1),
        "attempts": attempt,
    }


@contextlib.contextmanager
def workspace_lock(root: str, timeout: float, logger: Any) -> Iterator[None]:
    """One blueprint run at a time per workspace: a second one waits (up to ``timeout`` s) instead of
    interleaving its stages with the first's. Released by the OS if the process dies."""
    from filelock import FileLock, Timeout

    path = Path(root) / ".dvc" / "tmp" / "nar-blueprint.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        logger.info("another nar-blueprint run is using %s; waiting for it (up to %.0f s)", root, timeout)
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise RuntimeError(
                f"another nar-blueprint run has held {root} for over {timeout:.0f} s (lock file {path}); "
                "try again when it has finished"
            ) from None
    try:
        yield
    finally:
        lock.release()


def _publish(root: str, results: list[dict[str, Any]], rev: str | None, mlflow_ui: str | None, logger: Any) -> None:
    """The Markdown report and the metrics table, as artifacts of this flow run."""
    try:
        metrics = read_metrics(root, [rev] if rev else None).get(rev or "workspace", {})
        markdown = blueprint_markdown(root, results, metrics, rev=rev, mlflow_ui=mlflow_ui)
        create_markdown_artifact(
            markdown=markdown,
            key="nar-blueprint-report",
            description="Evaluation, registered processor and stages of this nar-blueprint run",
        )
        rows = headline_table(root, metrics, rev)
        if rows:
            create_table_artifact(
                table=rows,
                key="nar-blueprint-metrics",
                description="Headline figures, rounded (pretraining ood_score, transfer results and verdict; "
                "every number in the metrics files and `dvc metrics show`)" + (f", experiment {rev}" if rev else ""),
            )
    except Exception as exc:  # reporting must never hide what the stages did
        logger.warning("could not publish the report artifacts: %s: %s", type(exc).__name__, exc)


@flow(name="nar-blueprint", description="The NAR pipeline, one DVC stage per task; DVC's cache decides what reruns.")
def blueprint(
    root: str = ".",
    stages: list[str] | None = None,
    algorithms: list[str] | None = None,
    tasks: list[str] | None = None,
    overrides: list[str] | None = None,
    upstream: bool = True,
    force: bool = False,
    experiment_name: str | None = None,
    retries: int = DEFAULT_RETRIES,
    retry_delay_seconds: float = DEFAULT_RETRY_DELAY,
    mlflow_ui: str | None = None,
    lock_timeout: float = 3600.0,
) -> dict[str, Any]:
    """Run the pipeline at ``root`` stage by stage.

    stages: stage names (``pretrain@tiny``) or groups (``pretrain``); default all. With ``upstream`` the
        stages they depend on are included, as ``dvc repro <stage>`` would.
    algorithms / tasks: keep only these items of the generate (algorithm) and natural/transfer (task) stages.
    overrides: ``key=value`` params (DVC ``-S``); the selection then runs as one DVC experiment
        (``dvc exp run --temp``, named ``experiment_name``), which also brings its stages' upstream up to date.
    force: rerun the selected stages even if unchanged (``dvc repro --force``).
    retries / retry_delay_seconds: for transient failures only.
    mlflow_ui: base URL of the MLflow UI for the report's link (default: NAR_MLFLOW_UI_URL, the tracking
        server, or http://127.0.0.1:5000).
    lock_timeout: how long to wait for another blueprint run on the same workspace.
    """
    logger = get_run_logger()
    root = str(Path(root).resolve())
    ordered, deps = pipeline_stages(root)
    selected = select_stages(ordered, deps, stages, algorithms, tasks, with_upstream=upstream)
    logger.info("workspace %s: %d of %d stages: %s", root, len(selected), len(ordered), ", ".join(selected))
    options = {"retries": retries, "retry_delay_seconds": retry_delay_seconds}
    results: list[dict[str, Any]] = []
    rev = None
    try:
        if overrides:
            if not has_commit(root):
                raise ValueError(f"overrides run as a DVC experiment, which needs a git commit in {root}")
            rev = experiment_name or time.strftime("blueprint-%Y%m%d-%H%M%S")
            targets = None if stages is None and algorithms is None and tasks is None else selected
            try:
                exp = run_experiment.with_options(**options)(root, rev, list(overrides), targets, force)
            except BaseException:
                results.append({"stage": f"experiment {rev}", "status": "failed"})
                rev = None
                raise
            attempts = exp["attempts"]
            results = [{"stage": s, "status": o, "attempts": attempts} for s, o in exp["outcomes"].items()]
        else:
            with workspace_lock(root, lock_timeout, logger):
                for i, stage in enumerate(selected):
                    try:
                        results.append(run_stage.with_options(**options)(root, stage, force))
                    except BaseException:
                        results.append({"stage": stage, "status": "failed"})
                        results += [{"stage": later, "status": "not run"} for later in selected[i + 1 :]]
                        raise
    finally:
        _publish(root, results, rev, mlflow_ui, logger)
    ran = [r["stage"] for r in results if r["status"] == "ran"]
    if ran:
        logger.info("ran %d stage(s): %s; the others were up to date", len(ran), ", ".join(ran))
    else:
        logger.info("nothing to rerun: every stage was up to date")
    return {"root": root, "experiment": rev, "stages": results}


if __name__ == "__main__":
    blueprint()
