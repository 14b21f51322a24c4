"""Training recipes for processors that execute at scale, compared on validation graphs.

One run: train an encode-process-decode model with sparse messages on a mix of graph
families (the project's samplers) and sizes, then score pointer accuracy on *validation*
graphs drawn from the same samplers with another seed at larger sizes (grid and geometric
at n = 256 by default). Recipes are chosen on these scores; the independent scale suite
(``benchmarks/bench_scale.py``, networkx/scipy graphs) is only used to report the chosen one.

``--normalise ecc`` rescales every graph's weights by 1 / (hop eccentricity of the source x
mean edge weight) before the algorithm runs, so distances (the ``d`` hint) stay O(1) at every
size: shortest-path and spanning trees do not change when all weights are scaled.

    python benchmarks/bench_recipe.py --steps 1500 --normalise ecc --out benchmarks/results/recipe_ecc.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from nar.algorithms import ALGORITHMS
from nar.algorithms.base import Graphs, hop_depths
from nar.data.batching import collate
from nar.data.samplers import GraphSamplerConfig, sample_graphs
from nar.models import EncodeProcessDecode, ModelConfig, ProcessorConfig
from nar.training.losses import total_loss


def normalise(g: Graphs, how: str = "ecc") -> Graphs:
    """Scale each graph's weights by 1 / c: c = hop eccentricity x mean weight ("ecc": distances
    O(1)), mean weight ("mean": edges O(1)) or sqrt(eccentricity) x mean weight ("sqrt")."""
    A = g.A.copy()
    for b in range(A.shape[0]):
        w = A[b][g.adj[b]]
        if w.size:
            ecc = max(int(hop_depths(len(g.adj[b]), np.argwhere(g.adj[b]), int(g.source[b])).max()), 1)
            hops = {"ecc": ecc, "mean": 1.0, "sqrt": ecc**0.5}[how]
            A[b] /= hops * float(w.mean())
    return Graphs(A=A, adj=g.adj, pos=g.pos, source=g.source)


def draw(algorithm: str, kind: str, n: int, B: int, rng: np.random.Generator, norm: str):
    algo = ALGORITHMS[algorithm]
    cfg = GraphSamplerConfig(kind=kind, p_range=(0.1, 0.9) if n <= 16 else (min(1.0, 3 * math.log(n) / n),) * 2)
    g = sample_graphs(algo.spec.graph, cfg, n, B, rng)
    if norm != "none" and algo.spec.graph.weighted:
        g = normalise(g, norm)
    return collate(algo.spec, algo.run(g).trajectories())


def with_extra_steps(batch, fraction: float, rng: np.random.Generator):
    """Each graph runs up to ``fraction`` x its steps more, its hints held at the final state
    (the algorithm has converged): trains the processor to stay at its fixed point."""
    import dataclasses

    if fraction <= 0:
        return batch
    L = batch.lengths
    extra = np.ceil(rng.uniform(0, fraction, size=len(L)) * (L.numpy() - 1)).astype(np.int64)
    L2 = L + torch.from_numpy(extra)
    T2 = int(L2.max())
    hints = {}
    for k, v in batch.hints.items():  # (B, T, ...): repeat each graph's last real step to T2
        idx = torch.minimum(torch.arange(T2)[None, :], (L - 1)[:, None])  # (B, T2)
        hints[k] = torch.take_along_dim(v, idx.view(*idx.shape, *([1] * (v.dim() - 2))), dim=1)
    return dataclasses.replace(batch, hints=hints, lengths=L2)


def accuracy(model, batch) -> float:
    with torch.no_grad():
        pred = model(batch).outputs["pi"].argmax(-1)
    mask = batch.node_mask
    return float((pred == batch.outputs["pi"])[mask].float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--algorithm", default="bellman_ford")
    ap.add_argument("--families", default="er,grid,geometric")
    ap.add_argument("--sizes", default="8,16,24,32,48,64")
    ap.add_argument("--nodes-per-batch", type=int, default=512, help="batch size = max(4, this // n)")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--msg-layers", type=int, default=1)
    ap.add_argument("--no-layer-norm", action="store_true")
    ap.add_argument("--gated", action="store_true")
    ap.add_argument("--no-hints", action="store_true")
    ap.add_argument("--scalar-weight", type=float, default=100.0)
    ap.add_argument("--normalise", choices=["none", "ecc", "mean", "sqrt"], default="none")
    # dense (B, n, n) batches: n = 1,024 needs more memory than these machines have (a run was killed there)
    ap.add_argument("--val", default="grid:256,geometric:256", help="family:n (n <= 256), scored on 8 graphs each")
    ap.add_argument("--extra-steps", type=float, default=0.0, help="train past the end: up to this x T more steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    proc = ProcessorConfig(
        kind="gmpnn" if args.gated else "mpnn",
        hidden=args.hidden,
        layer_norm=not args.no_layer_norm,
        msg_mlp_layers=args.msg_layers,
    )
    cfg = ModelConfig(processor=proc, messages="sparse", encode_hints=not args.no_hints, decode_hints=not args.no_hints)
    spec = ALGORITHMS[args.algorithm].spec
    model = EncodeProcessDecode([spec], cfg)
    opt = torch.optim.Adam(model.parameters(), args.lr)
    cosine = lambda s: 0.5 * (1 + math.cos(math.pi * min(s, args.steps) / args.steps))  # noqa: E731
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine)
    families, sizes = args.families.split(","), [int(s) for s in args.sizes.split(",")]
    rng = np.random.default_rng([args.seed, 1])
    started, losses = time.perf_counter(), []
    for step in range(args.steps):
        kind = families[int(rng.integers(len(families)))]
        n = sizes[int(rng.integers(len(sizes)))]
        if kind == "er" and n > 32:
            n = 32  # dense ER beyond 32 nodes costs O(n^2) pairs; sparse ER comes from p ~ 3 ln n / n
        batch = draw(args.algorithm, kind, n, max(4, args.nodes_per_batch // n), rng, args.normalise)
        batch = with_extra_steps(batch, args.extra_steps, rng)
        loss, _ = total_loss(spec, model(batch), batch, args.scalar_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if (step + 1) % 100 == 0:
            print(f"step {step + 1} loss {np.mean(losses[-100:]):.4f} {time.perf_counter() - started:.0f}s", flush=True)
    train_s = time.perf_counter() - started
    model.eval()
    val = {}
    vrng = np.random.default_rng([args.seed, 99])
    for item in args.val.split(","):
        kind, n = item.split(":")
        batch = draw(args.algorithm, kind, int(n), 8, vrng, args.normalise)
        val[item] = accuracy(model, batch)
        print(item, f"{100 * val[item]:.2f} %", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "train_seconds": train_s, "val": val}, indent=2)
    )
    torch.save({"config": cfg.to_dict(), "model": model.state_dict()}, args.out.with_suffix(".pt"))


if __name__ == "__main__":
    main()
