"""Graph samplers: determinism and the structural properties of every family."""

import networkx as nx
import numpy as np
import pytest

from nar.algorithms import GraphKind
from nar.data.samplers import GraphSamplerConfig, geometric_radius, grid_shapes, sample_graphs

UNDIRECTED = GraphKind(weighted=True, directed=False)
DIRECTED = GraphKind(weighted=True, directed=True)
DAG = GraphKind(weighted=True, directed=True, acyclic=True)
KINDS = ("er", "grid", "geometric", "tree", "delaunay")


def draw(graph=UNDIRECTED, n=12, batch=64, seed=0, **config):
    return sample_graphs(graph, GraphSamplerConfig(**config), n, batch, np.random.default_rng(seed))


@pytest.mark.parametrize("family", KINDS)
def test_same_seed_same_graphs_other_seed_other_graphs(family):
    a, b, c = (draw(n=12, batch=16, seed=s, kind=family) for s in (3, 3, 4))
    for name in ("A", "adj", "pos", "source"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.A, c.A)


@pytest.mark.parametrize("family", KINDS)
@pytest.mark.parametrize("n", [1, 2, 5, 16])
def test_common_properties(family, n):
    g = draw(n=n, batch=32, seed=n, kind=family)
    assert g.A.shape == g.adj.shape == (32, n, n) and g.A.dtype == np.float64 and g.adj.dtype == bool
    assert not g.adj[:, np.arange(n), np.arange(n)].any(), "no self-loops"
    np.testing.assert_array_equal(g.adj, g.adj.transpose(0, 2, 1))
    np.testing.assert_array_equal(g.A, g.A.transpose(0, 2, 1))
    assert (g.A[~g.adj] == 0).all() and (g.A[g.adj] > 0).all()
    # pos: sorted, strictly increasing, in [0, 1); everything float32-exact (disk narrowing is lossless)
    assert (np.diff(g.pos, axis=1) > 0).all() and (g.pos >= 0).all() and (g.pos < 1).all()
    for x in (g.A, g.pos):
        np.testing.assert_array_equal(x.astype(np.float32).astype(np.float64), x)
    assert g.source.dtype == np.int64 and ((g.source >= 0) & (g.source < n)).all()


def test_er_weights_uniform_in_unit_interval_and_p_per_graph():
    g = draw(n=16, batch=400)
    w = g.A[g.adj]
    assert w.min() >= 0 and w.max() < 1
    assert 0.45 < w.mean() < 0.55
    density = g.adj.sum(axis=(1, 2)) / (16 * 15)
    # p ~ U(0.1, 0.9) per graph: densities spread over the range, not clustered at one value.
    assert density.min() < 0.2 and density.max() > 0.8 and 0.45 < density.mean() < 0.55


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_er_p_range_extremes(p):
    g = draw(n=9, p_range=(p, p))
    assert g.adj.sum() == (0 if p == 0 else 64 * 9 * 8)


def test_directed_er_is_asymmetric_with_independent_weights():
    g = draw(DIRECTED, n=16, batch=32)
    assert not np.array_equal(g.adj, g.adj.transpose(0, 2, 1))
    both = g.adj & g.adj.transpose(0, 2, 1)
    assert both.any() and not np.array_equal(g.A[both], g.A.transpose(0, 2, 1)[both])


@pytest.mark.parametrize("family", KINDS)
def test_dags_are_acyclic_and_not_trivially_ordered(family):
    g = draw(DAG, n=10, batch=40, seed=1, kind=family)
    upper = np.triu(np.ones((10, 10), dtype=bool), 1)
    assert any((g.adj[b] & ~upper).any() for b in range(40)), "relabelled, not upper-triangular"
    for b in range(40):
        assert nx.is_directed_acyclic_graph(nx.DiGraph(g.adj[b]))
    assert g.adj.sum() > 0


def test_complete_dag_is_a_tournament():
    g = draw(DAG, n=8, p_range=(1.0, 1.0))
    np.testing.assert_array_equal(g.adj | g.adj.transpose(0, 2, 1), ~np.eye(8, dtype=bool)[None].repeat(64, 0))


