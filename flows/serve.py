"""``nar serve``: the deployments, served from this process until it is stopped.

- ``nar-blueprint/nightly``: the whole pipeline on the cron schedule in params.yaml (``flows.schedule``,
  ``flows.timezone``; nightly at 02:00 UTC by default; ``schedule: null`` serves no scheduled deployment);
- ``nar-blueprint/on-demand``: no schedule; run it from the UI ("Run" > "Custom run" to pick stages or
  overrides) or ``prefect deployment run 'nar-blueprint/on-demand'``;
- ``nar-sweep/on-demand``: a sweep (give it a grid) on Dask (NAR_DASK_ADDRESS, NAR_DASK_WORKERS).

Each deployment runs in the workspace given here (``--root``); flows always run stages through DVC.
Point PREFECT_API_URL at a Prefect server (``prefect server start``) to see them in its UI.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from flows.params import FlowsParams, load_flows_params

DEPLOYMENTS = ("nar-blueprint/nightly", "nar-blueprint/on-demand", "nar-sweep/on-demand")


def build_deployments(root: str | Path, params: FlowsParams) -> list[Any]:
    """The RunnerDeployments for ``root`` (an absolute path goes into their parameters)."""
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    from flows.blueprint import blueprint
    from flows.sweep import sweep

    root = str(Path(root).resolve())
    common = {"tags": ["nar"], "entrypoint_type": EntrypointType.MODULE_PATH}
    run_params = {"root": root, "retries": params.retries, "retry_delay_seconds": params.retry_delay_seconds}
    deployments = []
    if params.schedule is not None:
        deployments.append(
            blueprint.to_deployment(
                name="nightly",
                schedules=[Cron(params.schedule, timezone=params.timezone)],
                parameters=run_params,
                description=f"The whole pipeline in {root}, on cron '{params.schedule}' ({params.timezone}).",
                **common,
            )
        )
    deployments.append(
        blueprint.to_deployment(
            name="on-demand",
            parameters=run_params,
            description=f"The pipeline in {root}, when asked; pick stages, algorithms, tasks or overrides.",
            **common,
        )
    )
    deployments.append(
        sweep.to_deployment(
            name="on-demand",
            parameters={"root": root, "retries": params.retries},
            description=f"A grid of overrides as parallel DVC experiments in {root}, on Dask.",
            **common,
        )
    )
    return deployments


def serve(root: str | Path = ".", params: str | Path = "params.yaml", limit: int | None = None) -> None:
    """Serve the deployments until interrupted (Ctrl-C / SIGTERM; the nightly schedule is then paused)."""
    from prefect import serve as prefect_serve

    root = Path(root).resolve()
    params_path = Path(params) if Path(params).is_absolute() else root / params
    settings = load_flows_params(params_path)
    if not os.environ.get("PREFECT_API_URL"):
        print(
            "nar serve: PREFECT_API_URL is not set: the deployments live in a temporary server that ends with "
            "this process. Start `prefect server start --host 127.0.0.1 --port 4200` and "
            "`export PREFECT_API_URL=http://127.0.0.1:4200/api` to see and trigger them in the UI.",
            file=sys.stderr,
        )
    deployments = build_deployments(root, settings)
    schedule = f"cron '{settings.schedule}' ({settings.timezone})" if settings.schedule else "no schedule"
    print(f"nar serve: workspace {root}; nightly: {schedule}", file=sys.stderr)
    prefect_serve(*deployments, limit=limit)
