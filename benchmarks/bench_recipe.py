"""Training recipes for processors that execute at scale, compared on validation graphs.

One run trains a pretrain run of params.yaml exactly as its stage does (``nar.training.loop.train``
on the stage's own batches: ``MixedBatches`` for ``train_data: mixed``, one-way streets, weight
scale, loss weights and schedule included; best checkpoint on the generated val split), with
``--set`` overrides of the run's keys, then scores pointer accuracy on *validation* graphs drawn
by the project's samplers with another seed at larger sizes (grid, geometric and tree at n = 256
by default; ``kind:n:oneway`` for one-way streets). Recipes are chosen on these scores; the
independent scale suite (``benchmarks/bench_scale.py``, networkx/scipy graphs) only reports the
chosen one. Needs the generated data of the run's algorithms (``dvc repro generate@bellman_ford``).

    python benchmarks/bench_recipe.py --run bellman_ford --set mix.sizes=[8,16,32,64,96,128] \\
        --seed 1 --out /tmp/recipe_sizes128.json

Earlier runs (``benchmarks/results/recipe.json``, before this harness) used a loop of their own
with ``--normalise`` weight scales; their commands name those flags.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from nar.algorithms import ALGORITHMS
from nar.algorithms.base import Graphs, hop_depths
from nar.config import load_params, read_params_file
from nar.data.batching import collate
from nar.data.samplers import GraphSamplerConfig, sample_graphs
from nar.models.model import message_adjacency
from nar.models.sparse import from_dense, pointer_predictions
from nar.training.pretrain import TRAIN_DATA, fixed_batches, load_pretrain_data, write_network


def override(run: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """``run`` (a params.yaml pretrain run, plain data) with ``dotted.key=yaml value`` assignments applied."""
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected dotted.key=value, e.g. mix.sizes=[8,16,32]")
        *path, last = key.split(".")
        node = run
        for part in path:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(value)
    return run


def draw_val(algorithm: str, item: str, rng: np.random.Generator, count: int = 8):
    """``count`` graphs of ``kind:n[:oneway][:field=value ...]``, drawn as MixedBatches draws them (sparse ER
    above 16 nodes); fields are GraphSamplerConfig's, e.g. ``delaunay:1024:0.3:oneway_chain=4:weight_noise=0``."""
    kind, n, *rest = item.split(":")
    n = int(n)
    if kind == "path":  # the deepest graph (n - 1 hops): settled pointers must hold for hundreds of steps
        graphs = path_graphs(n, count, rng, ALGORITHMS[algorithm].spec.graph.weighted)
        return collate(ALGORITHMS[algorithm].spec, ALGORITHMS[algorithm].run(graphs).trajectories())
    p = (0.1, 0.9) if n <= 16 else (min(1.0, 3 * math.log(n) / n),) * 2
    fields = {k: yaml.safe_load(v) for k, v in (f.split("=", 1) for f in rest if "=" in f)}
    oneway = [float(f) for f in rest if "=" not in f]
    try:
        cfg = GraphSamplerConfig(kind=kind, p_range=p, oneway=oneway[0] if oneway else 0.0, **fields)
    except TypeError as e:
        raise SystemExit(f"--val item {item!r}: {e}") from None
    algo = ALGORITHMS[algorithm]
    return collate(algo.spec, algo.run(sample_graphs(algo.spec.graph, cfg, n, count, rng)).trajectories())


def path_graphs(n: int, count: int, rng: np.random.Generator, weighted: bool) -> Graphs:
    """``count`` paths of ``n`` nodes in a random node order, source at one end, weights U[0, 1)
    (the same weight on both directions) or 1.0 when not ``weighted``."""
    order = np.argsort(rng.random((count, n)), axis=1)  # (count, n): the path's k-th node
    adj = np.zeros((count, n, n), dtype=bool)
    rows = np.arange(count)[:, None]
    adj[rows, order[:, :-1], order[:, 1:]] = True
    adj |= adj.transpose(0, 2, 1)
    w = rng.random((count, n, n), dtype=np.float32).astype(np.float64)
    w = np.triu(w, 1) + np.triu(w, 1).transpose(0, 2, 1)
    pos = np.sort(rng.random((count, n), dtype=np.float32), axis=1).astype(np.float64)
    A = np.where(adj, w, 0.0) if weighted else adj.astype(np.float64)
    return Graphs(A=A, adj=adj, pos=pos, source=order[:, 0].astype(np.int64))


def pointer_accuracy(model, batch, algorithm: str) -> float:
    """Output pointer accuracy over the real nodes. Sparse models run on the edge lists without keeping
    hints: the dense form of pointer hints is (B, T, N, N), 34 GB for eight 1,024-node paths.

    bfs counts ties right, as the scale suite does (``bfs_parent_ok``); weighted algorithms compare with
    the algorithm's own pointers (ties have probability zero under continuous random weights)."""
    with torch.no_grad():
        if model.config.messages != "sparse":
            pred = model(batch).outputs["pi"].argmax(-1)  # (B, N) local node ids
        else:
            spec = ALGORITHMS[algorithm].spec
            sb = from_dense(spec, batch, message_adjacency(spec, batch.inputs, batch.node_mask))
            flat = pointer_predictions(model.forward_sparse(sb, keep_hints=False).outputs["pi"], sb.pairs)  # (V,)
            pred = torch.zeros_like(batch.outputs["pi"])
            pred[batch.node_mask] = flat - sb.node_offset[sb.pairs.node_graph]
    if algorithm != "bfs":
        return float((pred == batch.outputs["pi"])[batch.node_mask].float().mean())
    ok = [bfs_parent_ok(batch, b, pred[b].numpy()) for b in range(len(pred))]
    return float(np.concatenate(ok).mean())


