"""``nar transfer`` and ``nar evaluate``: the transfer sweep and its evaluation.

Hook them into the main parser with ``add_transfer_parser(subparsers)`` and
``add_evaluate_parser(subparsers)`` (``nar.cli.build_parser``). Both read their section of
params.yaml through ``nar.config``.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from pathlib import Path
from typing import Any

from nar.transfer.config import TASKS
from nar.transfer.variants import VARIANTS


def _inside(path: str, what: str) -> Path:
    from nar.limits import inside_workspace

    return inside_workspace(path, what)


def cmd_transfer(args: argparse.Namespace) -> None:
    from nar.config import load_params
    from nar.errors import UserError
    from nar.transfer.interrupt import Interrupted, signals_raise
    from nar.transfer.sweep import run_transfer

    loaded = load_params(args.params, "transfer", "evaluate")
    params = loaded.transfer
    overrides: dict[str, Any] = {}
    if args.processor:
        overrides["processor"] = args.processor
    if args.allow_unverified:
        overrides["allow_unverified"] = True
    if args.variant:
        unknown = [v for v in args.variant if v not in VARIANTS]
        if unknown:
            raise UserError(f"--variant {unknown[0]!r} is unknown; allowed: {list(VARIANTS)}")
        overrides["variants"] = tuple(args.variant)
    if args.workers is not None:
        if args.workers < 1:
            raise UserError(f"--workers must be >= 1, got {args.workers}")
        overrides["workers"] = args.workers
    if args.data:
        overrides["data"] = str(_inside(args.data, "--data"))
    if overrides:
        params = dataclasses.replace(params, **overrides)
    tasks = [args.task] if args.task else list(loaded.evaluate.tasks)  # the one task list (params.yaml)
    try:
        with signals_raise():  # also while torch loads and the data is read, before the sweep's own handling
            for task in tasks:
                run_transfer(
                    task,
                    params,
                    models_root=_inside(args.models, "--models"),
                    metrics_root=_inside(args.metrics, "--metrics"),
                    track=not args.no_mlflow,
                    progress=not args.no_progress,
                )
    except KeyboardInterrupt as exc:  # Interrupted: one line saying what was kept, the signal's exit status
        stopped = exc if isinstance(exc, Interrupted) else Interrupted(signal.SIGINT)
        print(f"nar transfer: {stopped.message}", file=sys.stderr, flush=True)
        raise SystemExit(stopped.exit_code) from None


def cmd_evaluate(args: argparse.Namespace) -> None:
    from nar.config import load_params
    from nar.transfer.evaluate import run_evaluate

    params = load_params(args.params, "evaluate").evaluate
    # paths from params.yaml stay inside the workspace, like the CLI's
    params = dataclasses.replace(
        params,
        report=str(_inside(params.report, "evaluate.report")),
        notes=str(_inside(params.notes, "evaluate.notes")),
    )
    if args.task:
        params = dataclasses.replace(params, tasks=tuple(args.task))
    run_evaluate(
        params,
        metrics_root=_inside(args.metrics, "--metrics"),
        models_root=_inside(args.models, "--models"),
        data_root=_inside(args.data, "--data"),
        plots_root=_inside(args.plots, "--plots"),
        out_metrics=_inside(args.out, "--out"),
        track=not args.no_mlflow,
    )


def add_transfer_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``transfer`` to ``nar``'s subparsers; returns its parser."""
    p = subparsers.add_parser(
        "transfer", help="train new encoders/decoders around the frozen processor, with baselines (per task)"
    )
    p.add_argument("--task", choices=TASKS, help="one task (default: every task of evaluate.tasks in params.yaml)")
    p.add_argument("--variant", action="append", help=f"one of {list(VARIANTS)}; repeat (default: transfer.variants)")
    p.add_argument("--processor", help="registry URI or local directory (overrides transfer.processor)")
    p.add_argument("--allow-unverified", action="store_true", help="accept a local processor without a recorded sha256")
    p.add_argument("--workers", type=int, help="parallel training processes (overrides transfer.workers)")
    p.add_argument("--data", help="natural datasets root (overrides transfer.data)")
    p.add_argument("--models", default="models/transfer", help="output root for models (default: models/transfer)")
    p.add_argument("--metrics", default="metrics/transfer", help="output root for metrics (default: metrics/transfer)")
    p.add_argument("--no-mlflow", action="store_true", help="do not track the runs in MLflow")
    p.add_argument("--no-progress", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_transfer)
    return p


def add_evaluate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``evaluate`` to ``nar``'s subparsers; returns its parser."""
    p = subparsers.add_parser("evaluate", help="aggregate the transfer sweeps: tables, plots, pictures, report")
    p.add_argument("--task", action="append", choices=TASKS, help="one task; repeat (default: evaluate.tasks)")
    p.add_argument("--metrics", default="metrics/transfer", help="where the transfer metrics are")
    p.add_argument("--models", default="models/transfer", help="where the transfer models and predictions are")
    p.add_argument("--data", default="data/natural", help="natural datasets root (for the pictures)")
    p.add_argument("--plots", default="plots/transfer", help="output root for plots (CSV, JSON and PNG)")
    p.add_argument("--out", default="metrics/evaluate.json", help="aggregated metrics file")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    p.set_defaults(func=cmd_evaluate)
    return p
