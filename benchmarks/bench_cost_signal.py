"""How much of the road tree can a learned cost find from the raw inputs? Validation only
(results: ``benchmarks/results/cost_signal.json``; reports/transfer_notes.md §12-13).

Every learned road variant scores below the segment-length heuristic (§10-11), while the frozen processor fed
the hidden costs scores 99.9 %. This benchmark separates the training signal from the information in the inputs:

1. ``reference``: trees of fixed costs, no training: ``uniform`` (fewest segments), ``length`` (the heuristic),
   ``true`` (the hidden travel times: 100 % by construction).
2. ``bottleneck``: the bottleneck variant as the sweep trains it (early stopping on val), with its training signal
   (``bottleneck_loss``: blackbox differentiation or the tree hinge) and the cost network's neighbour pooling
   (``cost_context`` rounds) varied.
3. ``ceiling``: the same cost network fitted by regression to the hidden travel times (log cost, mean 1 per
   graph; never available to a variant, a diagnostic only), trained on all training examples: what the inputs
   allow a cost network to know, whatever its training signal.

Scored on ``val`` and ``val_ood`` (the val pool at 32-36 nodes, as bench_hint_loop.py builds it), never test or
ood; pointer accuracy (%) over non-source nodes for (1) and (3), the sweep's pointer accuracy for (2).

    python benchmarks/bench_cost_signal.py --out benchmarks/results/cost_signal.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_hint_loop import build_val_ood, one  # noqa: E402

from nar.natural import load_natural  # noqa: E402
from nar.natural.road import EDGE_FEATURES  # noqa: E402
from nar.transfer.graphs import FlatBatch, FlatSplit  # noqa: E402
from nar.transfer.models import CostModel, graph_edge_mean  # noqa: E402
from nar.transfer.solver import solve_tree  # noqa: E402
from nar.transfer.train import EdgeNorm  # noqa: E402

TASK = "road"
BLACKBOX = {"bottleneck_loss": "blackbox"}
HINGE = {"bottleneck_loss": "tree_hinge"}
SIGNALS = {  # name -> the task's transfer params changed for the bottleneck (every one set: params.yaml may differ)
    "blackbox": {**BLACKBOX, "cost_context": 0},
    "blackbox_context1": {**BLACKBOX, "cost_context": 1},
    "blackbox_context2": {**BLACKBOX, "cost_context": 2},
    "tree_hinge": {**HINGE, "cost_context": 0},
    "tree_hinge_context2": {**HINGE, "cost_context": 2},
}


def tree_accuracy(costs: torch.Tensor, b: FlatBatch) -> float:
    """Pointer accuracy (%) over non-source nodes of the exact tree of ``costs``."""
    pi, _ = solve_tree(costs.detach().double(), b)
    keep = ~b.is_source
    return round(100 * (pi[keep] == b.pi[keep]).float().mean().item(), 2)


def reference(splits: dict[str, FlatSplit]) -> dict:
    length = EDGE_FEATURES.index("length_100m")
    out = {}
    for name, split in splits.items():
        b = split.batch(range(len(split)))
        fixed = {"uniform": torch.ones(b.total_edges), "length": b.edge_x[:, length], "true": b.edge_cost}
        out[name] = {k: tree_accuracy(c, b) for k, c in fixed.items()}
    return out


def ceiling(train: FlatSplit, splits: dict[str, FlatSplit], context: int, seed: int, steps: int) -> dict:
    """The cost network regressed on the hidden log costs (module docstring, part 3)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = CostModel("mlp", train.node_x.shape[1], train.edge_x.shape[1], 64, "edge", context)
    model.edge_net = nn.Sequential(EdgeNorm(*train.edge_stats(range(len(train)))), model.edge_net)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(steps):
        b = train.batch(rng.choice(len(train), 16, replace=False))
        true = b.edge_cost / graph_edge_mean(b.edge_cost, b)
        loss = ((model(b).log() - true.log()) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    batches = {name: s.batch(range(len(s))) for name, s in splits.items()}
    with torch.no_grad():
        return {name: tree_accuracy(model(b), b) for name, b in batches.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="50,200,1000")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--ceiling-seeds", default="0,1,2")
    ap.add_argument("--ceiling-steps", type=int, default=1500)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", type=Path, default=Path("data/natural"))
    ap.add_argument(
        "--network", default="models/pretrain/bellman_ford", help="unused by the bottleneck; the harness loads it"
    )
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_val_ood(TASK, args.params, args.data, root)
        splits = {s: FlatSplit(load_natural(root / TASK / s)) for s in ("val", "val_ood")}
        result: dict = {"task": TASK, "reference": reference(splits), "bottleneck": [], "ceiling": []}
        print(json.dumps(result["reference"]), flush=True)
        for name, budget in SIGNALS.items():
            for seed in map(int, args.seeds.split(",")):
                for size in map(int, args.sizes.split(",")):
                    row = one((args.params, tmp, args.network, TASK, "bottleneck", size, seed, budget))
                    row["signal"] = name
                    print(json.dumps(row), flush=True)
                    result["bottleneck"].append(row)
        train = FlatSplit(load_natural(args.data / TASK / "train"))
        for context in (0, 2):
            for seed in map(int, args.ceiling_seeds.split(",")):
                row = {"context": context, "seed": seed, **ceiling(train, splits, context, seed, args.ceiling_steps)}
                print(json.dumps(row), flush=True)
                result["ceiling"].append(row)
    result["summary"] = summary(result)
    result["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result["summary"], indent=1))


def summary(result: dict) -> dict:
    """Mean ± standard error over seeds, per signal and size (bottleneck) and per context (ceiling)."""

    def stat(values: list[float]) -> str:
        v = np.asarray(values, dtype=float)
        se = v.std(ddof=1) / len(v) ** 0.5 if len(v) > 1 else float("nan")
        return f"{v.mean():.2f} ± {se:.2f}"

    out: dict = {"bottleneck": {}, "ceiling": {}}
    for row in result["bottleneck"]:
        out["bottleneck"].setdefault(f"{row['signal']} n={row['size']}", []).append(row)
    out["bottleneck"] = {
        k: {split: stat([r[split] for r in rows]) for split in ("val", "val_ood")}
        for k, rows in out["bottleneck"].items()
    }
    for context in sorted({r["context"] for r in result["ceiling"]}):
        rows = [r for r in result["ceiling"] if r["context"] == context]
        out["ceiling"][f"context {context}"] = {split: stat([r[split] for r in rows]) for split in ("val", "val_ood")}
    return out


if __name__ == "__main__":
    main()
