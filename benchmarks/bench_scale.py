"""Pretrained processors on the scale suite: pointer accuracy, seconds and peak memory per family and size.

Why: the blueprint assumes the frozen processor executes its algorithm on the user's graphs (grids,
road networks, meshes, long paths, hundreds to thousands of nodes), not only on the n = 64
Erdős–Rényi graphs of its test split (DESIGN.md "Scale", issue 14). This runs each pretraining run
directory on :func:`nar.scale.suite.suite` through :mod:`nar.execute` (sparse messages, the path a
user takes) and scores the pointers with :mod:`nar.scale.reference` (scipy, independent of
``nar.algorithms``).

Every algorithm of the suite that a model knows runs (bfs, bellman_ford, dijkstra, mst_prim; mst_prim
on undirected graphs only). A processor without a sparse step (``full_adjacency: true``, the dijkstra
and mst_prim runs: all-pairs messages for a global argmin) runs densely, O(N²) a step for about N
steps, so its cells above ``--dense-max-nodes`` (default 256) are not run: the JSON lists each under
``skipped`` with its reason.

Processor steps (``--steps``):

* ``exact``: the algorithm's own trajectory length, read off the reference answer (CLRS's test
  convention, where the hints' length is known): the tree depth for bfs and bellman_ford, the
  number of reachable nodes for dijkstra and mst_prim. Measures execution given the right length.
* ``default``: :func:`nar.execute.default_steps`, from what a user sees without solving the problem
  (for bellman_ford ``ceil(1.5 x BFS depth) + 2``, since its depth depends on the weights).

Both are run for bellman_ford by default, ``exact`` for the others.

Peak memory: for each family, one graph of ``--memory-size`` nodes (and the fixed-size Helsinki
graphs) runs in a fresh subprocess, which reports its peak resident memory (``VmHWM``, the
``ru_maxrss`` of its own image: see :func:`_maxrss_mb`) after importing torch and loading the model
(the baseline) and again after the run: the difference is what running costs. Seconds
are :class:`nar.execute.Execution`'s (the model's forward pass and the pointer read-out) and, as
``wall_seconds``, the whole ``Executor.run`` (building the sparse or dense batch included).

    python benchmarks/bench_scale.py                               # every models/pretrain/<run>
    python benchmarks/bench_scale.py --model models/pretrain/bellman_ford --sizes 64,256 \\
        --graphs-per-cell 1 --out /tmp/scale.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_OUT = "benchmarks/results/scale.json"
DEFAULT_PNG = "plots/scale.png"
MODELS_ROOT = Path("models/pretrain")
STEPS_MODES = ("exact", "default")
DENSE_MAX_NODES = 256  # dense runs cost O(N²) a step and about N steps: 1,024 nodes would take hours
MEMORY_CHILD = "--memory-child"  # hidden first argument: this file runs as the memory subprocess


@dataclass
class Cell:
    """One (model, algorithm, steps mode, family, size): its graphs, their references and steps."""

    model: str
    algorithm: str
    mode: str
    family: str
    n: int
    graphs: list[Any]
    refs: list[Any]
    steps: list[int]
    work: float = 0.0  # (N + E) x steps summed: proportional to the run time, for the ETA
    scores: list[float] = field(default_factory=list)
    exact: list[bool] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)


def steps_modes(algorithm: str, asked: str | None) -> list[str]:
    """The steps modes to run: ``asked`` ("both" = all), by default both for bellman_ford (whose default
    steps are a guess from hop depth) and exact for the others (whose default is exact already)."""
    choice = asked or ("both" if algorithm == "bellman_ford" else "exact")
    return list(STEPS_MODES) if choice == "both" else [choice]


def run_dirs(given: list[str] | None) -> list[Path]:
    """``--model`` directories, or every pretraining run under models/pretrain."""
    if given:
        return [Path(d) for d in given]
    if not MODELS_ROOT.is_dir():
        return []
    return sorted(
        p for p in MODELS_ROOT.iterdir() if (p / "model.json").is_file() and (p / "model.safetensors").is_file()
    )


def machine(threads: int, device: str) -> dict[str, Any]:
    """What the seconds depend on."""
    import torch
    from bench_train import cpu_model  # a sibling script: python puts benchmarks/ on sys.path

    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "threads_asked": threads,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        "load_average_at_start": list(os.getloadavg()),
    }


def build_cells(
    name: str,
    algorithms: list[str],
    modes_for: dict[str, list[str]],
    graphs: list[Any],
    dense_max_nodes: int | None = None,
) -> tuple[list[Cell], list[str], list[dict[str, Any]]]:
    """Every (algorithm, mode, family, size) cell with its references and steps, computed up front (scipy,
    milliseconds a graph) so that the ETA can weigh cells by their cost.

    ``dense_max_nodes``: the model runs densely, and cells with more nodes are not run. Returns the cells,
    the algorithm/family pairs that are not applicable, and the skipped cells (one dict each, with a reason).
    """
    from nar.execute import as_user_graph, default_steps, reference_steps
    from nar.scale.reference import applicable, exact

    cells: list[Cell] = []
    not_applicable: list[str] = []
    skipped: list[dict[str, Any]] = []
    for algorithm in algorithms:
        groups: dict[tuple[str, int], list[Any]] = {}
        for g in graphs:
            if applicable(algorithm, g):
                groups.setdefault((g.family, g.num_nodes), []).append(g)
            elif f"{algorithm}/{g.family}" not in not_applicable:
                not_applicable.append(f"{algorithm}/{g.family}")
        for (family, n), members in groups.items():
            if dense_max_nodes is not None and n > dense_max_nodes:
                reason = (
                    f"dense processor (full_adjacency: O(N²) a step, about N steps): n = {n} > "
                    f"--dense-max-nodes {dense_max_nodes}"
                )
                for mode in modes_for[algorithm]:
                    cell = {"algorithm": algorithm, "mode": mode, "family": family, "n": n, "graphs": len(members)}
                    skipped.append({**cell, "reason": reason})
                continue
            refs = [exact(algorithm, g) for g in members]
            for mode in modes_for[algorithm]:
                if mode == "exact":
                    steps = [reference_steps(algorithm, r) for r in refs]
                else:
                    steps = [default_steps(algorithm, as_user_graph(g), g.source) for g in members]
                work = float(sum((g.num_nodes + g.num_edges) * s for g, s in zip(members, steps, strict=True)))
                cells.append(Cell(name, algorithm, mode, family, n, members, refs, steps, work))
    return cells, not_applicable, skipped


def summarise(cell: Cell) -> dict[str, Any]:
    """The JSON entry of one cell (accuracy in percent; standard error over graphs, None for one graph)."""
    acc = 100.0 * np.asarray(cell.scores)
    k = len(acc)
    return {
        "accuracy": float(acc.mean()),
        "stderr": float(acc.std(ddof=1) / math.sqrt(k)) if k > 1 else None,
        "graphs": k,
        "nodes": int(round(np.mean([g.num_nodes for g in cell.graphs]))),
        "edges": float(np.mean([g.num_edges for g in cell.graphs])),
        "directed": bool(any(g.directed for g in cell.graphs)),
        "exact_match": float(np.mean(cell.exact)),
        "steps": float(np.mean(cell.steps)),
        "seconds": float(np.mean(cell.seconds)),
        "wall_seconds": float(np.mean(cell.wall)),
        "per_graph": [round(float(a), 4) for a in acc],
        "names": [g.name for g in cell.graphs],
    }


def duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def run_cells(executor: Any, cells: list[Cell], done_work: float, total_work: float, started: float) -> float:
    """Run every graph of every cell; prints one line per cell with an ETA by remaining work."""
    from nar.scale.reference import pointer_correct

    for i, cell in enumerate(cells):
        for g, ref, steps in zip(cell.graphs, cell.refs, cell.steps, strict=True):
            t0 = time.perf_counter()
            result = executor.run(cell.algorithm, g, g.source, steps=steps)
            cell.wall.append(time.perf_counter() - t0)
            correct = pointer_correct(cell.algorithm, g, result.pi, ref)
            cell.scores.append(float(correct.mean()))
            cell.exact.append(bool(correct.all()))
            cell.seconds.append(result.seconds)
        done_work += cell.work
        elapsed = time.perf_counter() - started
        eta = elapsed / done_work * (total_work - done_work) if done_work else float("nan")
        s = summarise(cell)
        err = f" ± {s['stderr']:.2f}" if s["stderr"] is not None else ""
        print(
            f"[{i + 1}/{len(cells)}] {cell.model} {cell.algorithm} ({cell.mode} steps) {cell.family} n={cell.n}: "
            f"{s['accuracy']:.2f} %{err} over {s['graphs']}, {s['seconds']:.3f} s/graph, {s['steps']:.0f} steps"
            f" | elapsed {duration(elapsed)}, ETA {duration(eta)}",
            file=sys.stderr,
            flush=True,
        )
    return done_work


# --------------------------------------------------------------------------- peak memory


def _maxrss_mb() -> float:
    """This process's peak resident memory in MB.

    Linux's ``ru_maxrss`` survives ``execve``: a child forked from this (large) benchmark process would
    report the parent's peak. ``VmHWM`` of /proc/self/status is the peak of the child's own address
    space since its exec, so it is read where it exists; ``ru_maxrss`` elsewhere.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes; macOS: bytes


