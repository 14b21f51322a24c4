"""Out-of-distribution quality of a training profile within a CPU budget.

    python benchmarks/bench_quality.py --algorithms bellman_ford bfs --seeds 0 1 2 \
        [--kind gmpnn --hidden 64 --steps 12000 ...] [--out benchmarks/results/quality.json]

Trains one model per (algorithm, seed) on fresh Erdős–Rényi batches (``OnlineBatches``:
n in {4, 7, 11, 13, 16}, p ~ U(0.1, 0.9), batch 32), validates every ``--eval-every`` steps
on 64 graphs at n = 16 keeping the best checkpoint, and scores it out of distribution on
32 graphs at n = 64 (our test distribution; seed-fixed) and on 128 more graphs at n = 64
(a less noisy estimate). Records wall-clock and CPU seconds of each run, the machine load,
and mean ± standard error over seeds. Appends to the output JSON, one entry per run.

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


def run_one(args: argparse.Namespace, algo: str, seed: int) -> dict:
    import torch

    from nar.models import ModelConfig, ProcessorConfig
    from nar.training import TrainConfig, train
    from nar.training.synthetic import OnlineBatches, fixed_batches

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from clrs_graphs import TRAIN_P, ClrsOnlineBatches, clrs_fixed_batches, ood_test_sets

    torch.set_num_threads(args.threads)
    model = ModelConfig(
        processor=ProcessorConfig(
            kind=args.kind,
            hidden=args.hidden,
            msg_mlp_layers=args.msg_mlp_layers,
            layer_norm=not args.no_layer_norm,
            full_adjacency=args.full_adjacency,
        ),
        precision=args.precision,
        hint_feedback=args.hint_feedback,
        encode_hints=not args.no_encode_hints,
    )
    cfg = TrainConfig(
        algorithms=(algo,),
        steps=args.steps,
        learning_rate=args.lr,
        lr_schedule=args.lr_schedule,
        eval_every=args.eval_every,
        checkpoint_every=10**9,
        seed=seed,
        scalar_loss_weight=args.scalar_loss_weight,
        progress=False,
    )
    if args.graphs == "clrs":
        val = {algo: clrs_fixed_batches(algo, 64, 16, TRAIN_P, random_pos=True, seed=1)}
        batches = ClrsOnlineBatches(batch_size=args.batch_size, seed=seed)
    else:
        val = {algo: fixed_batches(algo, 64, 16, seed=1)}
        batches = OnlineBatches(batch_size=args.batch_size, seed=seed)
    test = {algo: ood_test_sets(algo)}
    load0 = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    result = train(model, cfg, batches, val, test)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if args.save is not None:
        args.save.mkdir(parents=True, exist_ok=True)
        torch.save({"config": result.config, "model": result.model.state_dict()}, args.save / f"{algo}_{seed}.pt")
    return {
        "algorithm": algo,
        "seed": seed,
        "model": model.to_dict(),
        "train": cfg.to_dict(),
        "batch_size": args.batch_size,
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
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algorithms", nargs="+", default=["bellman_ford"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--kind", default="gmpnn")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--msg-mlp-layers", type=int, default=2)
    p.add_argument("--no-layer-norm", action="store_true")
    p.add_argument("--full-adjacency", action="store_true", help="messages between all nodes (CLRS's mpnn family)")
    p.add_argument("--precision", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--no-encode-hints", action="store_true", help="decode hints but do not feed them back")
    p.add_argument("--hint-feedback", default="soft", choices=["soft", "hard", "hard_on_eval"])
    p.add_argument("--steps", type=int, default=12000)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--lr-schedule", default="cosine", choices=["cosine", "constant"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--scalar-loss-weight", type=float, default=1.0)
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1, help="torch threads (2 stall on a loaded 2-core machine)")
    p.add_argument("--graphs", default="nar", choices=["nar", "clrs"], help="training/validation graphs")
    p.add_argument("--save", type=Path, default=None, help="directory for each run's best weights")
    p.add_argument("--tag", default="", help="label stored with the runs")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    data = json.loads(args.out.read_text()) if args.out.exists() else {"runs": []}
    for algo in args.algorithms:
        for seed in args.seeds:
            run = run_one(args, algo, seed)
            run["tag"] = args.tag
            data["runs"].append(run)
            print(json.dumps({k: v for k, v in run.items() if k not in ("model", "train", "test_scores")}), flush=True)
            data["summary"] = {tag: summary([r for r in data["runs"] if r.get("tag") == tag]) for tag in
                               sorted({r.get("tag", "") for r in data["runs"]})}  # fmt: skip
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
