"""Dataset generation speed: trajectories per second on one core.

Two figures per (algorithm, n), best of 3 repeats:

* ``sample_run_split_per_s``: sampling the graphs, running the batched algorithm and
  splitting the batch into per-graph trajectories (``nar.data.sample_trajectories``); the
  figure comparable to CLRS's ``build_sampler``.
* ``with_write_per_s``: the whole ``generate_split`` (the above, plus narrowing, the
  vectorised domain check, safetensors + gzip and atomic shard and manifest writes).

One core: BLAS/OpenMP thread counts are set to 1 before numpy is imported, the process is
pinned to one CPU where the OS allows it, and torch is never imported.

Usage::

    python benchmarks/bench_generate.py [--quick] [--clrs-json PATH] [--clrs-venv VENV] [--out PATH]

``--clrs-venv`` times ``clrs.build_sampler`` for every (algorithm, n) right after ours, in
the same pinned process tree (best of the same number of repeats): the side-by-side ratio.

``--clrs-json`` takes the JSON line printed by ``shared/bench/clrs_reference.py`` (run on
the same machine) and adds the CLRS figures (``sampler_<algo>_n<n>_per_s``) and our ratios.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import nar  # noqa: E402
from nar.algorithms import ALGORITHMS  # noqa: E402
from nar.data.generate import generate_split, sample_trajectories  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Targets from the issue: bellman_ford on one core, sampling + algorithm + split.
TARGETS = {("bellman_ford", 16): 10_000, ("bellman_ford", 64): 850}
COUNTS = {16: 20_000, 64: 2_000}
QUICK_COUNTS = {16: 4_000, 64: 400}


def pin_to_one_core() -> list[int] | None:
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[0]})
    return [cpus[0]]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def best_time(fn, repeats: int) -> float:
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        fn(r)
        times.append(time.perf_counter() - start)
    return min(times)


def measure(algorithm: str, n: int, count: int, repeats: int) -> dict[str, float]:
    lengths: list[int] = []

    def in_memory(r: int) -> None:
        trajs = sample_trajectories(algorithm, count, [n], seed=r)
        lengths[:] = [t.length for t in trajs]

    def to_disk(r: int) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            generate_split(algorithm, count, [n], seed=r, out_dir=Path(tmp) / "split", progress=False)

    t_mem = best_time(in_memory, repeats)
    t_disk = best_time(to_disk, repeats)
    return {
        "count": count,
        "sample_run_split_per_s": round(count / t_mem, 1),
        "with_write_per_s": round(count / t_disk, 1),
        "mean_hint_steps": round(float(np.mean(lengths)), 2),
    }


def read_clrs(path: Path) -> dict:
    lines = [ln for ln in path.read_text().splitlines() if ln.strip().startswith("{")]
    if not lines:
        raise SystemExit(f"{path}: no JSON line found (expected the output of clrs_reference.py)")
    return json.loads(lines[-1])


CLRS_SNIPPET = """
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
import clrs
algo, n, count, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rates = []
for r in range(repeats):
    t0 = time.perf_counter()
    clrs.build_sampler(algo, num_samples=count, length=n, seed=r)
    rates.append(count / (time.perf_counter() - t0))
print(json.dumps(max(rates)))
"""
CLRS_COUNTS = {16: 4_000, 64: 400}


def clrs_rate(venv: Path, algorithm: str, n: int, repeats: int) -> float:
    """Best-of-``repeats`` trajectories/s of ``clrs.build_sampler`` in the CLRS venv, on this core."""
    count = CLRS_COUNTS.get(n, 200)
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-c", CLRS_SNIPPET, algorithm, str(n), str(count), str(repeats)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithms", nargs="+", default=["bellman_ford", "bfs"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[16, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer graphs (a smoke run, noisier numbers)")
    parser.add_argument("--clrs-json", type=Path, help="output of shared/bench/clrs_reference.py on this machine")
    parser.add_argument(
        "--clrs-venv",
        type=Path,
        help="a venv with dm-clrs (shared/bench/setup_clrs_venv.sh): time its samplers side by side, same core",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "generate.json")
    args = parser.parse_args(argv)

    pinned = pin_to_one_core()
    algorithms = [a for a in args.algorithms if a in ALGORITHMS]
    skipped = sorted(set(args.algorithms) - set(algorithms))
    counts = QUICK_COUNTS if args.quick else COUNTS
    results = []
    for algorithm in algorithms:
        for n in args.sizes:
            count = counts.get(n, max(200, 2**22 // (n * n * 16)))
            row = {"algorithm": algorithm, "n": n, **measure(algorithm, n, count, args.repeats)}
            target = TARGETS.get((algorithm, n))
            if target:
                row["target_per_s"] = target
                row["meets_target"] = row["sample_run_split_per_s"] >= target
            if args.clrs_venv:
                row["clrs_side_by_side_per_s"] = round(clrs_rate(args.clrs_venv, algorithm, n, args.repeats), 1)
                row["ratio_side_by_side"] = round(row["sample_run_split_per_s"] / row["clrs_side_by_side_per_s"], 2)
                row["ratio_with_write_side_by_side"] = round(
                    row["with_write_per_s"] / row["clrs_side_by_side_per_s"], 2
                )
            results.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    assert "torch" not in sys.modules, "generation must not import torch"

    report: dict = {
        "benchmark": "generate",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpu": cpu_model(),
            "cpu_count": os.cpu_count(),
            "pinned_cpus": pinned,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "nar": nar.__version__,
        },
        "settings": {"repeats": args.repeats, "statistic": "best", "quick": args.quick, "threads": 1},
        "skipped_algorithms": skipped,
        "results": results,
    }
    if args.clrs_json:
        clrs = read_clrs(args.clrs_json)
        report["clrs_reference"] = clrs
        for row in results:
            ref = clrs.get(f"sampler_{row['algorithm']}_n{row['n']}_per_s")
            if ref:
                row["clrs_per_s"] = ref
                row["ratio_vs_clrs"] = round(row["sample_run_split_per_s"] / ref, 2)
                row["ratio_with_write_vs_clrs"] = round(row["with_write_per_s"] / ref, 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