def test_overrides_and_unweighted():
    g = draw(UNDIRECTED, weighted=False, directed=True, n=12)
    np.testing.assert_array_equal(g.A, g.adj.astype(np.float64))
    assert not np.array_equal(g.adj, g.adj.transpose(0, 2, 1))
    with pytest.raises(ValueError, match="DAG"):
        draw(DAG, directed=False)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"kind": "forest"}, "kind"),
        ({"p_range": (0.5, 0.2)}, "p_range"),
        ({"p_range": (0.1, 1.5)}, "p_range"),
        ({"weighted": "yes"}, "weighted"),
        ({"mean_degree": 0}, "mean_degree"),
        ({"knn": -1}, "knn"),
        ({"weight_noise": 1.0}, "weight_noise"),
        ({"oneway_chain": 0}, "oneway_chain must be an integer >= 1, got 0"),
        ({"kind": "grid", "oneway_chain": 4}, r"needs node positions: kind one of \['geometric', 'tree', 'delaunay'\]"),
    ],
)
def test_config_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        GraphSamplerConfig(**bad)


def test_config_round_trips_through_a_dict():
    c = GraphSamplerConfig(kind="geometric", p_range=(0.2, 0.3), weighted=False, knn=3)
    assert GraphSamplerConfig.from_dict(c.to_dict()) == c


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 12, 13, 16, 64])
def test_grid_shapes_cover_exactly_n_nodes(n):
    for rows, cols in grid_shapes(n):
        assert rows <= cols and rows * cols >= n and (rows - 1) * cols < n
    if n in (12, 16, 64):
        assert all(r * c == n for r, c in grid_shapes(n))


@pytest.mark.parametrize("n", [12, 13])
def test_grids_are_lattices(n):
    g = draw(n=n, batch=32, kind="grid")
    lattices = [nx.grid_2d_graph(r, c) for r, c in grid_shapes(n)]
    for b in range(32):
        G = nx.Graph(g.adj[b])
        assert nx.is_connected(G) and max(d for _, d in G.degree) <= 4
        if n == 12:
            assert any(nx.is_isomorphic(G, L) for L in lattices)
    w = g.A[g.adj]
    assert 0 <= w.min() and w.max() < 1


def test_directed_grid_keeps_both_directions_with_own_weights():
    g = draw(DIRECTED, n=16, batch=32, kind="grid")
    np.testing.assert_array_equal(g.adj, g.adj.transpose(0, 2, 1))
    assert not np.array_equal(g.A, g.A.transpose(0, 2, 1))


def test_geometric_radius_gives_target_probability():
    rng = np.random.default_rng(0)
    r = geometric_radius(20, 4.0)
    pts = rng.random((200_000, 2, 2))
    close = np.linalg.norm(pts[:, 0] - pts[:, 1], axis=1) < r
    assert abs(close.mean() * 19 - 4.0) < 0.1
    assert geometric_radius(3, 4.0) == pytest.approx(2**0.5)  # dense target: complete graph


def test_geometric_graphs_connected_sparse_and_weighted_by_distance():
    g = draw(n=64, batch=16, kind="geometric")
    degree = g.adj.sum(axis=2).mean()
    assert 4.0 <= degree <= 5.5  # radius graph's 4 plus the kNN / spanning-tree extras
    assert all(nx.is_connected(nx.Graph(g.adj[b])) for b in range(16))
    w = g.A[g.adj]
    # distances in the unit square times noise in [0.8, 1.2); edges are short at n = 64
    assert w.min() > 0 and w.max() < 2**0.5 * 1.2 and np.median(w) < 0.2
    plain = draw(n=64, batch=64, kind="geometric", knn=0, connect=False)
    assert abs(plain.adj.sum(axis=2).mean() - 4.0) < 0.3


