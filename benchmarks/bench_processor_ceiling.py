"""How well does the pretrained network execute its algorithm on the natural tasks' graphs?

    python benchmarks/bench_processor_ceiling.py [--pretrained models/pretrain/bellman_ford]
        [--data data/natural] [--tasks digit_grid road] [--splits test ood] [--limit 200]

The transfer variants around the frozen processor can do no better than the processor
itself does on those graphs. This script feeds the *hidden true costs* of each natural example
(scaled to [0, 1], which leaves shortest-path trees unchanged) through the whole pretrained
encode-process-decode network (its own encoder and decoder, the algorithm's own inputs) and
scores its predecessor pointers against the task's target, exactly and up to ties (a predecessor on
*some* shortest path also counts: digit grids' discrete costs tie often, and which of two equal paths the
target names is its tie rule, not the algorithm). So it measures the processor's
ceiling on these graph shapes (8x8 grids with long paths; sparse road subgraphs), which differ
from the Erdős–Rényi graphs it was trained on. It also checks that the algorithm run on the
same weights reproduces the task's target (the oracle: 100 % up to ties).

Writes ``benchmarks/results/processor_ceiling.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import safetensors.torch
import torch

ROOT = Path(__file__).resolve().parents[1]


def load_model(pretrained: Path) -> tuple[torch.nn.Module, str, dict]:
    """The whole pretrained network (``model.safetensors`` + ``model.json``), its algorithm and its config."""
    from nar.algorithms import ALGORITHMS
    from nar.config import build
    from nar.models.model import EncodeProcessDecode, ModelConfig

    meta = json.loads((pretrained / "model.json").read_text())
    (algorithm,) = meta["algorithms"][:1]
    config = build(ModelConfig, meta["model"], "model")
    model = EncodeProcessDecode([ALGORITHMS[a].spec for a in meta["algorithms"]], config)
    model.load_state_dict(safetensors.torch.load_file(str(pretrained / "model.safetensors")))
    return model.eval(), algorithm, meta


def score_split(model: torch.nn.Module, algorithm: str, split_dir: Path, limit: int) -> dict[str, float]:
    from nar.algorithms import ALGORITHMS, execute
    from nar.data.batching import collate
    from nar.natural.store import load_natural
    from nar.transfer.metrics import node_scores

    spec = ALGORITHMS[algorithm].spec
    data = load_natural(split_dir)
    by_size: dict[int, list] = defaultdict(list)  # (trajectory, example) pairs; equal sizes batch without padding
    oracle_right = oracle_total = 0
    for i in range(min(limit, len(data))):
        ex = data[i]
        w = ex.hidden_weights()
        w = w / (w.max() * 1.0001)  # (n, n) in [0, 1): the pretraining range
        traj = execute(algorithm, w, ex.adjacency(), source=ex.source)
        oracle_right += int((traj.outputs["pi"] == ex.pi).sum())
        oracle_total += ex.num_nodes
        by_size[ex.num_nodes].append((traj, ex))
    right = right_tie = total = 0
    steps = []
    for pairs in by_size.values():
        for start in range(0, len(pairs), 32):
            trajs, exs = zip(*pairs[start : start + 32], strict=True)
            with torch.no_grad():
                pred = model(collate(spec, list(trajs))).outputs["pi"].argmax(-1).numpy()  # (b, n): equal sizes
            for row, ex in zip(pred, exs, strict=True):
                # scored against the task's target, not our re-execution; up to ties: the predecessor lies on
                # *some* shortest path (the hidden edge_optimal)
                exact, tie = node_scores(row, ex.pi, ex.source, ex.edge_index, ex.hidden["edge_optimal"])
                right, right_tie, total = right + exact, right_tie + tie, total + ex.num_nodes
            steps += [t.length for t in trajs]
    return {
        "examples": int(sum(len(v) for v in by_size.values())),
        "pointer_acc": 100.0 * right / total,
        "pointer_acc_tie": 100.0 * right_tie / total,
        "oracle_pointer_acc": 100.0 * oracle_right / oracle_total,
        "mean_steps": float(np.mean(steps)),
        "sizes": sorted(by_size),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pretrained", type=Path, default=Path("models/pretrain/bellman_ford"))
    p.add_argument("--data", type=Path, default=Path("data/natural"))
    p.add_argument("--tasks", nargs="+", default=["digit_grid", "road"])
    p.add_argument("--splits", nargs="+", default=["test", "ood"])
    p.add_argument("--limit", type=int, default=200, help="examples per split")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/processor_ceiling.json")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    model, algorithm, model_meta = load_model(args.pretrained)
    meta = json.loads((args.pretrained / "processor.json").read_text())
    result: dict = {
        "pretrained": str(args.pretrained),
        "algorithm": algorithm,
        "processor_sha256": meta.get("weights_sha256") or meta.get("sha256"),
        "model": model_meta["model"],
        "tasks": {},
    }
    metrics_path = ROOT / "metrics/pretrain" / f"{args.pretrained.name}.json"
    if metrics_path.is_file():
        result["pretrain_ood_score"] = json.loads(metrics_path.read_text()).get("ood_score")
    for task in args.tasks:
        for split in args.splits:
            t0 = time.perf_counter()
            r = score_split(model, algorithm, args.data / task / split, args.limit)
            r["seconds"] = round(time.perf_counter() - t0, 2)
            result["tasks"].setdefault(task, {})[split] = r
            ties, oracle = r["pointer_acc_tie"], r["oracle_pointer_acc"]
            print(f"{task}/{split}: processor {r['pointer_acc']:.2f}% (up to ties {ties:.2f}%; oracle {oracle:.2f}%)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
