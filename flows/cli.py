"""``nar serve``, ``nar blueprint`` and ``nar sweep``: the flows from the command line.

``nar.cli.build_parser`` adds them through the ``nar.commands`` entry point (pyproject.toml) that names
``add_flow_parsers``: nar never imports flows.
Prefect and DVC are imported inside the handlers.
"""

from __future__ import annotations

import argparse
from typing import Any

from nar.errors import NarError, UserError


def _params_path(args: argparse.Namespace) -> str:
    return getattr(args, "params", None) or "params.yaml"


def check_prefect_api(timeout: float = 5.0) -> None:
    """Refuse, as one line naming the URL, a PREFECT_API_URL (environment or Prefect profile) where no server
    answers: Prefect itself would fail deep inside a flow with a page of httpx traceback. Any HTTP answer counts
    (a server that wants a key still answers); only an unreachable or malformed address is refused."""
    import urllib.error
    import urllib.request

    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        return  # flows start a temporary local server
    fix = (
        "start one (`prefect server start --host 127.0.0.1 --port 4200`) or unset PREFECT_API_URL "
        "to run on a temporary local server"
    )
    try:
        urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout).close()  # noqa: S310 (http(s) only)
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise UserError(f"PREFECT_API_URL={url}: no Prefect server answers there ({reason}); {fix}") from None


def cmd_serve(args: argparse.Namespace) -> None:
    from flows.serve import serve

    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit {args.limit}: allowed: an integer >= 1 (flow runs at once; omit it for no limit)")
    check_prefect_api()
    serve(args.root, _params_path(args), limit=args.limit)


def cmd_blueprint(args: argparse.Namespace) -> None:
    check_prefect_api()
    from flows.blueprint import blueprint
    from flows.stages import StageFailed, pipeline_stages, select_stages

    try:  # the flow's own selection, checked before Prefect starts: a bad name is one line, not a flow traceback
        select_stages(*pipeline_stages(args.root), args.stage, args.algorithm, args.task, not args.no_upstream)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    try:
        result = blueprint(
            root=args.root,
            stages=args.stage,
            algorithms=args.algorithm,
            tasks=args.task,
            overrides=args.set,
            upstream=not args.no_upstream,
            force=args.force,
            experiment_name=args.name,
            mlflow_ui=args.mlflow_ui,
        )
    except StageFailed as exc:
        raise NarError(str(exc)) from None
    except ValueError as exc:
        raise UserError(str(exc)) from None
    for row in result["stages"]:
        print(f"{row['stage']}: {row['status']}")
    if result["experiment"]:
        print(f"experiment {result['experiment']}: `dvc exp show`, `dvc exp apply {result['experiment']}`")


def cmd_sweep(args: argparse.Namespace) -> None:
    check_prefect_api()
    from flows.sweep import parse_grid, run_sweep

    try:
        grid = parse_grid(args.set or [])
        experiments = [e.split() for e in args.experiment or []]
        table = run_sweep(
            args.root,
            grid,
            experiments,
            address=args.address,
            n_workers=args.workers,
            targets=args.target,
            name=args.name,
            metrics=args.metric,
            csv=args.csv,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    print(table.to_string(index=False))


def add_serve_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "serve",
        help="serve the Prefect deployments (nightly on params.yaml's flows.schedule, and on demand)",
        description="Serve nar-blueprint/nightly (cron from params.yaml flows.schedule), nar-blueprint/on-demand "
        "and nar-sweep/on-demand until interrupted. Set PREFECT_API_URL to a Prefect server to use its UI.",
    )
    p.add_argument("--root", default=".", help="the workspace (git + DVC repo) the flows run in (default: .)")
    p.add_argument("--limit", type=int, help="at most this many flow runs at once")
    p.set_defaults(func=cmd_serve)
    return p


def add_blueprint_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "blueprint",
        help="run the pipeline as the Prefect flow nar-blueprint (one task per DVC stage)",
        description="Run the DVC stages as Prefect tasks in dependency order (DVC's cache decides what reruns). "
        "With -S the selection runs as an isolated DVC experiment (dvc exp run --temp).",
    )
    p.add_argument("--root", default=".", help="the workspace (default: .)")
    p.add_argument("--stage", action="append", help="a stage or stage group; repeat (default: all)")
    p.add_argument("--algorithm", action="append", help="keep only these generate@<algorithm> stages; repeat")
    p.add_argument("--task", action="append", help="keep only these natural/transfer@<task> stages; repeat")
    p.add_argument("-S", "--set", action="append", metavar="KEY=VALUE", help="param override (DVC -S); repeat")
    p.add_argument("--name", help="experiment name (with -S)")
    p.add_argument("--no-upstream", action="store_true", help="do not add the stages the selected ones depend on")
    p.add_argument("--force", action="store_true", help="rerun the selected stages even if unchanged")
    p.add_argument("--mlflow-ui", help="MLflow UI base URL for the report's link (default: http://127.0.0.1:5000)")
    p.set_defaults(func=cmd_blueprint)
    return p


def add_sweep_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "sweep",
        help="run a grid of param overrides as parallel DVC experiments on Dask (flow nar-sweep)",
        description="Every combination of the -S values is one `dvc exp run --temp` experiment; they run in "
        "parallel on a Dask LocalCluster (or --address); the results table goes to CSV and a Prefect artifact. "
        "Example: nar sweep -S pretrain.runs.bellman_ford.train.seed=0,1,2 --target pretrain@bellman_ford",
    )
    p.add_argument("--root", default=".", help="the workspace (default: .)")
    p.add_argument("-S", "--set", action="append", metavar="KEY=V1,V2", help="a grid axis; repeat")
    p.add_argument("--experiment", action="append", metavar="'K=V K2=V2'", help="one explicit experiment; repeat")
    p.add_argument("--target", action="append", help="stage to reproduce (default: the whole pipeline); repeat")
    p.add_argument("--name", help="experiment name prefix (default: sweep-<time>)")
    p.add_argument("--metric", action="append", help="glob of result columns to keep, e.g. 'pretrain/*:ood_score'")
    p.add_argument("--csv", help="results file inside the workspace (default: sweeps/<name>.csv)")
    p.add_argument("--address", help="a Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: a LocalCluster)")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster workers (default: 2)")
    p.set_defaults(func=cmd_sweep)
    return p


def add_flow_parsers(sub: Any) -> None:
    add_serve_parser(sub)
    add_blueprint_parser(sub)
    add_sweep_parser(sub)
