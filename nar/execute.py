"""Run a pretrained processor on your own graph: ``load_pretrained(...).run(algorithm, graph, source)``.

The model (encoders, processor, decoders of a pretraining run) executes the algorithm on the
graph's edge list (sparse messages, ``nar.models.sparse``), so a 1,024-node road network costs
O(edges) per step, not O(N²). A processor without a sparse step (``full_adjacency: true``: messages
between all pairs, for the global argmin of dijkstra and mst_prim) runs densely instead, on (N, N)
tensors: O(N²) per step, so graphs too big for memory are refused. Graphs come as a networkx
``Graph``/``DiGraph`` (``weight`` attribute, default 1), a :class:`nar.scale.suite.SuiteGraph`, or
``(num_nodes, edges, weights)`` with edges (E, 2) u -> v (an undirected graph lists both directions).

Processor steps: the algorithm's own trajectory length when it follows from the visible
structure (bfs: the BFS depth of the source; dijkstra and mst_prim: one step per reachable
node); for bellman_ford (whose depth depends on the weights) ``ceil(1.5 x BFS depth) + 2``
unless ``steps`` is given.

    from nar.execute import load_pretrained
    ex = load_pretrained("models/pretrain/bellman_ford")
    result = ex.run("bellman_ford", g, source=0, compare=True)
    result.pi, result.accuracy
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nar.algorithms import ALGORITHMS
from nar.algorithms.base import hop_depths
from nar.algorithms.spec import AlgorithmSpec, Location, Type
from nar.data.batching import Batch
from nar.errors import UserError
from nar.models import EncodeProcessDecode, ModelConfig
from nar.models.layers import Pairs
from nar.models.sparse import SparseBatch, pointer_predictions

#: How each hint starts (step 0), per algorithm that runs on user graphs: "self" (pointers to
#: themselves), "zero", or "source" (one-hot at the source). Read off the algorithms' traces.
INITIAL_HINTS: dict[str, dict[str, str]] = {
    "bfs": {"reach_h": "source", "pi_h": "self"},
    "bellman_ford": {"pi_h": "self", "d": "zero", "msk": "source"},
    "dijkstra": {"pi_h": "self", "d": "zero", "mark": "zero", "in_queue": "source", "u": "source"},
    "mst_prim": {"pi_h": "self", "key": "zero", "mark": "zero", "in_queue": "source", "u": "source"},
}


def initial_hints(algorithm: str, is_source: torch.Tensor) -> dict[str, torch.Tensor]:
    """Step-0 hints of ``algorithm`` on V nodes: one graph or a flat batch of several (the one place
    that reads :data:`INITIAL_HINTS`).

    ``is_source`` (V,): 1 at each graph's source, 0 elsewhere (any dtype; its device is the result's).
    Returns ``{hint name: (V, 1)}`` in the spec's hint order (only step 0 is read, so the time axis is 1):
    "self" pointers as int64 global node ids (``arange(V)``: a flat batch's pointers are global, so each
    node points at itself in every graph), "zero" as float32 zeros, "source" as ``is_source`` in float32.
    """
    V, dev = is_source.shape[0], is_source.device
    start = {
        "self": torch.arange(V, device=dev),
        "zero": torch.zeros(V, dtype=torch.float32, device=dev),
        "source": is_source.float(),
    }
    kinds = INITIAL_HINTS[algorithm]
    return {f.name: start[kinds[f.name]].unsqueeze(1) for f in ALGORITHMS[algorithm].spec.hints}


#: bytes of memory a run may plan to use (pairs x hidden x steps kept for autograd are not kept:
#: inference holds a few (P, H) tensors at a time)
MEMORY_LIMIT = 8 << 30
#: (N, N, H) float32 tensors a dense step may hold at once (edge features, messages, their MLP
#: layers, the masked max): the same allowance as the sparse path's 16 (P, H) tensors
DENSE_TENSORS = 16


@dataclass(frozen=True)
class UserGraph:
    """A validated graph: ``edges`` (E, 2) u -> v without self-loops or duplicates, ``weights`` (E,)."""

    num_nodes: int
    edges: np.ndarray
    weights: np.ndarray


@dataclass
class Execution:
    """What ``Executor.run`` returns. ``pi`` (N,): the predecessor of each node (itself for the
    source and unreached nodes). ``accuracy`` / ``exact_pi`` only with ``compare=True``."""

    algorithm: str
    pi: np.ndarray
    steps: int
    seconds: float
    accuracy: float | None = None
    exact_pi: np.ndarray | None = None


def as_user_graph(graph: Any) -> UserGraph:
    """networkx graph, SuiteGraph-like object or (num_nodes, edges, weights) -> UserGraph (checked)."""
    if hasattr(graph, "edges") and hasattr(graph, "num_nodes") and hasattr(graph, "weights"):
        n, edges, weights = graph.num_nodes, graph.edges, graph.weights
    elif hasattr(graph, "is_directed") and hasattr(graph, "nodes"):
        nodes = list(graph.nodes)
        index = {v: i for i, v in enumerate(nodes)}
        rows = []
        for u, v, data in graph.edges(data=True):
            w = data.get("weight", 1.0)
            rows.append((index[u], index[v], w))
            if not graph.is_directed():
                rows.append((index[v], index[u], w))
        n = len(nodes)
        edges = np.array([(u, v) for u, v, _ in rows], dtype=np.int64).reshape(-1, 2)
        try:
            weights = np.array([w for _, _, w in rows], dtype=np.float64)
        except (TypeError, ValueError):
            raise UserError("graph: every edge weight must be a number") from None
    elif isinstance(graph, tuple) and len(graph) == 3:
        n, edges, weights = graph
    else:
        raise UserError(
            f"graph: a {type(graph).__name__} is not a graph; allowed: a networkx Graph/DiGraph, "
            "a nar.scale SuiteGraph, or (num_nodes, edges (E, 2), weights (E,))"
        )
    n = int(n)
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    if n < 1:
        raise UserError("graph: it has no nodes; at least one is needed")
    if len(weights) != len(edges):
        raise UserError(f"graph: {len(edges)} edges but {len(weights)} weights")
    if len(edges) and (edges.min() < 0 or edges.max() >= n):
        raise UserError(f"graph: an edge names a node outside 0..{n - 1}")
    if not np.all(np.isfinite(weights)):
        raise UserError("graph: a weight is NaN or infinite; weights must be finite numbers")
    keep = edges[:, 0] != edges[:, 1]  # self-loops never change a shortest path or a spanning tree
    edges, weights = edges[keep], weights[keep]
    key = edges[:, 0] * n + edges[:, 1]
    if len(np.unique(key)) != len(key):
        raise UserError("graph: parallel edges (the same u -> v twice); keep one of each")
    return UserGraph(n, edges, weights)


def default_steps(algorithm: str, g: UserGraph, source: int) -> int:
    """Processor steps from the visible structure (module docstring)."""
    depth = hop_depths(g.num_nodes, g.edges, source)
    if algorithm in ("dijkstra", "mst_prim"):
        return max(1, int((depth >= 0).sum()))
    ecc = int(depth.max())
    if algorithm == "bfs":
        return max(1, ecc)
    return max(1, math.ceil(1.5 * ecc) + 2)


class Executor:
    """A pretrained encode-process-decode model, run on user graphs: with sparse messages when its
    processor has a sparse step, densely (all pairs, O(N²) a step) when it has none."""

    def __init__(self, model: EncodeProcessDecode, name: str = "", device: str | torch.device = "cpu") -> None:
        self.model = model.to(device).eval()
        self.name = name
        self.device = torch.device(device)

    @property
    def algorithms(self) -> list[str]:
        return sorted(self.model.specs)

    @property
    def sparse(self) -> bool:
        """Whether runs pass sparse messages (O(edges) a step); False: dense, O(N²) a step."""
        return self.model.processor.supports_sparse

    def run(
        self,
        algorithm: str,
        graph: Any,
        source: int = 0,
        *,
        steps: int | None = None,
        compare: bool = False,
    ) -> Execution:
        """Execute ``algorithm`` on ``graph`` from ``source``; ``compare`` scores it against the exact answer."""
        if algorithm not in self.model.specs:
            raise UserError(f"algorithm {algorithm!r}: this model executes {self.algorithms}")
        if algorithm not in INITIAL_HINTS:
            raise UserError(f"algorithm {algorithm!r} cannot run on user graphs; allowed: {sorted(INITIAL_HINTS)}")
        g = as_user_graph(graph)
        if not 0 <= int(source) < g.num_nodes:
            raise UserError(f"source {source} is not a node; allowed: 0..{g.num_nodes - 1}")
        source = int(source)
        spec = ALGORITHMS[algorithm].spec
        if spec.graph.weighted and len(g.weights) and g.weights.min() < 0:
            raise UserError(f"graph: negative weights; {algorithm} needs weights >= 0")
        if algorithm == "mst_prim":
            _check_undirected(g)
        steps = default_steps(algorithm, g, source) if steps is None else int(steps)
        if steps < 1:
            raise UserError(f"steps must be >= 1, got {steps}")
        if self.sparse:
            batch = self._batch(algorithm, g, source, steps)
            started = time.perf_counter()
            with torch.no_grad():
                pred = self.model.forward_sparse(batch, keep_hints=False)
            pi = pointer_predictions(pred.outputs["pi"], batch.pairs).cpu().numpy()
        else:
            dense = self._dense_batch(algorithm, g, source, steps)
            started = time.perf_counter()
            with torch.no_grad():
                logits = self.model(dense).outputs["pi"][0]  # (N, N): node i's logits over its parent j
            pi = logits.argmax(-1).cpu().numpy()  # one graph: every node is real, none padded
        seconds = time.perf_counter() - started
        result = Execution(algorithm, pi, steps, seconds)
        if compare:
            result.accuracy, result.exact_pi = _compare(algorithm, g, source, pi)
        return result

    def _batch(self, algorithm: str, g: UserGraph, source: int, steps: int) -> SparseBatch:
        """The graph as a one-graph SparseBatch: pairs = edges, their reverses and self-loops."""
        n, H = g.num_nodes, self.model.config.hidden
        spec = ALGORITHMS[algorithm].spec
        both = np.concatenate([g.edges, g.edges[:, ::-1], np.repeat(np.arange(n), 2).reshape(n, 2)])
        key = np.unique(both[:, 1] * n + both[:, 0])  # sorted by (receiver, sender)
        P = len(key)
        if P * H * 4 * 16 > MEMORY_LIMIT:
            raise UserError(
                f"graph: {P:,} message pairs need about {P * H * 64 / 2**30:.1f} GiB at hidden {H}; "
                f"the limit is {MEMORY_LIMIT / 2**30:.0f} GiB"
            )
        receivers, senders = key // n, key % n
        at = np.searchsorted(key, g.edges[:, 1] * n + g.edges[:, 0])  # the pair of each real edge

        def on_pairs(per_edge: np.ndarray, self_loop: float) -> np.ndarray:  # (E,) -> (P,)
            out = np.where(senders == receivers, self_loop, 0.0)
            out[at] = per_edge
            return out

        dev = self.device
        t = lambda a, dtype=torch.float32: torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=dev)  # noqa: E731
        values = _input_values(spec, g, source, on_pairs)
        inputs = {f.name: t(values[f.name]) for f in spec.inputs}
        hints = initial_hints(algorithm, t(values["s"]))  # {name: (n, 1)}
        pairs = Pairs(t(senders, torch.long), t(receivers, torch.long), torch.zeros(n, dtype=torch.long, device=dev), 1)
        lengths = torch.tensor([steps + 1], device=dev)
        return SparseBatch(algorithm, inputs, hints, {}, pairs, lengths, torch.tensor([n], device=dev))

    def _dense_batch(self, algorithm: str, g: UserGraph, source: int, steps: int) -> Batch:
        """The graph as a one-graph dense :class:`Batch` (``collate``'s layout, B = 1, no padding): node
        fields (1, N), edge fields (1, N, N) [sender, receiver], hints (1, T = 1, N) at step 0."""
        n, H = g.num_nodes, self.model.config.hidden
        spec = ALGORITHMS[algorithm].spec
        need = _dense_bytes(self.model, spec, n, steps)
        if need > MEMORY_LIMIT:
            raise UserError(
                f"graph: {n:,} nodes run densely (this processor passes messages between all pairs) need about "
                f"{need / 2**30:.1f} GiB at hidden {H}; the limit is {MEMORY_LIMIT / 2**30:.0f} GiB"
            )
        u, v = g.edges[:, 0], g.edges[:, 1]

        def on_matrix(per_edge: np.ndarray, self_loop: float) -> np.ndarray:  # (E,) -> (N, N)
            out = np.zeros((n, n))
            np.fill_diagonal(out, self_loop)
            out[u, v] = per_edge  # no self-loops among the edges (as_user_graph drops them)
            return out

        dev = self.device
        t = lambda a, dtype=torch.float32: torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=dev)  # noqa: E731
        values = _input_values(spec, g, source, on_matrix)
        inputs = {f.name: t(values[f.name]).unsqueeze(0) for f in spec.inputs}  # (1, N) / (1, N, N)
        # (N, 1, ...) flat form -> (1, 1, N, ...): one graph, one time step (only step 0 is read); pointers
        # are global ids, which for one graph are its node indices
        hints = {k: h.transpose(0, 1).unsqueeze(0) for k, h in initial_hints(algorithm, t(values["s"])).items()}
        return Batch(
            algorithm=algorithm,
            inputs=inputs,
            hints=hints,
            outputs={},
            node_mask=torch.ones(1, n, dtype=torch.bool, device=dev),
            lengths=torch.tensor([steps + 1], device=dev),
            num_nodes=torch.tensor([n], device=dev),
        )


def _input_values(
    spec: AlgorithmSpec, g: UserGraph, source: int, on_edges: Callable[[np.ndarray, float], np.ndarray]
) -> dict[str, np.ndarray]:
    """The input fields of ``g`` from ``source`` (what the algorithms' traces hold: ``pos`` i / n, ``s`` the
    source one-hot, ``A`` the weights (1 unweighted), ``adj`` the edges plus self-loops), node fields (N,).
    ``on_edges(per_edge (E,), self_loop value)`` lays an edge field out as the batch wants it: on message
    pairs (P,) for the sparse batch, as an (N, N) [sender, receiver] matrix for the dense one."""
    n = g.num_nodes
    one_hot = np.zeros(n)
    one_hot[source] = 1.0
    weights = g.weights if spec.graph.weighted else np.ones(len(g.edges))
    return {
        "pos": np.arange(n) / n,
        "s": one_hot,
        "A": on_edges(weights, 0.0),
        "adj": on_edges(np.ones(len(g.edges)), 1.0),
    }


def _dense_bytes(model: EncodeProcessDecode, spec: AlgorithmSpec, n: int, steps: int) -> int:
    """Bytes a dense run of ``steps`` steps on ``n`` nodes plans for: :data:`DENSE_TENSORS` (N, N, H) float32
    tensors at a time, plus the (N, N) logits of every decoded pointer or edge hint, kept for each step
    (the dense forward returns all hint logits)."""
    kept = 0
    if model.config.decode_hints:
        kept = sum(1 for f in spec.hints if f.type == Type.POINTER or f.location == Location.EDGE)
    return n * n * 4 * (DENSE_TENSORS * model.config.hidden + kept * steps)


def _check_undirected(g: UserGraph) -> None:
    n = g.num_nodes
    fwd = dict(zip((g.edges[:, 0] * n + g.edges[:, 1]).tolist(), g.weights.tolist(), strict=True))
    for (u, v), w in zip(g.edges.tolist(), g.weights.tolist(), strict=True):
        if fwd.get(v * n + u) != w:
            raise UserError(
                f"graph: edge {u} -> {v} has no reverse of equal weight; mst_prim needs an undirected graph"
            )


def _compare(algorithm: str, g: UserGraph, source: int, pi: np.ndarray) -> tuple[float, np.ndarray]:
    from nar.scale.reference import exact, pointer_accuracy
    from nar.scale.suite import SuiteGraph

    n = g.num_nodes
    key = set((g.edges[:, 0] * n + g.edges[:, 1]).tolist())
    directed = any(v * n + u not in key for u, v in g.edges.tolist())
    weights = np.maximum(g.weights, 1e-12)  # the reference wants positive weights; zero-weight edges stay ties
    sg = SuiteGraph("user", "user", n, g.edges, weights, directed, source)
    ref = exact(algorithm, sg)
    return pointer_accuracy(algorithm, sg, pi, ref), ref.pi


def load_pretrained(where: str | Path, device: str = "cpu") -> Executor:
    """The whole pretrained network: a pretraining run directory (``models/pretrain/<run>``: model.json +
    model.safetensors) or a registered version (``models:/nar-processor@champion``, ``models:/<name>/<n>``).

    From the registry the processor is verified first (sha256 of weights and config, ``nar.registry``), and
    the network stored beside it must hold exactly those processor weights.
    """
    if str(where).startswith("models:/"):
        from nar.registry import RegistryError, load_registered

        try:
            loaded = load_registered(str(where))
        except RegistryError as exc:
            raise UserError(str(exc)) from None
        if not loaded.model_files:
            raise UserError(
                f"{where} (version {loaded.version}) stores the processor only, not the encoders and decoders "
                "that execute an algorithm (registered before nar stored them); give a pretraining run directory"
            )
        return executor_from_files(loaded.model_files, str(where), device, processor_sha256=loaded.sha256)
    path = Path(where)
    if not (path / "model.json").is_file() or not (path / "model.safetensors").is_file():
        raise UserError(f"{path}: not a pretraining run directory (needs model.json and model.safetensors)")
    files = {name: (path / name).read_bytes() for name in ("model.json", "model.safetensors")}
    return executor_from_files(files, str(path), device)


def executor_from_files(
    files: dict[str, bytes], where: str, device: str = "cpu", *, processor_sha256: str | None = None
) -> Executor:
    """The network stored as ``files`` (model.json and model.safetensors bytes, named ``where`` in errors);
    with ``processor_sha256``, its processor must have exactly those weights (the registered ones)."""
    model, meta = _build_model(files, where)
    if processor_sha256 is not None:
        from nar.registry import weights_sha256

        if weights_sha256(model.processor) != processor_sha256:
            raise UserError(f"{where}: the stored network's processor is not the registered one; refusing it")
    return Executor(model, meta.get("name", Path(where).name), device)


def _build_model(files: dict[str, bytes], where: str) -> tuple[EncodeProcessDecode, dict[str, Any]]:
    from safetensors.torch import load as safetensors_load  # bytes -> tensors, nothing unpickled

    try:
        meta = json.loads(files["model.json"])
        config = ModelConfig.from_dict(meta["model"])
        model = EncodeProcessDecode([ALGORITHMS[a].spec for a in meta["algorithms"]], config)
        model.load_state_dict(safetensors_load(files["model.safetensors"]))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise UserError(f"{where}: cannot load the model: {str(exc).splitlines()[0][:300]}") from None
    return model, meta


def reference_steps(algorithm: str, ref: Any) -> int:
    """The algorithm's own processor steps on a graph (CLRS's test convention: the trajectory
    length, known from the exact run): the tree depth for bfs and bellman_ford, one step per
    reachable node for dijkstra and mst_prim."""
    if algorithm in ("dijkstra", "mst_prim"):
        return max(1, int(ref.reachable.sum()))
    return max(1, int(ref.depth))


def suite_scores(
    executor: Executor,
    algorithms: list[str] | None = None,
    sizes: tuple[int, ...] = (256,),
    graphs_per_cell: int = 2,
    seed: int = 0,
) -> dict[str, Any]:
    """Pointer accuracy (%) per algorithm, size and family of the scale suite (``nar.scale``).

    Steps follow :func:`reference_steps`. A processor without a sparse step runs densely (O(N²) a step),
    so keep ``sizes`` small for those (256 nodes: about N = 256 steps of (256, 256, H) tensors).
    Returns ``{algorithm: {size: {family: %}}}`` plus
    ``score``: the mean over algorithms of the mean over families at each size (what the
    registry records and the champion gate compares as ``scale_score``).
    """
    from nar.scale.reference import applicable, exact, pointer_accuracy
    from nar.scale.suite import suite

    algorithms = [a for a in (algorithms or executor.algorithms) if a in INITIAL_HINTS]
    graphs = [g for g in suite(sizes=sizes, graphs_per_cell=graphs_per_cell, seed=seed) if g.num_nodes in sizes]
    out: dict[str, Any] = {}
    means = []
    for algorithm in algorithms:
        cells: dict[str, dict[str, list[float]]] = {}
        for g in graphs:
            if not applicable(algorithm, g):
                continue
            ref = exact(algorithm, g)
            run = executor.run(algorithm, g, g.source, steps=reference_steps(algorithm, ref))
            acc = pointer_accuracy(algorithm, g, run.pi, ref)
            cells.setdefault(str(g.num_nodes), {}).setdefault(g.family, []).append(100.0 * acc)
        out[algorithm] = {n: {f: float(np.mean(v)) for f, v in fams.items()} for n, fams in cells.items()}
        means += [float(np.mean(list(fams.values()))) for fams in out[algorithm].values()]
    out["score"] = float(np.mean(means)) if means else float("nan")
    return out