def memory_child(argv: list[str]) -> None:
    """In a fresh process: import torch, load the model (baseline peak), run one graph (peak); print JSON."""
    npz, model_dir, algorithm, steps, device, threads = argv
    import torch

    from nar.execute import load_pretrained

    torch.set_num_threads(int(threads))
    executor = load_pretrained(model_dir, device)
    data = np.load(npz)
    graph = (int(data["num_nodes"]), data["edges"], data["weights"])
    baseline = _maxrss_mb()
    result = executor.run(algorithm, graph, int(data["source"]), steps=int(steps))
    out = {"baseline_mb": baseline, "peak_mb": _maxrss_mb(), "seconds": result.seconds}
    if device.startswith("cuda"):
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(out))


def measure_memory(model_dir: Path, algorithm: str, g: Any, steps: int, device: str, threads: int) -> dict[str, Any]:
    """Peak RSS of running ``g`` in a fresh subprocess, minus its baseline (torch imported, model loaded)."""
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "graph.npz"
        np.savez(npz, num_nodes=g.num_nodes, edges=g.edges, weights=g.weights, source=g.source)
        argv = [str(npz), str(model_dir), algorithm, str(steps), device, str(threads)]
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), MEMORY_CHILD, *argv], capture_output=True, text=True
        )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {proc.returncode}: {tail}", "graph": g.name, "nodes": g.num_nodes}
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    child["run_mb"] = child["peak_mb"] - child["baseline_mb"]
    return {"graph": g.name, "nodes": g.num_nodes, "edges": g.num_edges, "steps": steps, **child}