def test_oneway_turns_a_fraction_of_two_way_edges_into_one_way_streets():
    from nar.algorithms import ALGORITHMS
    from nar.data.samplers import GraphSamplerConfig, sample_graphs

    kind = ALGORITHMS["bellman_ford"].spec.graph
    base = sample_graphs(kind, GraphSamplerConfig(kind="geometric"), 64, 8, np.random.default_rng(5))
    assert (base.adj == base.adj.transpose(0, 2, 1)).all()
    g = sample_graphs(kind, GraphSamplerConfig(kind="geometric", oneway=0.3), 64, 8, np.random.default_rng(5))
    one = g.adj & ~g.adj.transpose(0, 2, 1)
    two = g.adj & g.adj.transpose(0, 2, 1)
    frac = one.sum() / (one.sum() + two.sum() / 2)
    assert 0.2 < frac < 0.4
    assert ((g.A > 0) == g.adj).all()  # a one-way edge keeps its weight, the removed direction has none
    assert "oneway" not in GraphSamplerConfig().to_dict()  # manifests of the default stay as they were
    assert GraphSamplerConfig.from_dict(GraphSamplerConfig(oneway=0.3).to_dict()).oneway == 0.3


def test_tree_graphs_are_euclidean_minimum_spanning_trees_weighted_by_distance():
    n, batch, seed = 48, 8, 2
    g = draw(n=n, batch=batch, kind="tree", seed=seed)
    # the family's first draw is the points: rebuild them and ask networkx for their minimum spanning tree
    pts = np.random.default_rng(seed).random((batch, n, 2), dtype=np.float32).astype(np.float64)
    for b in range(batch):
        complete = nx.Graph()
        for i in range(n):
            for j in range(i + 1, n):
                complete.add_edge(i, j, weight=float(np.linalg.norm(pts[b, i] - pts[b, j])))
        expected = {tuple(sorted(e)) for e in nx.minimum_spanning_tree(complete).edges()}
        got = {(int(i), int(j)) for i, j in zip(*np.nonzero(np.triu(g.adj[b])), strict=True)}
        assert got == expected
        length = np.linalg.norm(pts[b][:, None] - pts[b][None], axis=-1)
        ratio = g.A[b][g.adj[b]] / length[g.adj[b]]
        assert ratio.min() >= 0.8 - 1e-6 and ratio.max() < 1.2 + 1e-6  # lengths times noise in [0.8, 1.2)
    # deeper than a grid of the same size: the mean hop eccentricity of the source
    grid = draw(n=n, batch=batch, kind="grid", seed=seed)

    def depth(h):
        hops = [nx.single_source_shortest_path_length(nx.Graph(h.adj[b]), int(h.source[b])) for b in range(batch)]
        return np.mean([max(d.values()) for d in hops])

    assert depth(g) > depth(grid)


def _cross(o, a, b) -> float:
    return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))


def _same_side(u, v, w, q) -> bool:
    """q lies on w's side of the line through u and v."""
    return bool(np.sign(_cross(u, v, q)) == np.sign(_cross(u, v, w)))


def _hull_size(pts: np.ndarray) -> int:
    """Vertices of the convex hull (Andrew's monotone chain), written here so the test does not ask scipy."""
    order = sorted(map(tuple, pts))
    half = []
    for seq in (order, order[::-1]):
        chain = []
        for p in seq:
            while len(chain) >= 2 and _cross(chain[-2], chain[-1], p) <= 0:
                chain.pop()
            chain.append(p)
        half.append(chain[:-1])
    return len(half[0]) + len(half[1])


