"""Where float32 time goes, and how fast float32 could be at best on this CPU.

    python benchmarks/bench_precision_bound.py [--train-json benchmarks/results/train.json] \
        [--out benchmarks/results/precision_bound.json]

For the prediction of ``bench_train.py`` (32 Bellman-Ford graphs at n = 64, hidden 128, the
reference's 8 hint steps, cache-sized pieces, one thread) it records:

* the share of self CPU time in matrix products (``aten::mm``/``addmm``/``bmm``) against the
  rest, from ``torch.profiler``, per processor and precision;
* the throughput of this core's matrix product at the message MLP's shape (a piece of two
  graphs: (2·64², 128) x (128, 128)), float32 and bfloat16;
* the floating-point work of the message MLP alone (two (B·N², H) x (H, H) products per
  processor step; CLRS's reference does the same) and the time it needs at that throughput:
  a lower bound on any float32 prediction of this model on this core, set beside the time a
  3x speed-up over the CLRS reference (from ``--train-json``) would need.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "precision_bound.json"
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul")
HIDDEN, N, GRAPHS, HINT_STEPS = 128, 64, 32, 8


def gemm_rate(dtype_name: str, rows: int, reps: int = 100) -> float:
    """GFLOP/s of (rows, H) x (H, H) on one thread."""
    import torch

    dtype = getattr(torch, dtype_name)
    x, w = torch.randn(rows, HIDDEN, dtype=dtype), torch.randn(HIDDEN, HIDDEN, dtype=dtype)
    for _ in range(10):
        x @ w
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        x @ w
        times.append(time.perf_counter() - t0)
    return 2 * rows * HIDDEN * HIDDEN / statistics.median(times) / 1e9


def profile_predict(kind: str, precision: str) -> dict:
    import torch
    from bench_train import predict_setup

    from nar.runtime import tune_malloc

    tune_malloc()
    predict, _batch = predict_setup(kind, precision, cap_steps=HINT_STEPS)
    predict()  # warm-up
    t0 = time.perf_counter()
    predict()
    wall = time.perf_counter() - t0
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        predict()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS)
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:8]
    return {
        "wall_s_unprofiled": wall,
        "matmul_share": matmul / total,
        "top_ops": {e.key: round(e.self_cpu_time_total / total, 4) for e in top},
    }


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-json", type=Path, default=RESULTS.parent / "train.json")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    piece_rows = 2 * N * N  # predict_chunks' pieces at n = 64, hidden 128: two graphs
    rates = {name: gemm_rate(name, piece_rows) for name in ("float32", "bfloat16")}
    steps = HINT_STEPS - 1  # processor steps for 8 hint steps
    msg_flop = 2 * (2 * GRAPHS * N * N * HIDDEN * HIDDEN) * steps  # two message-MLP layers
    result: dict = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "torch": torch.__version__,
        "threads": 1,
        "load_before": os.getloadavg(),
        "gemm_gflops_per_s": rates,
        "message_mlp_gflop": msg_flop / 1e9,
        "message_mlp_lower_bound_s": {k: msg_flop / 1e9 / v for k, v in rates.items()},
        "profiles": {},
    }
    for kind in ("mpnn", "triplet_gmpnn"):
        for precision in ("float32", "bfloat16"):
            result["profiles"][f"{kind}/{precision}"] = profile_predict(kind, precision)
            print(kind, precision, json.dumps(result["profiles"][f"{kind}/{precision}"]), file=sys.stderr)
    if args.train_json.is_file():
        ref = json.loads(args.train_json.read_text()).get("clrs_reference", {})
        target = {
            "mpnn": ref.get("predict_s_n64_b32_mpnn"),
            "triplet_gmpnn": ref.get("predict_s_n64_b32"),
        }
        result["clrs_predict_s"] = target
        result["three_x_needs_s"] = {k: v / 3 for k, v in target.items() if v}
    result["load_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("gemm_gflops_per_s", "message_mlp_lower_bound_s")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