# --------------------------------------------------------------------------- plot


def plot(results: dict[str, Any], sizes: list[int], path: Path) -> None:
    """One panel per (model, algorithm, steps mode): accuracy against n (log2) per family; the fixed-size
    Helsinki graphs as single markers at their own size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nar.scale.suite import FAMILIES, FIXED_SIZE

    panels = [
        (model, algorithm, mode, by_family)
        for model, entry in results.items()
        for algorithm, modes in entry["results"].items()
        for mode, by_family in modes.items()
    ]
    if not panels:
        return
    # the ten families with a size of their own: ten distinct tab10 colours; the fixed-size Helsinki graphs:
    # black markers (a star for the whole network, a diamond for its junctions)
    lines = [f for f in FAMILIES if f not in FIXED_SIZE]
    colours = {f: plt.get_cmap("tab10")(i % 10) for i, f in enumerate(lines)} | {f: "black" for f in FIXED_SIZE}
    fixed_markers = {"helsinki": "*", "helsinki_junctions": "D"}
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False, sharey=True)
    handles: dict[str, Any] = {}
    all_n: set[int] = set(sizes)
    for ax, (model, algorithm, mode, by_family) in zip(axes.flat, panels, strict=False):
        for family, by_n in by_family.items():
            ns = sorted(int(n) for n in by_n)
            acc = [by_n[str(n)]["accuracy"] for n in ns]
            err = [by_n[str(n)]["stderr"] or 0.0 for n in ns]
            all_n.update(ns)
            if family in FIXED_SIZE:
                h = ax.scatter(
                    ns, acc, marker=fixed_markers.get(family, "s"), s=80, color=colours.get(family), zorder=3
                )
            else:
                h = ax.errorbar(ns, acc, yerr=err, marker="o", ms=4, lw=1.4, capsize=2, color=colours.get(family))
            handles.setdefault(family, h)
        ax.set_xscale("log", base=2)
        ax.set_title(f"{algorithm} ({mode} steps)" + (f"\n{model}" if len(results) > 1 else ""), fontsize=10)
        ax.set_xlabel("nodes n")
        ax.grid(True, alpha=0.3)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    ticks = sorted(all_n)
    for ax in axes.flat[: len(panels)]:
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(t) for t in ticks], rotation=45, fontsize=8)
        ax.minorticks_off()
    for ax in axes[:, 0]:
        ax.set_ylabel("pointer accuracy (%)")
    top = max(ax.get_ylim()[1] for ax in axes.flat[: len(panels)])
    axes.flat[0].set_ylim(top=min(top, 101.0))
    fig.legend(list(handles.values()), list(handles), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=9)
    fig.suptitle("Scale suite: pointer accuracy against graph size")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", help="pretraining run directory; repeat (default: models/pretrain/*)")
    p.add_argument("--sizes", default="64,256,1024", help="comma-separated node counts (default: 64,256,1024)")
    p.add_argument("--families", help="comma-separated suite families (default: all)")
    p.add_argument("--graphs-per-cell", type=int, default=3, help="graphs per (family, size) (default: 3)")
    p.add_argument("--seed", type=int, default=0, help="suite seed (default: 0)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"JSON results (default: {DEFAULT_OUT})")
    p.add_argument("--png", help=f"plot (default: {DEFAULT_PNG} with the default --out, else next to the JSON)")
    p.add_argument(
        "--steps",
        choices=["exact", "default", "both"],
        help="processor steps: the reference's trajectory length, default_steps, or both "
        "(default: both for bellman_ford, exact otherwise)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1, the 1-core target)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:i] when available")
    p.add_argument("--memory-size", type=int, default=1024, help="n of the peak-memory graphs (default: 1024)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument(
        "--dense-max-nodes",
        type=int,
        default=DENSE_MAX_NODES,
        help="largest n run by a model without a sparse step (full_adjacency; dense, O(N²) a step); larger "
        f"cells are listed under 'skipped' (default: {DENSE_MAX_NODES})",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    import torch

    from nar.errors import NarError
    from nar.execute import load_pretrained
    from nar.scale.reference import ALGORITHMS as SUPPORTED
    from nar.scale.suite import FAMILIES, FIXED_SIZE, suite

    def fail(message: str) -> int:
        print(f"bench_scale: error: {message}", file=sys.stderr)
        return 2

    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        return fail(f"--sizes {args.sizes!r}: expected comma-separated integers")
    if args.dense_max_nodes < 1:
        return fail(f"--dense-max-nodes must be >= 1, got {args.dense_max_nodes}")
    families = [f.strip() for f in args.families.split(",") if f.strip()] if args.families else list(FAMILIES)
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        return fail(f"--families: unknown {unknown}; known: {', '.join(FAMILIES)}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        return fail(f"--device {args.device}: CUDA is not available here")
    dirs = run_dirs(args.model)
    if not dirs:
        return fail(f"no pretraining runs under {MODELS_ROOT}; give --model DIR")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    png = Path(args.png) if args.png else (Path(DEFAULT_PNG) if args.out == DEFAULT_OUT else out.with_suffix(".png"))

    graphs = suite(sizes, families, args.graphs_per_cell, args.seed)
    print(f"scale suite: {len(graphs)} graphs ({', '.join(families)}; n = {sizes})", file=sys.stderr)
    executors, cells_of, not_applicable_of, skipped_of = {}, {}, {}, {}
    for d in dirs:
        try:
            executor = load_pretrained(d, args.device)
        except NarError as exc:
            return fail(str(exc))
        name = executor.name if executor.name not in executors else str(d)
        algorithms = [a for a in executor.algorithms if a in SUPPORTED]
        modes_for = {a: steps_modes(a, args.steps) for a in algorithms}
        executors[name] = (d, executor)
        dense_max = None if executor.sparse else args.dense_max_nodes
        cells_of[name], not_applicable_of[name], skipped_of[name] = build_cells(
            name, algorithms, modes_for, graphs, dense_max
        )
        how = "sparse" if executor.sparse else f"dense, n <= {dense_max}"
        print(
            f"model {name} ({d}): {algorithms} ({how}), {len(cells_of[name])} cells"
            + (f", {len(skipped_of[name])} skipped (n > --dense-max-nodes)" if skipped_of[name] else ""),
            file=sys.stderr,
        )
    total_work = sum(c.work for cells in cells_of.values() for c in cells)

    results: dict[str, Any] = {}
    done_work, run_started = 0.0, time.perf_counter()
    for name, (d, executor) in executors.items():
        cells = cells_of[name]
        for algorithm in dict.fromkeys(c.algorithm for c in cells):  # untimed warm-up: lazy init, CUDA kernels
            g = next(c.graphs[0] for c in cells if c.algorithm == algorithm)
            executor.run(algorithm, g, g.source, steps=2)
        done_work = run_cells(executor, cells, done_work, total_work, run_started)
        table: dict[str, Any] = {}
        for c in cells:
            table.setdefault(c.algorithm, {}).setdefault(c.mode, {}).setdefault(c.family, {})[str(c.n)] = summarise(c)
        memory: dict[str, Any] = {}
        if not args.no_memory and args.memory_size in sizes:
            picks = [c for c in cells if c.mode == steps_modes(c.algorithm, args.steps)[0]]
            picks = [c for c in picks if c.n == args.memory_size or c.family in FIXED_SIZE]
            seen: set[tuple[str, str]] = set()
            for c in picks:
                if (c.algorithm, c.family) in seen:
                    continue
                seen.add((c.algorithm, c.family))
                m = measure_memory(d, c.algorithm, c.graphs[0], c.steps[0], args.device, args.threads)
                memory.setdefault(c.algorithm, {})[c.family] = m
                print(
                    f"memory {name} {c.algorithm} {c.graphs[0].name}: "
                    + (m["error"] if "error" in m else f"peak {m['peak_mb']:.0f} MB, run +{m['run_mb']:.0f} MB"),
                    file=sys.stderr,
                    flush=True,
                )
        results[name] = {
            "dir": str(d),
            "algorithms": sorted(table),
            "messages": "sparse" if executor.sparse else "dense",
            "not_applicable": not_applicable_of[name],
            "skipped": skipped_of[name],
            "results": table,
            "memory": memory,
        }

    report = {
        "benchmark": "scale",
        "command": shlex.join(["python", "benchmarks/bench_scale.py", *(sys.argv[1:] if argv is None else argv)]),
        "seed": args.seed,
        "sizes": sizes,
        "families": families,
        "graphs_per_cell": args.graphs_per_cell,
        "steps": args.steps or "both for bellman_ford, exact otherwise",
        "dense_max_nodes": args.dense_max_nodes,
        "machine": machine(args.threads, args.device),
        "wall_seconds": time.perf_counter() - started,
        "units": {
            "accuracy": "percent of nodes with a correct pointer, mean over graphs",
            "stderr": "standard error of that mean over graphs, percent (null for one graph)",
            "seconds": "Execution.seconds (model forward + pointer read-out), mean per graph",
            "wall_seconds": "Executor.run including the sparse or dense batch, mean per graph",
            "memory": "MB of peak RSS (VmHWM) of a fresh subprocess: baseline (torch + model), peak, run = difference",
        },
        "models": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    plot(results, sizes, png)
    print(f"wrote {out} and {png} in {duration(report['wall_seconds'])}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == MEMORY_CHILD:
        memory_child(sys.argv[2:])
    else:
        sys.exit(main())