def test_delaunay_graphs_are_delaunay_triangulations_weighted_by_distance():
    n, batch, seed = 20, 4, 5
    g = draw(n=n, batch=batch, kind="delaunay", seed=seed)
    pts = np.random.default_rng(seed).random((batch, n, 2), dtype=np.float32).astype(np.float64)  # the first draw
    for b in range(batch):
        p = pts[b]
        edges = [(int(i), int(j)) for i, j in zip(*np.nonzero(np.triu(g.adj[b])), strict=True)]
        # a triangulation: 3n - 3 - h straight edges, no two crossing
        assert len(edges) == 3 * n - 3 - _hull_size(p)
        for a, (i, j) in enumerate(edges):
            for k, m in edges[a + 1 :]:
                if len({i, j, k, m}) == 4:
                    assert not (
                        _cross(p[i], p[j], p[k]) * _cross(p[i], p[j], p[m]) < 0
                        and _cross(p[k], p[m], p[i]) * _cross(p[k], p[m], p[j]) < 0
                    )
        # Delaunay: no point inside the circumcircle of any face (a 3-clique with no point inside it)
        graph = nx.Graph(edges)
        for tri in (c for c in nx.enumerate_all_cliques(graph) if len(c) == 3):
            a, c, d = (p[x] for x in tri)
            others = np.delete(p, tri, axis=0)
            inside = [_same_side(a, c, d, q) and _same_side(c, d, a, q) and _same_side(d, a, c, q) for q in others]
            if any(inside):
                continue  # not a face
            # incircle determinant, oriented counter-clockwise: > 0 means q lies inside the circle through a, c, d
            if _cross(a, c, d) < 0:
                c, d = d, c
            for q in others:
                m = np.array([[x[0] - q[0], x[1] - q[1], (x[0] - q[0]) ** 2 + (x[1] - q[1]) ** 2] for x in (a, c, d)])
                assert np.linalg.det(m) <= 1e-12
        ratio = g.A[b][g.adj[b]] / np.linalg.norm(p[:, None] - p[None], axis=-1)[g.adj[b]]
        assert ratio.min() >= 0.8 - 1e-6 and ratio.max() < 1.2 + 1e-6  # lengths times noise in [0.8, 1.2)


def _straight_continuations(one: np.ndarray, pts: np.ndarray) -> float:
    """Share of the one-way edges u -> v that a one-way edge v -> w continues within 60 degrees of straight."""
    edges = np.argwhere(one)
    ok = 0
    for u, v in edges:
        for w in np.flatnonzero(one[v]):
            a, c = pts[v] - pts[u], pts[w] - pts[v]
            if a @ c > 0.5 * np.linalg.norm(a) * np.linalg.norm(c):
                ok += 1
                break
    return ok / max(len(edges), 1)


@pytest.mark.parametrize("kind", ["delaunay", "geometric"])
def test_oneway_chains_are_straight_runs_off_a_two_way_spanning_tree(kind):
    """oneway_chain: the same share of one-way edges, laid out as runs; the Euclidean MST stays two-way, so
    every node reaches every other."""
    n, batch, seed = 80, 4, 3
    g = draw(DIRECTED, n=n, batch=batch, seed=seed, kind=kind, oneway=0.3, oneway_chain=4, weight_noise=0.0)
    single = draw(DIRECTED, n=n, batch=batch, seed=seed, kind=kind, oneway=0.3)
    pts = np.random.default_rng(seed).random((batch, n, 2), dtype=np.float32).astype(np.float64)  # the first draw
    runs = {}
    for name, h in (("chain", g), ("single", single)):
        one = h.adj & ~h.adj.transpose(0, 2, 1)  # (B, n, n) one-way u -> v
        two = h.adj & h.adj.transpose(0, 2, 1)
        assert abs(one.sum() / (one.sum() + two.sum() / 2) - 0.3) < 0.1
        runs[name] = np.mean([_straight_continuations(one[b], pts[b]) for b in range(batch)])
    assert runs["chain"] > 1.4 * runs["single"]  # measured: delaunay 2x and more, geometric 1.6x
    for b in range(batch):
        length = np.linalg.norm(pts[b][:, None] - pts[b][None], axis=-1)
        complete = nx.Graph()
        complete.add_weighted_edges_from((i, j, length[i, j]) for i in range(n) for j in range(i + 1, n))
        for i, j in nx.minimum_spanning_tree(complete).edges():
            assert g.adj[b, i, j] and g.adj[b, j, i]  # the spanning tree stays two-way
        assert nx.is_strongly_connected(nx.DiGraph(g.adj[b]))
        assert np.allclose(g.A[b][g.adj[b]], length[g.adj[b]], rtol=1e-6)  # weight_noise 0: exact lengths
    c = GraphSamplerConfig(kind=kind, oneway=0.3, oneway_chain=4)
    assert GraphSamplerConfig.from_dict(c.to_dict()) == c
    assert "oneway_chain" not in GraphSamplerConfig().to_dict()
