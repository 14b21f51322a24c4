"""Training-step and prediction speed on the CPU, side by side with the CLRS reference.

    python benchmarks/bench_train.py [--clrs-json PATH] [--precision bfloat16|float32|both] [--quick]

Measures, with the shapes of ``shared/bench/clrs_reference.py`` (Bellman-Ford, Erdős–Rényi
p = 0.5, batch 32, n = 16, hidden 128, hints encoded and decoded, Adam, clipping 1.0, hint
trajectories of T = 8 steps):

* seconds per training step (forward, backward, clipping, Adam) for mpnn and triplet_gmpnn;
* seconds to predict 32 graphs at n = 64 (inference mode, in cache-sized pieces, as
  ``nar.training.evaluate`` does), for both processors. Our Bellman-Ford relaxes all edges
  synchronously, so its n = 64 trajectories are longer (about 13 steps at p = 0.5) than the
  reference's (8): ``predict_n64_*`` runs our full trajectories, ``predict_n64_T8_*`` the
  reference's 8 steps (7 processor steps), the like-for-like figure;
* peak resident memory of each measurement (each runs in a fresh process).

``--threads`` (default 1) sets torch's intra-op threads; the reference runs as it does.

Writes ``benchmarks/results/train.json``. With ``--clrs-json`` (the JSON line printed by
``clrs_reference.py``, run on the same machine) it adds the reference figures and the
speed-up ratios (reference seconds / our seconds).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "train.json"


def _batches(n: int, count: int, steps: int | None, seed: int):
    import numpy as np

    from nar.algorithms import ALGORITHMS
    from nar.data.batching import collate
    from nar.data.samplers import GraphSamplerConfig, sample_graphs

    algo = ALGORITHMS["bellman_ford"]
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        g = sample_graphs(algo.spec.graph, GraphSamplerConfig(kind="er", p_range=(0.5, 0.5)), n, 32, rng)
        trace = algo.run(g)
        if steps is None or int(trace.lengths.max()) == steps:
            out.append(collate(algo.spec, trace.trajectories()))
    return out


def _model(kind: str, precision: str):
    import torch

    from nar.algorithms import ALGORITHMS
    from nar.models import EncodeProcessDecode, ModelConfig, ProcessorConfig

    torch.manual_seed(0)
    config = ModelConfig(processor=ProcessorConfig(kind=kind, hidden=128), precision=precision)
    return EncodeProcessDecode([ALGORITHMS["bellman_ford"].spec], config)


def measure_train(kind: str, precision: str, threads: int, reps: int) -> dict:
    import torch

    from nar.runtime import tune_malloc
    from nar.training.losses import total_loss

    tune_malloc()  # as nar.training.loop.train does (predict_chunks does it for predictions)
    torch.set_num_threads(threads)
    batches = _batches(16, 4, steps=8, seed=1)
    model = _model(kind, precision)
    spec = model.specs["bellman_ford"]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(batch):
        loss, _ = total_loss(spec, model(batch), batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return float(loss.detach())

    t0 = time.perf_counter()
    step(batches[0])
    first = time.perf_counter() - t0
    for b in batches[1:3]:
        step(b)
    times = []
    for i in range(reps):
        t0 = time.perf_counter()
        step(batches[i % len(batches)])
        times.append(time.perf_counter() - t0)
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "first_call_s": first,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def predict_setup(kind: str, precision: str, cap_steps: int | None = None):
    """(predict, batch): ``predict()`` runs the eval-mode model over 32 Bellman-Ford graphs at
    n = 64 as evaluation does (``predict_chunks``, inference mode); ``cap_steps`` caps the
    hint steps (the reference runs as many processor steps as the longest trajectory)."""
    import torch

    from nar.training.metrics import predict_chunks

    (batch,) = _batches(64, 1, steps=None, seed=3)
    if cap_steps is not None:
        batch.lengths = batch.lengths.clamp(max=cap_steps)
    model = _model(kind, precision).eval()
    spec = model.specs["bellman_ford"]

    def predict() -> None:
        with torch.inference_mode():
            for _part, _pred in predict_chunks(model, batch, spec):
                pass

    return predict, batch


def measure_predict(kind: str, precision: str, threads: int, reps: int, cap_steps: int | None = None) -> dict:
    import torch

    torch.set_num_threads(threads)
    predict, batch = predict_setup(kind, precision, cap_steps)
    times = []
    for _ in range(reps + 1):
        t0 = time.perf_counter()
        predict()
        times.append(time.perf_counter() - t0)
    return {
        "median_s": statistics.median(times[1:]),
        "min_s": min(times[1:]),
        "first_call_s": times[0],
        "hint_steps": int(batch.lengths.max()),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _isolated(fn, *args) -> dict:
    """Run a measurement in a fresh process, so its peak RSS is its own."""
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine() -> dict:
    import torch

    return {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "mkldnn_bf16": bool(torch.backends.mkldnn.is_available()),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clrs-json", type=Path, help="JSON line written by shared/bench/clrs_reference.py")
    p.add_argument("--precision", default="both", choices=["bfloat16", "float32", "both"])
    # One thread by default: the JAX reference keeps about one core busy (its cpu_per_wall is
    # 0.92-0.97), and two torch threads stall whenever another process holds a core (measured:
    # 0.28 s instead of 0.04 s per hidden-64 step), so one thread is like-for-like and stable.
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="fewer repetitions")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    reps_train, reps_pred = (5, 2) if args.quick else (20, 5)
    precisions = ["bfloat16", "float32"] if args.precision == "both" else [args.precision]
    result: dict = {"machine": machine(), "threads": args.threads, "load_before": os.getloadavg()}
    result["setup"] = (
        "bellman_ford, ER p=0.5, batch 32, n=16 (T=8 hint steps), hidden 128, hints encoded+decoded, "
        "Adam lr 1e-3, clip 1.0; predict: 32 graphs at n=64, inference mode, cache-sized pieces; "
        "predict_n64_T8: capped at the reference's 8 hint steps"
    )
    for precision in precisions:
        r = {}
        for kind, tag in (("mpnn", "mpnn"), ("triplet_gmpnn", "triplet")):
            r[f"train_step_{tag}"] = _isolated(measure_train, kind, precision, args.threads, reps_train)
            r[f"predict_n64_{tag}"] = _isolated(measure_predict, kind, precision, args.threads, reps_pred)
            r[f"predict_n64_T8_{tag}"] = _isolated(measure_predict, kind, precision, args.threads, reps_pred, 8)
            print(precision, tag, json.dumps({k: v for k, v in r.items() if tag in k}), file=sys.stderr)
        result[precision] = r
    result["load_after"] = os.getloadavg()

    if args.clrs_json:
        ref = json.loads(args.clrs_json.read_text().strip().splitlines()[-1])
        result["clrs_reference"] = ref
        pairs = {
            "train_step_mpnn": ref.get("train_step_s_mpnn_n16_b32_h128"),
            "train_step_triplet": ref.get("train_step_s_triplet_n16_b32_h128"),
            "predict_n64_mpnn": ref.get("predict_s_n64_b32_mpnn"),
            "predict_n64_triplet": ref.get("predict_s_n64_b32"),
            "predict_n64_T8_mpnn": ref.get("predict_s_n64_b32_mpnn"),
            "predict_n64_T8_triplet": ref.get("predict_s_n64_b32"),
        }
        result["speedup_vs_clrs"] = {
            precision: {k: (v / result[precision][k]["median_s"]) for k, v in pairs.items() if v}
            for precision in precisions
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result.get("speedup_vs_clrs", {}), indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
