"""Seeded graph samplers: batches of B random graphs with n nodes each, as ``Graphs``.

Five families (``GraphSamplerConfig.kind``):

``er``
    Erdős–Rényi, the CLRS-30 distribution: each graph draws its own edge probability p
    uniformly from ``p_range`` (default (0.1, 0.9), as Ibarz et al. 2022), then every pair
    (undirected) or ordered pair (directed) is an edge with probability p.
``grid``
    A 2-D lattice with 4-neighbour bidirectional edges, in a random k×m shape: a shape with
    k·m = n exactly if n has a factor 2 <= k <= sqrt(n), else the nearest shape, k rows of
    m = ceil(n/k) cells with a shorter last row. Node labels are randomly permuted so the
    index carries no position. The sparse, planar, long-path structure of ``digit_grid``.
``geometric``
    A random geometric graph: n points uniform in the unit square, an edge between points
    closer than a radius chosen so the expected degree (with the square's boundary effect)
    is ``mean_degree``, plus each point's ``knn`` nearest neighbours and (``connect``) the
    Euclidean minimum spanning tree, so every graph is connected (radius and kNN alone leave
    most n = 64 graphs in pieces). Road-network-like: sparse, near-planar, long shortest paths.
``tree``
    The Euclidean minimum spanning tree of n uniform points in the unit square, weights as
    ``geometric`` (lengths with noise): a road-like tree, the deepest family of its size (hop
    depth about 1.5 sqrt(n) against about sqrt(n) for a square grid), for processors that must carry
    a wave over many steps.
``delaunay``
    The Delaunay triangulation of n uniform points in the unit square, weights as ``geometric``
    (lengths with noise): planar, degree about 6, and a heavy tail of long edges along the hull
    (the longest 10-25 times the mean at n = 1,024, against 2-3 times for ``geometric``), so few hops
    span long distances: distances reach 1.3-1.8 times hop eccentricity x mean weight (``geometric``:
    1.1-1.25), the range where a processor trained on the other families may leave its distances.

Common to all families (what the algorithm's ``GraphKind`` asks for, unless the config
overrides ``weighted`` / ``directed``):

* weights: ER and grid weights are uniform in [0, 1); geometric weights are the Euclidean
  distance times a noise factor uniform in [1 - weight_noise, 1 + weight_noise). Undirected
  graphs get one weight per edge (the upper triangle mirrored), directed graphs one weight
  per direction. Unweighted graphs have ``A = adj`` as 1.0. Weights and positions are
  float32-representable (drawn in float32, held as float64), so the float32 narrowing on
  disk is exact for every input.
* directed ER graphs draw each ordered pair independently; directed grid and geometric
  graphs keep both directions of every edge with independent weights (two-way streets with
  different travel times).
* acyclic (DAG) graphs: the undirected structure is oriented forward along a random
  permutation of the nodes (the CLRS recipe: upper-triangular, then relabelled).
* ``oneway`` > 0 turns that fraction of two-way edges into one-way edges (a random direction
  kept, the weight unchanged), so an undirected algorithm's graphs get road-like one-way streets;
* the source node is uniform over the nodes (drawn even when an algorithm ignores it);
* ``pos`` is sorted uniform random in [0, 1) (CLRS's randomised positions).

Everything is vectorised over the batch on (B, n, n) arrays, and all randomness comes from
the ``numpy.random.Generator`` passed in: the same generator state gives the same graphs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from scipy.spatial import Delaunay

from nar.algorithms.base import Graphs
from nar.algorithms.spec import GraphKind

KINDS = ("er", "grid", "geometric", "tree", "delaunay")
POINT_KINDS = ("geometric", "tree", "delaunay")  # drawn from points in the unit square


@dataclass(frozen=True)
class GraphSamplerConfig:
    """Which random graphs to draw. ``None`` for weighted/directed: the algorithm's ``GraphKind``."""

    kind: Literal["er", "grid", "geometric", "tree", "delaunay"] = "er"
    p_range: tuple[float, float] = (0.1, 0.9)  # er: edge probability, uniform per graph
    weighted: bool | None = None
    directed: bool | None = None
    mean_degree: float = 4.0  # geometric: target expected degree of the radius graph
    knn: int = 2  # geometric: each node also links to its knn nearest neighbours
    connect: bool = True  # geometric: add the Euclidean minimum spanning tree (always connected)
    weight_noise: float = 0.2  # geometric: weight = distance * U[1 - noise, 1 + noise)
    oneway: float = 0.0  # fraction of two-way edges made one-way (a random direction kept): road-like one-way streets
    # > 1: one-way streets in chains of up to this many edges going on roughly straight, the Euclidean minimum
    # spanning tree kept two-way (every node reachable from every other, as in a city); point families only
    oneway_chain: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"sampler kind {self.kind!r} is unknown; allowed: {list(KINDS)}")
        p = tuple(float(x) for x in self.p_range)
        if len(p) != 2 or not (0.0 <= p[0] <= p[1] <= 1.0):
            raise ValueError(f"sampler p_range {self.p_range!r}: need two probabilities 0 <= low <= high <= 1")
        object.__setattr__(self, "p_range", p)
        for name in ("weighted", "directed"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise ValueError(f"sampler {name} must be true, false or null (the algorithm's choice), got {value!r}")
        if not self.mean_degree > 0:
            raise ValueError(f"sampler mean_degree must be > 0, got {self.mean_degree}")
        if not (isinstance(self.knn, int) and self.knn >= 0):
            raise ValueError(f"sampler knn must be an integer >= 0, got {self.knn!r}")
        if not isinstance(self.connect, bool):
            raise ValueError(f"sampler connect must be true or false, got {self.connect!r}")
        if not 0 <= self.weight_noise < 1:
            raise ValueError(f"sampler weight_noise must be in [0, 1), got {self.weight_noise}")
        if not 0 <= self.oneway < 1:
            raise ValueError(f"sampler oneway must be in [0, 1), got {self.oneway}")
        if isinstance(self.oneway_chain, bool) or not isinstance(self.oneway_chain, int) or self.oneway_chain < 1:
            raise ValueError(f"sampler oneway_chain must be an integer >= 1, got {self.oneway_chain!r}")
        if self.oneway_chain > 1 and self.kind not in POINT_KINDS:
            raise ValueError(
                f"sampler oneway_chain > 1 needs node positions: kind one of {list(POINT_KINDS)}, got {self.kind!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["p_range"] = list(self.p_range)
        for key, default in (("oneway", 0.0), ("oneway_chain", 1)):
            if d[key] == default:  # the default: manifests written before it existed stay byte-identical
                del d[key]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GraphSamplerConfig:
        d = dict(d)
        if "p_range" in d:
            d["p_range"] = tuple(d["p_range"])
        return cls(**d)

    def resolve(self, graph: GraphKind) -> tuple[bool, bool, bool]:
        """(weighted, directed, acyclic) after applying the overrides to the algorithm's kind."""
        weighted = graph.weighted if self.weighted is None else self.weighted
        directed = graph.directed if self.directed is None else self.directed
        if graph.acyclic:
            if self.directed is False:
                raise ValueError("the algorithm needs a DAG: sampler directed=false is not possible")
            directed = True
        return weighted, directed, graph.acyclic


def sample_graphs(graph: GraphKind, config: GraphSamplerConfig, n: int, batch: int, rng: np.random.Generator) -> Graphs:
    """Draw ``batch`` graphs with ``n`` nodes each for an algorithm defined on ``graph``."""
    if n < 1 or batch < 0:
        raise ValueError(f"need n >= 1 and batch >= 0, got n={n}, batch={batch}")
    weighted, directed, acyclic = config.resolve(graph)
    B = batch
    # Structure, then weights. Each family returns adj (B, n, n) bool without self-loops and,
    # for the point families, the base edge lengths (B, n, n) and the points (B, n, 2).
    lengths = points = None
    if config.kind == "er":
        p = rng.uniform(config.p_range[0], config.p_range[1], size=(B, 1, 1)).astype(np.float32)
        draw = rng.random((B, n, n), dtype=np.float32) < p
        adj = draw & _off_diagonal(n) if directed and not acyclic else _symmetric_upper(draw)
    elif config.kind == "grid":
        adj = _grid(n, B, rng)
    elif config.kind == "tree":
        adj, lengths, points = _euclidean_tree(n, B, rng)
    elif config.kind == "delaunay":
        adj, lengths, points = _delaunay(n, B, rng)
    else:
        adj, lengths, points = _geometric(n, B, config, rng)

    if acyclic:
        # Keep u -> v iff u comes before v in a random order: the result is a DAG.
        rank = _permutations(B, n, rng)  # (B, n)
        adj = adj & (rank[:, :, None] < rank[:, None, :])

    if not weighted:
        A = adj.astype(np.float64)
    else:
        if lengths is None:
            w = rng.random((B, n, n), dtype=np.float32)  # uniform [0, 1)
        else:
            lo = 1.0 - config.weight_noise
            noise = lo + (2 * config.weight_noise) * rng.random((B, n, n), dtype=np.float32)
            w = (lengths * noise).astype(np.float32)
        if not directed:
            w = _mirror_upper(w)
        A = np.where(adj, w, np.float32(0)).astype(np.float64)

    if config.oneway > 0 and config.oneway_chain > 1:
        adj = _one_way_chains(adj, points, config.oneway, config.oneway_chain, rng)
        A = np.where(adj, A, 0.0)
    elif config.oneway > 0:
        # each two-way edge {i, j} becomes one-way with probability oneway, keeping a random direction
        pick = np.triu(adj & adj.transpose(0, 2, 1), 1) & (rng.random((B, n, n), dtype=np.float32) < config.oneway)
        keep_forward = rng.random((B, n, n), dtype=np.float32) < 0.5
        adj = adj & ~(pick & ~keep_forward) & ~(pick & keep_forward).transpose(0, 2, 1)
        A = np.where(adj, A, 0.0)
    pos = np.sort(rng.random((B, n), dtype=np.float32), axis=1).astype(np.float64)
    source = rng.integers(0, n, size=B, dtype=np.int64)
    return Graphs(A=A, adj=adj, pos=pos, source=source)


# --------------------------------------------------------------------------- helpers


@lru_cache(maxsize=64)
def _off_diagonal(n: int) -> np.ndarray:
    return ~np.eye(n, dtype=bool)


@lru_cache(maxsize=64)
def _strict_upper(n: int) -> np.ndarray:
    return np.triu(np.ones((n, n), dtype=bool), k=1)


def _symmetric_upper(m: np.ndarray) -> np.ndarray:
    """(B, n, n) bool: the strict upper triangle of ``m`` mirrored to the lower one."""
    up = m & _strict_upper(m.shape[-1])
    return up | up.transpose(0, 2, 1)


def _mirror_upper(w: np.ndarray) -> np.ndarray:
    """(B, n, n): the strict upper triangle of ``w`` mirrored (diagonal zero)."""
    up = np.where(_strict_upper(w.shape[-1]), w, 0)
    return up + up.transpose(0, 2, 1)


def _permutations(B: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """(B, n) int64: an independent random permutation of range(n) per row."""
    return np.argsort(rng.random((B, n)), axis=1)


def grid_shapes(n: int) -> list[tuple[int, int]]:
    """The (rows, cols) shapes a grid of ``n`` nodes is drawn from (rows <= cols).

    Exact shapes k×(n/k) with 2 <= k <= sqrt(n) if any; otherwise every k in that range with
    ceil(n/k) columns and a shorter last row (all rows non-empty since k(k-1) < n); a path
    (1×n) only for n < 4.
    """
    ks = range(2, math.isqrt(n) + 1)
    exact = [(k, n // k) for k in ks if n % k == 0]
    if exact:
        return exact
    near = [(k, -(-n // k)) for k in ks]
    return near or [(1, n)]


@lru_cache(maxsize=256)
def _grid_template(n: int, rows: int, cols: int) -> np.ndarray:
    """(n, n) bool adjacency of the first n cells (row-major) of a rows×cols lattice."""
    idx = np.arange(n)
    r, c = idx // cols, idx % cols
    same_row_next = (r[:, None] == r[None, :]) & (c[None, :] == c[:, None] + 1)
    next_row_same = (c[:, None] == c[None, :]) & (r[None, :] == r[:, None] + 1)
    right_or_down = same_row_next | next_row_same
    adj = right_or_down | right_or_down.T
    adj.flags.writeable = False
    return adj


def _grid(n: int, B: int, rng: np.random.Generator) -> np.ndarray:
    shapes = grid_shapes(n)
    choice = rng.integers(0, len(shapes), size=B)
    templates = np.stack([_grid_template(n, r, c) for r, c in shapes])  # (S, n, n)
    base = templates[choice]  # (B, n, n)
    # Relabel: node i of the graph is cell perm[i] of the lattice.
    perm = _permutations(B, n, rng)  # (B, n)
    rows = np.arange(B)[:, None, None]
    return base[rows, perm[:, :, None], perm[:, None, :]]


def geometric_radius(n: int, mean_degree: float) -> float:
    """Radius r giving expected degree ``mean_degree`` for n uniform points in the unit square.

    The probability that two uniform points are closer than r <= 1 is
    pi r^2 - 8/3 r^3 + 1/2 r^4 (the square's boundary included); solved by bisection. If even
    r = 1 is not enough the graph is complete (r = sqrt(2)).
    """
    if n <= 1:
        return 0.0
    target = mean_degree / (n - 1)

    def prob(r: float) -> float:
        return math.pi * r**2 - 8.0 / 3.0 * r**3 + 0.5 * r**4

    if target >= prob(1.0):
        return math.sqrt(2.0)
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if prob(mid) < target else (lo, mid)
    return 0.5 * (lo + hi)


def _points(n: int, B: int, rng: np.random.Generator) -> np.ndarray:
    """(B, n, 2) uniform points in the unit square (float32 draws, held as float64)."""
    return rng.random((B, n, 2), dtype=np.float32).astype(np.float64)


def _distances(pts: np.ndarray) -> np.ndarray:
    """(B, n, n) Euclidean distances between the (B, n, 2) points of each graph."""
    diff = pts[:, :, None, :] - pts[:, None, :, :]  # (B, n, n, 2)
    return np.sqrt(np.einsum("bijk,bijk->bij", diff, diff))


def _geometric(
    n: int, B: int, config: GraphSamplerConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pts = _points(n, B, rng)  # (B, n, 2)
    dist = _distances(pts)  # (B, n, n)
    off = _off_diagonal(n)
    adj = (dist < geometric_radius(n, config.mean_degree)) & off
    k = min(config.knn, n - 1)
    if k > 0:
        masked = np.where(off, dist, np.inf)
        nearest = np.argpartition(masked, k - 1, axis=2)[:, :, :k]  # (B, n, k)
        knn = np.zeros((B, n, n), dtype=bool)
        np.put_along_axis(knn, nearest, True, axis=2)
        adj |= knn | knn.transpose(0, 2, 1)
    if config.connect:
        adj |= _minimum_spanning_tree(dist)
    return adj, dist.astype(np.float32), pts


def _euclidean_tree(n: int, B: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B, n, n) bool symmetric Euclidean minimum spanning trees of uniform points, their (B, n, n) lengths
    and the (B, n, 2) points."""
    pts = _points(n, B, rng)  # (B, n, 2)
    dist = _distances(pts)  # (B, n, n)
    return _minimum_spanning_tree(dist), dist.astype(np.float32), pts


def _delaunay(n: int, B: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B, n, n) bool symmetric Delaunay triangulations of uniform points, their (B, n, n) lengths and the
    (B, n, 2) points.

    Fewer than 4 points: the complete graph (every pair is a Delaunay edge of 3 points in general position)."""
    pts = _points(n, B, rng)  # (B, n, 2)
    dist = _distances(pts)  # (B, n, n)
    if n < 4:
        return np.broadcast_to(_off_diagonal(n), (B, n, n)).copy(), dist.astype(np.float32), pts
    adj = np.zeros((B, n, n), dtype=bool)
    for b in range(B):
        tri = Delaunay(pts[b]).simplices  # (T, 3) node ids of each triangle
        for u, v in ((0, 1), (1, 2), (0, 2)):
            adj[b, tri[:, u], tri[:, v]] = adj[b, tri[:, v], tri[:, u]] = True
    return adj, dist.astype(np.float32), pts


def _one_way_chains(
    adj: np.ndarray, pts: np.ndarray, fraction: float, chain: int, rng: np.random.Generator
) -> np.ndarray:
    """(B, n, n) ``adj`` with ``fraction`` of its two-way edges made one-way, laid out in chains (``pts``: the
    (B, n, 2) points the graphs were drawn from).

    A chain starts on a random two-way edge off the Euclidean minimum spanning tree, in a random direction,
    and goes on from its head along the unused such edge that turns least (under 90 degrees only), up to
    ``chain`` edges; chains are drawn until the fraction is reached or no edge is left. The spanning tree stays
    two-way, so every node stays reachable from every other. One-way chains like these (a city's one-way
    streets) make directed routes far longer than the undirected ones; single random one-way edges do not.
    """
    out = adj.copy()
    tree = _minimum_spanning_tree(_distances(pts))  # (B, n, n) bool symmetric, as the families compute it
    for b in range(adj.shape[0]):
        two_way = np.argwhere(np.triu(adj[b] & adj[b].T, 1))  # (E2, 2) pairs i < j
        target = round(fraction * len(two_way))
        free = two_way[~tree[b][two_way[:, 0], two_way[:, 1]]]  # candidates: off the spanning tree
        unused = {(int(i), int(j)) for i, j in free}
        at_node: dict[int, list[int]] = {}
        for i, j in unused:
            at_node.setdefault(i, []).append(j)
            at_node.setdefault(j, []).append(i)
        made = 0
        for k in rng.permutation(len(free)).tolist():
            if made >= target:
                break
            tail, head = (int(free[k, 0]), int(free[k, 1]))
            if (tail, head) not in unused:
                continue
            if rng.random() < 0.5:
                tail, head = head, tail
            for _ in range(chain):
                unused.discard((min(tail, head), max(tail, head)))
                out[b, head, tail] = False  # keep tail -> head only
                made += 1
                heading = pts[b, head] - pts[b, tail]
                best, best_cos = None, 0.0
                for nxt in at_node[head]:
                    if (min(head, nxt), max(head, nxt)) not in unused:
                        continue
                    step = pts[b, nxt] - pts[b, head]
                    cos = float(heading @ step) / (float(np.linalg.norm(heading) * np.linalg.norm(step)) + 1e-300)
                    if cos > best_cos:
                        best, best_cos = nxt, cos
                if best is None or made >= target:
                    break
                tail, head = head, best
    return out


def _minimum_spanning_tree(dist: np.ndarray) -> np.ndarray:
    """(B, n, n) bool symmetric: the minimum spanning tree of each complete distance graph.

    Prim's algorithm, vectorised over the batch: n - 1 steps on (B, n) arrays.
    """
    B, n, _ = dist.shape
    rows = np.arange(B)
    tree = np.zeros((B, n, n), dtype=bool)
    in_tree = np.zeros((B, n), dtype=bool)
    in_tree[:, 0] = True
    best = dist[:, 0, :].copy()  # (B, n): distance of each node to the tree
    parent = np.zeros((B, n), dtype=np.int64)
    for _ in range(n - 1):
        v = np.argmin(np.where(in_tree, np.inf, best), axis=1)  # (B,)
        u = parent[rows, v]
        tree[rows, u, v] = tree[rows, v, u] = True
        in_tree[rows, v] = True
        dv = dist[rows, v, :]  # (B, n)
        closer = dv < best
        best = np.where(closer, dv, best)
        parent = np.where(closer, v[:, None], parent)
    return tree
