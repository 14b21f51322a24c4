"""Out-of-distribution quality of a training profile within a CPU budget.

    python benchmarks/bench_quality.py [--params benchmarks/profiles.yaml] [--run clrs_protocol] \
        [-S train.algorithms=[bfs] -S train.steps=1000 ...] [--seeds 0 1 2] [--graphs nar|clrs] \
        [--tag TAG] [--out benchmarks/results/quality.json]

The model and training come from a params profile (``benchmarks/profiles.py``: a run of
``pretrain.runs``, default the CLRS protocol of ``benchmarks/profiles.yaml``, changed with ``-S``);
one model per seed (``train.seed``) trains with the library's loop (``nar.training.train``) on fresh
graphs every step, drawn by ``nar.data.samplers`` as the profile file's ``generate`` section says
(default Erdős–Rényi, p ~ U(0.1, 0.9), n in {4, 7, 11, 13, 16}, ``batch_size`` graphs a step),
validates every ``train.eval_every`` steps on 64 graphs at n = 16 keeping the best weights, and
is scored out of distribution on 32 graphs at n = 64 (seed-fixed) and on 128 more (a less noisy
estimate). Records wall-clock and CPU seconds of each run, the machine load, and mean ± standard
error over seeds. Appends to the output JSON, one entry per run.

Every run is also scored on the CLRS-30 test distribution (``clrs_64``: 32 graphs at n = 64
drawn as CLRS's samplers draw its published test set, edge density 0.25, evenly spaced
positions; ``clrs_64x128``: 128 more), see ``clrs_graphs.py``; ours (p ~ U(0.1, 0.9),
density p) has sparse graphs with long shortest paths and is harder. ``--graphs clrs``
also trains and validates on CLRS's distribution (the protocol as published).
``--save DIR`` keeps each run's best weights (``<algorithm>_<seed>.pt``) for re-scoring.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "quality.json"
PROFILES = Path(__file__).resolve().parent / "profiles.yaml"


def run_one(args: argparse.Namespace, seed: int) -> dict:
    import dataclasses

    import torch
    from clrs_graphs import TRAIN_P, clrs_set, clrs_stream, ood_test_sets
    from graph_sets import Stream, fixed_set, sampler_draw
    from profiles import load_profile, override, profile_params, sampler_config

    from nar.training import train

    params = profile_params(args.params, args.run, args.overrides)
    override(params["pretrain"]["runs"][args.run], "train.seed", seed)
    run, generate = load_profile(params, args.run)
    cfg = dataclasses.replace(run.train, checkpoint_every=10**9, progress=False)
    (algo,) = cfg.algorithms  # one model per algorithm: the scores below are per algorithm
    sampler = sampler_config(generate)
    val_split = generate.splits["val"]
    if args.graphs == "clrs":
        val = {algo: clrs_set(algo, val_split.count, val_split.sizes[0], TRAIN_P, random_pos=True, seed=1)}
        batches = clrs_stream(batch_size=run.batch_size, seed=seed, sizes=generate.splits["train"].sizes)
    else:
        draw = sampler_draw(sampler)
        val = {algo: fixed_set(algo, draw, val_split.count, val_split.sizes[0], seed=1)}
        batches = Stream(draw, generate.splits["train"].sizes, run.batch_size, seed)
    test = {algo: ood_test_sets(algo, sampler)}
    load0 = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    result = train(run.model, cfg, batches, val, test)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if args.save is not None:
        args.save.mkdir(parents=True, exist_ok=True)
        torch.save({"config": result.config, "model": result.model.state_dict()}, args.save / f"{algo}_{seed}.pt")
    return {
        "algorithm": algo,
        "seed": seed,
        "profile": f"{args.params}:{args.run}",
        "overrides": args.overrides,
        "model": run.model.to_dict(),
        "train": cfg.to_dict(),
        "batch_size": run.batch_size,
        "ood_64": 100 * result.test[algo]["64"]["score"],
        "ood_64x128": 100 * result.test[algo]["64x128"]["score"],
        "clrs_64": 100 * result.test[algo]["clrs64"]["score"],
        "clrs_64x128": 100 * result.test[algo]["clrs64x128"]["score"],
        "graphs": args.graphs,
        "val_16": 100 * result.best_score,
        "best_step": result.best_step,
        "wall_s": wall,
        "cpu_s": cpu,
        "load_before": load0,
        "load_after": os.getloadavg()[0],
        "test_scores": result.test[algo],
    }


def summary(runs: list[dict]) -> dict:
    out = {}
    for algo in sorted({r["algorithm"] for r in runs}):
        rs = [r for r in runs if r["algorithm"] == algo]
        entry = {"runs": len(rs)}
        for key in ("ood_64", "ood_64x128", "clrs_64", "clrs_64x128", "wall_s", "cpu_s"):
            values = [r[key] for r in rs if key in r]
            if not values:
                continue
            mean = statistics.fmean(values)
            se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
            entry[key] = {"mean": mean, "se": se, "values": values}
        out[algo] = entry
    return out


def main(argv: list[str] | None = None) -> int:
    from profiles import add_profile_arguments

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_profile_arguments(p, params=str(PROFILES), run="clrs_protocol")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="one run per seed (train.seed)")
    p.add_argument("--graphs", default="nar", choices=["nar", "clrs"], help="training/validation graphs")
    p.add_argument("--save", type=Path, default=None, help="directory for each run's best weights")
    p.add_argument("--tag", default="", help="label stored with the runs")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    data = json.loads(args.out.read_text()) if args.out.exists() else {"runs": []}
    for seed in args.seeds:
        run = run_one(args, seed)
        run["tag"] = args.tag
        data["runs"].append(run)
        print(json.dumps({k: v for k, v in run.items() if k not in ("model", "train", "test_scores")}), flush=True)
        tags = sorted({r.get("tag", "") for r in data["runs"]})
        data["summary"] = {tag: summary([r for r in data["runs"] if r.get("tag") == tag]) for tag in tags}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
