"""``nar execute``: run a pretrained processor on a graph file, thin over :mod:`nar.execute`.

``nar.cli.build_parser`` hooks it in with ``add_execute_parser(sub)``. This module only reads the
graph file (GraphML, edge list, JSON) into ``(num_nodes, edges, weights)`` while remembering the
file's node ids, so that the user's source and the printed/written pointers use the ids of the
file, not internal indices. Validation of the graph itself (NaN, negative weights, parallel edges,
memory) is :mod:`nar.execute`'s, so the library and the CLI refuse the same graphs with the same
words. torch is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nar.errors import UserError

FORMATS = {".graphml": "graphml", ".edgelist": "edgelist", ".txt": "edgelist", ".json": "json"}
DEFAULT_MODEL = "models/pretrain/bellman_ford"


@dataclass(frozen=True)
class GraphFile:
    """A graph read from a file: directed edge lists over indices 0..N-1 and the file's id of each index."""

    ids: list[Any]
    edges: np.ndarray  # (E, 2) int64 u -> v; an undirected file lists both directions
    weights: np.ndarray  # (E,) float64
    directed: bool
    file_edges: int  # edges as the file counts them (an undirected edge once)

    @property
    def num_nodes(self) -> int:
        return len(self.ids)


def _weight(value: Any, where: str) -> float:
    """A weight as float, or one line saying which edge has what."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UserError(f"{where}: weight {value!r} is not a number") from None


def _from_pairs(ids: list[Any], rows: list[tuple[int, int, float]], directed: bool, path: Path, what: str) -> GraphFile:
    """Index rows (u, v, w) -> GraphFile; undirected rows go both ways. The same edge twice with two
    different weights is refused (which one would the user mean?); twice with one weight is kept once."""
    seen: dict[tuple[int, int], float] = {}
    for u, v, w in rows:
        for key in [(u, v)] if directed else [(u, v), (v, u)]:
            if key in seen and not (seen[key] == w or (math.isnan(w) and math.isnan(seen[key]))):
                raise UserError(
                    f"{path}: {what} {ids[key[0]]} -> {ids[key[1]]} appears twice with weights "
                    f"{seen[key]} and {w}; keep one"
                )
            seen[key] = w
    edges = np.array(list(seen), dtype=np.int64).reshape(-1, 2)
    weights = np.array(list(seen.values()), dtype=np.float64)
    file_edges = len({(u, v) if directed else (min(u, v), max(u, v)) for u, v, _ in rows})
    return GraphFile(ids, edges, weights, directed, file_edges)


def read_graphml(path: Path, weight: str) -> GraphFile:
    """GraphML through networkx: node order and ids as in the file, direction as the file declares.

    A graph without any ``weight`` attribute is unweighted (every edge 1); one where only some edges
    have it is refused, since a silent default would change shortest paths.
    """
    import networkx as nx

    try:
        g = nx.read_graphml(path)
    except Exception as exc:  # noqa: BLE001 - xml, networkx and type errors: all mean "not readable GraphML"
        raise UserError(
            f"{path}: cannot read GraphML: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    ids = list(g.nodes)
    index = {v: i for i, v in enumerate(ids)}
    data = list(g.edges(data=True))
    have = sum(weight in d for _, _, d in data)
    if 0 < have < len(data):
        u, v, _ = next(e for e in data if weight not in e[2])
        raise UserError(f"{path}: edge {u} -> {v} has no {weight!r} attribute, but other edges do")
    if data and not have:
        print(f"{path}: no edge has a {weight!r} attribute: every edge weighs 1", file=sys.stderr)
    rows = [(index[u], index[v], _weight(d.get(weight, 1.0), f"{path}: edge {u} -> {v}")) for u, v, d in data]
    return _from_pairs(ids, rows, g.is_directed(), path, "edge")


def read_edgelist(path: Path, directed: bool) -> GraphFile:
    """``u v [w]`` lines (``#`` comments, blank lines skipped); ids are the file's tokens, in order of
    first appearance; a missing weight is 1."""
    ids: list[str] = []
    index: dict[str, int] = {}
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        tokens = line.split("#", 1)[0].split()
        if not tokens:
            continue
        if len(tokens) not in (2, 3):
            raise UserError(f"{path}:{number}: expected 'u v' or 'u v weight', got {line.strip()!r}")
        for t in tokens[:2]:
            if t not in index:
                index[t] = len(ids)
                ids.append(t)
        w = _weight(tokens[2], f"{path}:{number}") if len(tokens) == 3 else 1.0
        rows.append((index[tokens[0]], index[tokens[1]], w))
    return _from_pairs(ids, rows, directed, path, "edge")


def read_json(path: Path, directed: bool) -> GraphFile:
    """``{"num_nodes": N, "edges": [[u, v], ...], "weights": [...]}`` (optional ``"directed"``);
    nodes are 0..N-1. Weights may be left out (all 1)."""
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict) or "num_nodes" not in data or "edges" not in data:
        raise UserError(f'{path}: expected an object {{"num_nodes": N, "edges": [[u, v], ...], "weights": [...]}}')
    n = data["num_nodes"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise UserError(f"{path}: num_nodes must be an integer >= 0, got {n!r}")
    edges = data["edges"]
    weights = data.get("weights", [1.0] * len(edges) if isinstance(edges, list) else None)
    if not isinstance(edges, list) or not isinstance(weights, list):
        raise UserError(f"{path}: edges and weights must be lists")
    if len(weights) != len(edges):
        raise UserError(f"{path}: {len(edges)} edges but {len(weights)} weights")
    rows = []
    for k, (e, w) in enumerate(zip(edges, weights, strict=True)):
        ok = isinstance(e, list) and len(e) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in e)
        if not ok or not (0 <= e[0] < n and 0 <= e[1] < n):
            raise UserError(f"{path}: edges[{k}] = {e!r} is not a pair of node ids in 0..{n - 1}")
        rows.append((e[0], e[1], _weight(w, f"{path}: weights[{k}]")))
    return _from_pairs(list(range(n)), rows, directed or bool(data.get("directed", False)), path, "edge")


def read_graph(path: str | Path, weight: str = "weight", directed: bool = False) -> GraphFile:
    """Read a graph file by its extension (:data:`FORMATS`)."""
    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"{path}: unknown graph format {path.suffix!r}; allowed: {', '.join(FORMATS)}")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        if kind == "graphml":
            return read_graphml(path, weight)
        if kind == "json":
            return read_json(path, directed)
        return read_edgelist(path, directed)
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read: {exc}") from None


def find_source(g: GraphFile, source: str, path: str) -> int:
    """The index of the node whose file id reads ``source``."""
    for i, v in enumerate(g.ids):
        if str(v) == source:
            return i
    sample = ", ".join(repr(str(v)) for v in g.ids[:3])
    raise UserError(f"--source {source!r} is not a node of {path}; its node ids look like {sample}, ...")


def cmd_execute(args: argparse.Namespace) -> None:
    from nar.limits import inside_workspace

    out = inside_workspace(args.out, "--out") if args.out else None  # refused before any work
    g = read_graph(args.graph, args.weight, args.directed)
    if g.num_nodes == 0:
        raise UserError(f"{args.graph}: the graph has no nodes; at least one is needed")
    source = find_source(g, args.source, args.graph)

    import torch

    from nar.execute import load_pretrained

    if args.threads:
        torch.set_num_threads(args.threads)
    executor = load_pretrained(args.model)
    algorithm = args.algorithm
    if algorithm is None:
        if len(executor.algorithms) != 1:
            raise UserError(f"--algorithm is needed: model {args.model} executes {executor.algorithms}")
        algorithm = executor.algorithms[0]
    result = executor.run(algorithm, (g.num_nodes, g.edges, g.weights), source, steps=args.steps, compare=args.compare)

    kind = "directed" if g.directed else "undirected"
    print(f"{algorithm} on {args.graph}: {g.num_nodes} nodes, {g.file_edges} {kind} edges, source {g.ids[source]}")
    print(f"  {result.steps} processor steps, {result.seconds:.3f} s")
    if result.accuracy is not None:
        print(f"  pointer accuracy against the exact {algorithm}: {100 * result.accuracy:.2f} %")
    if out is not None:
        by_id = lambda pi: {str(g.ids[v]): g.ids[int(p)] for v, p in enumerate(pi)}  # noqa: E731
        report: dict[str, Any] = {
            "model": str(args.model),
            "algorithm": algorithm,
            "graph": str(args.graph),
            "source": g.ids[source],
            "nodes": g.num_nodes,
            "edges": g.file_edges,
            "directed": g.directed,
            "steps": result.steps,
            "seconds": result.seconds,
            "predecessors": by_id(result.pi),
        }
        if result.accuracy is not None and result.exact_pi is not None:
            report["accuracy"] = result.accuracy
            report["exact_predecessors"] = by_id(result.exact_pi)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1, default=str) + "\n")
        print(f"  predecessors -> {args.out}")


def add_execute_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``execute`` to ``nar``'s subparsers; returns its parser."""
    p = subparsers.add_parser("execute", help="run a pretrained processor on a graph file (.graphml, .edgelist, .json)")
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"pretraining run directory, or a registered version such as models:/nar-processor@champion "
        f"(default: {DEFAULT_MODEL})",
    )
    p.add_argument("--graph", required=True, help="graph file: .graphml, .edgelist/.txt ('u v w' lines) or .json")
    p.add_argument("--source", required=True, help="source node, by its id in the file")
    p.add_argument("--algorithm", help="algorithm to execute (default: the model's only one)")
    p.add_argument("--weight", default="weight", help="GraphML edge attribute holding the weight (default: weight)")
    p.add_argument("--directed", action="store_true", help="edge list / JSON edges are one-way (default: both ways)")
    p.add_argument("--steps", type=int, help="processor steps (default: from the graph's structure)")
    p.add_argument("--compare", action="store_true", help="score the pointers against the exact algorithm")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--out", help="JSON file inside the workspace: the predecessor of every node, by file id")
    p.set_defaults(func=cmd_execute)
    return p
