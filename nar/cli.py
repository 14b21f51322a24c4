"""``nar``: the command-line entry points that dvc.yaml runs.

Each command loads and validates params.yaml first (bad configuration stops it before any
work, with one line naming the key), then calls one library function. Heavy imports (torch,
mlflow) happen inside the command that needs them, so ``nar generate`` starts fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import zlib
from pathlib import Path
from typing import Any

from nar.config import PretrainParams, check_node_counts, is_split_name, load_params
from nar.errors import NarError, UserError
from nar.limits import inside_workspace


def split_seed(seed: int, algorithm: str, split: str) -> int:
    """A distinct, stable seed per (algorithm, split), so splits never share graphs by accident."""
    return (seed * 1_000_003 + zlib.crc32(f"{algorithm}/{split}".encode())) % 2**63


# --------------------------------------------------------------------------- generate


def cmd_generate(args: argparse.Namespace) -> None:
    from nar.data.generate import check_split_memory, generate_split
    from nar.data.summary import summarize
    from nar.limits import check_writable, write_problem

    params = load_params(args.params, "generate").generate
    algorithms = [args.algorithm] if args.algorithm else list(params.algorithms)
    from nar.algorithms import ALGORITHMS

    for name in algorithms:
        if name not in ALGORITHMS:
            raise UserError(f"--algorithm {name!r} is unknown; available: {sorted(ALGORITHMS)}")
    splits = dict(params.splits)
    if args.split is not None and not is_split_name(args.split):
        raise UserError(
            f"--split {args.split!r}: allowed: a split name of letters, digits and _ "
            "(it names the directory <out>/<algorithm>/<split>; choose the place with --out)"
        )
    if args.split:
        if args.split not in splits and (args.count is None or not args.size):
            raise UserError(
                f"--split {args.split!r} is not in params.yaml (splits: {sorted(splits)}); "
                "give --count and --size to define it"
            )
        splits = {args.split: splits.get(args.split)}
    seed = params.seed if args.seed is None else args.seed
    if seed < 0:
        raise UserError(f"--seed must be >= 0, got {seed}")
    if args.count is not None and args.count < 1:
        raise UserError(f"--count must be >= 1, got {args.count}")
    if args.size:
        check_node_counts(args.size, "--size", indexed=False)  # the params rule (generate.splits.*.sizes)
    sampler = params.sampler.sampler()
    out_root = inside_workspace(args.out, "--out")
    plan = {}
    for name in algorithms:  # all before any is written: a symlinked <out>/<algorithm>/<split> may lead out,
        for split, split_params in splits.items():  # a later split may not fit in memory
            out_dir = inside_workspace(out_root / name / split, "--split directory")
            count = args.count if args.count is not None else split_params.count
            sizes = tuple(args.size) if args.size else split_params.sizes
            check_split_memory(name, count, sizes, params.shard_size, f"generate {name}/{split}")
            check_writable(out_dir, "--out")
            plan[name, split] = (count, sizes)
    for name in algorithms:
        for split in splits:
            count, sizes = plan[name, split]
            out_dir = out_root / name / split
            print(f"generate {name}/{split}: {count} graphs, sizes {list(sizes)} -> {out_dir}", file=sys.stderr)
            try:
                generate_split(
                    algorithm=name,
                    count=count,
                    sizes=sizes,
                    seed=split_seed(seed, name, split),
                    out_dir=out_dir,
                    sampler=sampler,
                    shard_size=params.shard_size,
                    progress=not args.no_progress,
                    split=split,
                )
            except OSError as exc:  # e.g. the disk filled up: finished shards are whole and listed for a rerun
                problem = write_problem(exc)
                if problem is None:
                    raise
                raise UserError(f"{problem}; the shards finished so far are kept and a rerun reuses them") from None
        print(summarize(out_root / name).to_string(), file=sys.stderr)


# --------------------------------------------------------------------------- pretrain


def pretrain_run(params: PretrainParams, name: str, *, progress: bool, **kwargs: Any) -> dict[str, Any]:
    """Train ``pretrain.runs.<name>`` of a validated ``pretrain`` section.

    What ``nar pretrain`` runs, and what benchmarks/bench_pretrain_profiles.py times. ``kwargs``
    go to :func:`nar.training.pretrain.run_pretrain` (``data_root``, ``track``, output roots).
    """
    import dataclasses

    from nar.training.pretrain import run_pretrain

    run = params.runs[name]
    train_config = dataclasses.replace(run.train, device=params.device, progress=progress)
    return run_pretrain(
        name,
        run.model,
        train_config,
        batch_size=run.batch_size,
        train_data=run.train_data,
        mix=run.mix,
        scale_suite=run.scale_suite,
        **kwargs,
    )


def cmd_pretrain(args: argparse.Namespace) -> None:
    params = load_params(args.params, "pretrain").pretrain
    if not params.runs:
        raise UserError("params.yaml has no pretrain.runs: nothing to pretrain")
    names = [args.run] if args.run else list(params.runs)
    for name in names:
        if name not in params.runs:
            raise UserError(f"--run {name!r} is not in pretrain.runs; available: {sorted(params.runs)}")
    from nar.limits import check_writable

    # run_pretrain's default output roots: a read-only one is refused before minutes of training, not after
    for root in ("models/pretrain", "metrics/pretrain", "plots/pretrain", "checkpoints/pretrain"):
        check_writable(root, "output directory")
    for name in names:
        run = params.runs[name]
        print(f"pretrain {name}: {run.model.processor.kind}, {list(run.train.algorithms)}", file=sys.stderr)
        metrics = pretrain_run(
            params,
            name,
            progress=not args.no_progress,
            data_root=Path(args.data),  # read only: may live anywhere (e.g. a shared data mount)
            track=not args.no_mlflow,
        )
        for algo, scores in metrics["algorithms"].items():
            tests = ", ".join(f"n={label}: {100 * s['score']:.2f}%" for label, s in scores["test"].items())
            print(f"  {algo}: val {100 * scores['val'].get('score', float('nan')):.2f}%, test {tests}", file=sys.stderr)
        scale = metrics.get("scale") or {}
        if "score" in scale:
            print(f"  scale suite: {scale['score']:.2f}% (mean over algorithms and graph families)", file=sys.stderr)
        elif "skipped" in scale:
            print(f"  scale suite: not run ({scale['skipped']})", file=sys.stderr)


# --------------------------------------------------------------------------- main


# Packages above nar (flows: `nar serve`, `nar blueprint`, `nar sweep`) add their commands through this entry-point
# group (pyproject.toml), so that nar never imports them: each entry is a function ``add(subparsers)``.
COMMAND_GROUP = "nar.commands"


def add_plugin_parsers(sub: Any) -> None:
    """Add the commands of every installed ``nar.commands`` entry point, in name order."""
    from importlib.metadata import entry_points

    for entry in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        entry.load()(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nar", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="configuration file (default: params.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="generate synthetic algorithm traces (inputs, hints, outputs)")
    gen.add_argument("--algorithm", help="one algorithm (default: all of generate.algorithms)")
    gen.add_argument("--split", help="one split (default: all of generate.splits)")
    gen.add_argument("--count", type=int, help="number of graphs per split (overrides params)")
    gen.add_argument("--size", type=int, action="append", help="node count; repeat for a list (overrides params)")
    gen.add_argument("--seed", type=int, help="base seed (overrides generate.seed)")
    gen.add_argument("--out", default="data/synthetic", help="output root inside the workspace")
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")
    gen.set_defaults(func=cmd_generate)

    pre = sub.add_parser("pretrain", help="pretrain encoder, processor and decoder on the synthetic traces")
    pre.add_argument("--run", help="one entry of pretrain.runs (default: all)")
    pre.add_argument("--data", default="data/synthetic", help="dataset root inside the workspace")
    pre.add_argument("--no-mlflow", action="store_true", help="do not track the run in MLflow")
    pre.add_argument("--no-progress", action="store_true", help="no progress bar")
    pre.set_defaults(func=cmd_pretrain)

    from nar.natural.cli import add_natural_parser
    from nar.registry.cli import add_register_parser, add_registry_parser

    add_natural_parser(sub)
    from nar.transfer.cli import add_evaluate_parser, add_transfer_parser

    add_transfer_parser(sub)
    add_evaluate_parser(sub)
    add_plugin_parsers(sub)

    add_register_parser(sub)
    add_registry_parser(sub)
    from nar.execute_cli import add_execute_parser

    add_execute_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.func(args)
        sys.stdout.flush()  # inside the try: a closed pipe shows here, not as a traceback at exit
    except BrokenPipeError:
        # `nar registry list | head` ends quietly, as shell tools do. Not SIGPIPE's default action: that
        # also killed `nar transfer` when it stopped its worker pool (a write to the dead workers' pipe)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13
    except NarError as exc:
        print(f"nar {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # a read-only or full output directory is the user's to fix, not a bug: one line naming the file
        # (outputs are written to temporary names and moved into place, so none is left half written)
        from nar.limits import write_problem

        problem = write_problem(exc)
        if problem is None:
            raise
        print(f"nar {args.command}: error: {problem}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
