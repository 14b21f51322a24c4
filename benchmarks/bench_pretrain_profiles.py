"""The pretrain stage's default profiles: out-of-distribution score, wall time and memory per seed.

    python benchmarks/bench_pretrain_profiles.py --run bellman_ford --seeds 0 1 2 \
        [--params params.yaml] [--data data/synthetic] [-S train.steps=8000 ...] [--out PATH]

Runs exactly what ``nar pretrain --run <run>`` runs (``nar.cli.pretrain_run`` with the run's section of
params.yaml, the generated data under ``--data``), once per seed, each in a fresh process so
its wall time, CPU time and peak resident memory are its own; outputs go to a temporary
directory and nothing is logged to MLflow. ``-S key=value`` overrides a key of the run's
section (dotted, YAML value) to try a variant; it is recorded with the result.

Appends one entry per (run, seed) to ``benchmarks/results/pretrain_profiles.json`` with the
score at every test size, the floor of the issue (the Triplet-GMPNN figure) and the
machine's load, and prints mean ± standard error over the seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from profiles import override, profile_params  # beside this script: on the path of `python benchmarks/...`

RESULTS = Path(__file__).resolve().parent / "results" / "pretrain_profiles.json"
# out-of-distribution pointer accuracy (%) at n = 64, Triplet-GMPNN (Ibarz et al. 2022, Table 2)
FLOORS = {"bfs": 99.73, "bellman_ford": 97.39, "dijkstra": 96.05, "mst_prim": 86.39, "floyd_warshall": 48.52}


def child(params: Path, run: str, data: Path, out: Path) -> None:
    """In the fresh process: train and print one JSON line."""
    from nar.cli import pretrain_run
    from nar.config import load_params

    section = load_params(params, "pretrain").pretrain
    wall, cpu = time.perf_counter(), time.process_time()
    metrics = pretrain_run(
        section,
        run,
        progress=False,
        data_root=data,
        models_root=out / "models",
        metrics_root=out / "metrics",
        plots_root=out / "plots",
        checkpoints_root=out / "checkpoints",
        track=False,
    )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    tests = {a: {label: 100 * s["score"] for label, s in v["test"].items()} for a, v in metrics["algorithms"].items()}
    print(
        json.dumps(
            {
                "ood_score": metrics["ood_score"],
                "test": tests,
                "val": {a: 100 * v["val"].get("score", math.nan) for a, v in metrics["algorithms"].items()},
                "best_step": metrics["best_step"],
                "train_seconds": metrics["train_seconds"],
                "wall_s": time.perf_counter() - wall,
                "cpu_s": time.process_time() - cpu,
                "peak_rss_mb": usage.ru_maxrss / 1024,
            }
        )
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="a key of pretrain.runs")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--data", type=Path, default=Path("data/synthetic"))
    p.add_argument("-S", dest="overrides", action="append", default=[], help="key=value in the run's section")
    p.add_argument("--label", help="name of the variant in the results (default: the run's name)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(Path(args.child[0]), args.run, Path(args.child[1]), Path(args.child[2]))
        return 0

    entries = []
    for seed in args.seeds:
        profile = profile_params(args.params, args.run, args.overrides)
        section = profile["pretrain"]["runs"][args.run]
        override(section, "train.seed", seed)
        with tempfile.TemporaryDirectory(prefix="nar-bench-") as tmp:
            params = Path(tmp) / "params.yaml"
            params.write_text(yaml.safe_dump(profile))
            load = os.getloadavg()
            cmd = [sys.executable, __file__, "--run", args.run, "--child", str(params), str(args.data), tmp]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr)
                raise SystemExit(f"seed {seed}: the run failed (exit {proc.returncode})")
            result = json.loads(proc.stdout.strip().splitlines()[-1])
        algos = section["train"]["algorithms"]
        entry = {
            "run": args.run,
            "label": args.label or args.run,
            "seed": seed,
            "overrides": args.overrides,
            "profile": section,
            "floors": {a: FLOORS.get(a) for a in algos},
            "load_1min_before": load[0],
            "load_1min_after": os.getloadavg()[0],
            "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "how": f"python benchmarks/bench_pretrain_profiles.py --run {args.run} --seeds {seed}"
            + "".join(f" -S '{o}'" for o in args.overrides)
            + (f" --label {args.label}" if args.label else ""),
            **result,
        }
        entries.append(entry)
        print(
            f"{entry['label']} seed {seed}: OOD {entry['ood_score']:.2f} % (val {entry['val']}), "
            f"wall {entry['wall_s']:.0f} s, CPU {entry['cpu_s']:.0f} s, peak RSS {entry['peak_rss_mb']:.0f} MB",
            flush=True,
        )
    report = json.loads(args.out.read_text()) if args.out.exists() else {"runs": []}
    report.setdefault("runs", []).extend(entries)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    scores = [e["ood_score"] for e in entries]
    if len(scores) > 1:
        se = statistics.stdev(scores) / math.sqrt(len(scores))
        print(f"{args.run}: OOD mean {statistics.mean(scores):.2f} ± {se:.2f} (s.e., {len(scores)} seeds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