def bfs_parent_ok(batch, b: int, pred: np.ndarray) -> np.ndarray:
    """(n,) bool for graph ``b``: node i's pointer is right when it names an in-neighbour one hop closer to
    the source, or i itself for the source and unreachable nodes (any BFS tree's pointer, ties included)."""
    n = int(batch.num_nodes[b])
    adj = batch.inputs["adj"][b, :n, :n].numpy() > 0.5  # (n, n) [sender, receiver], self-loops included
    np.fill_diagonal(adj, False)
    source = int(batch.inputs["s"][b, :n].argmax())
    depth = hop_depths(n, np.argwhere(adj), source)  # (n,)
    pred = pred[:n]
    node = np.arange(n)
    root = (node == source) | (depth < 0)
    return np.where(root, pred == node, adj[pred, node] & (depth[pred] == depth - 1))


def save_network(model, run, out: Path, name: str) -> None:
    """The network as ``nar pretrain`` lays it out (processor files for the registry, the whole model for
    ``nar execute``, the ceiling and the transfer benchmarks), so it can be loaded by path."""
    write_network(model, out, name=name, algorithms=run.train.algorithms, config={"model": run.model.to_dict()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--run", default="bellman_ford", help="a key of pretrain.runs")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. train.steps=6000")
    ap.add_argument("--seed", type=int, default=0, help="train.seed (the validation draw uses its own seed)")
    ap.add_argument(
        "--val",
        default="grid:256,geometric:256,tree:256",
        help="kind:n[:oneway][:field=value...]; kind: a sampler kind or path; fields: GraphSamplerConfig's",
    )
    ap.add_argument("--data", type=Path, default=Path("data/synthetic"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--save", type=Path, help="also write the trained network here, as the pretrain stage does")
    ap.add_argument(
        "--model", type=Path, help="score this saved network (a pretrain run directory) instead of training one"
    )
    args = ap.parse_args()

    raw = read_params_file(args.params)
    runs = raw.get("pretrain", {}).get("runs", {})
    if args.run not in runs:
        raise SystemExit(f"--run {args.run!r}: not a pretrain run of {args.params} (runs: {sorted(runs)})")
    if args.model is not None:
        if args.set:
            raise SystemExit("--set changes a training run; with --model nothing is trained (drop one of them)")
        scored = score_saved(args.model, args.val, args.seed)
        write_result(args, scored, {"model": str(args.model)})
        return
    run_raw = override(dict(runs[args.run]), [*args.set, f"train.seed={args.seed}"])
    with tempfile.TemporaryDirectory() as tmp:  # validated as the stage validates it
        path = Path(tmp) / "params.yaml"
        path.write_text(yaml.safe_dump({"pretrain": {"runs": {args.run: run_raw}}}))
        run = load_params(path, "pretrain").pretrain.runs[args.run]
        algorithm = run.train.algorithms[0]
        data = load_pretrain_data(args.data, run.train.algorithms)
        batches = TRAIN_DATA[run.train_data](data.train, run.batch_size, run.train.seed, run.mix)
        val = {a: fixed_batches(d, run.batch_size) for a, d in data.val.items()}
        started = time.perf_counter()
        from nar.training.loop import train

        result = train(run.model, run.train, batches, val, None, out_dir=None)
    train_s = time.perf_counter() - started
    model = result.model.eval()
    if args.save:
        save_network(model, run, args.save, f"{args.run}-recipe")
    scores = score(model, algorithm, args.val, args.seed)
    write_result(args, scores, {"best_step": result.best_step, "train_seconds": round(train_s, 1)})


def score(model, algorithm: str, items: str, seed: int) -> dict[str, float]:
    """Pointer accuracy (%) on each validation item; the draw depends on ``seed`` only, so runs of one
    seed are scored on the same graphs."""
    scores = {}
    vrng = np.random.default_rng([seed, 99])
    for item in items.split(","):
        scores[item] = round(100 * pointer_accuracy(model, draw_val(algorithm, item, vrng), algorithm), 2)
        print(item, f"{scores[item]:.2f} %", flush=True)
    return scores


def score_saved(directory: Path, items: str, seed: int) -> dict[str, float]:
    """``score`` for a saved network (``nar pretrain``'s or ``--save``'s directory); its first algorithm."""
    from nar.execute import load_pretrained

    model = load_pretrained(str(directory)).model.eval()
    return score(model, sorted(model.specs)[0], items, seed)


def write_result(args: argparse.Namespace, scores: dict[str, float], extra: dict[str, Any]) -> None:
    source = f"--model {args.model}" if args.model is not None else f"--run {args.run}"
    command = " ".join([source, *(f"--set {s}" for s in args.set), f"--seed {args.seed}", f"--val {args.val}"])
    result = {"command": f"python benchmarks/bench_recipe.py {command}", "seed": args.seed}
    result |= {"val_pointer_acc_percent": scores, **extra}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
