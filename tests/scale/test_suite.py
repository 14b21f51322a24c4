"""The suite's graphs: sizes, connectivity, structure, determinism, validation."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse import csgraph

from nar.scale.suite import FAMILIES, FIXED_SIZE, SuiteGraph, graph_rng, suite

SIZED = [f for f in FAMILIES if f not in FIXED_SIZE]
SYNTHETIC = [f for f in SIZED if not f.startswith("helsinki")]
HELSINKI = [f for f in FAMILIES if f.startswith("helsinki")]
NAMES_64 = {"grid": "grid-8x8", "grid_rect": "grid_rect-4x16"}


def build(family: str, n: int, seed: int = 0, index: int = 0) -> SuiteGraph:
    return FAMILIES[family](n, graph_rng(seed, family, n, index))


def reached_from_source(g: SuiteGraph) -> int:
    return len(csgraph.breadth_first_order(g.adjacency(), g.source, directed=True, return_predecessors=False))


def check_structure(g: SuiteGraph) -> None:
    u, v = g.edges[:, 0], g.edges[:, 1]
    assert g.edges.dtype == np.int64 and g.weights.dtype == np.float64
    assert not np.any(u == v), "self-loop"
    assert len(np.unique(u * g.num_nodes + v)) == g.num_edges, "parallel edges"
    assert np.all(g.weights > 0) and np.all(np.isfinite(g.weights))
    a = g.adjacency()
    assert a.shape == (g.num_nodes, g.num_nodes) and a.nnz == g.num_edges
    assert a[int(u[0]), int(v[0])] == g.weights[0]
    symmetric = (a != a.T).nnz == 0
    assert symmetric == (not g.directed)
    if g.pos is not None:
        assert g.pos.shape == (g.num_nodes, 2)


@pytest.mark.parametrize("family", SYNTHETIC)
@pytest.mark.parametrize("n", [64, 256])
def test_synthetic_family_has_n_nodes_and_reaches_all(family: str, n: int) -> None:
    g = build(family, n)
    check_structure(g)
    assert g.family == family and g.num_nodes == n
    if n == 64 and family in NAMES_64:
        assert g.name == NAMES_64[family]
    # every synthetic family is connected (road_directed: strongly), so the source reaches everything
    assert g.directed == (family == "road_directed")
    strong = csgraph.connected_components(g.adjacency(), directed=True, connection="strong")[0]
    assert strong == 1
    assert reached_from_source(g) == n


@pytest.mark.parametrize("family", SIZED)
def test_same_seed_same_graph_other_seed_other_graph(family: str, helsinki_ok: None) -> None:
    a, b, c = build(family, 64, seed=3), build(family, 64, seed=3), build(family, 64, seed=4)
    assert np.array_equal(a.edges, b.edges) and np.array_equal(a.weights, b.weights) and a.source == b.source
    assert (a.pos is None) == (b.pos is None) and (a.pos is None or np.array_equal(a.pos, b.pos))
    assert a.edges.shape != c.edges.shape or not np.array_equal(a.edges, c.edges) or a.source != c.source


def test_grid_shapes_at_every_size() -> None:
    for n, square, rect in ((64, 8, (4, 16)), (256, 16, (8, 32)), (1024, 32, (16, 64))):
        g, r = build("grid", n), build("grid_rect", n)
        assert g.name == f"grid-{square}x{square}" and g.num_nodes == n
        assert g.num_edges == 2 * 2 * square * (square - 1)
        assert r.name == f"grid_rect-{rect[0]}x{rect[1]}" and r.num_nodes == n
        assert r.num_edges == 2 * (rect[0] * (rect[1] - 1) + rect[1] * (rect[0] - 1))


def test_labels_carry_no_position() -> None:
    p = build("path", 64)
    u, v = p.edges[:, 0], p.edges[:, 1]
    assert np.mean(np.abs(u - v) == 1) < 0.5  # a path in label order would have all of them
    # the source is an end of the path (degree 1) and the depth is n - 1
    assert np.count_nonzero(u == p.source) == 1
    g = build("grid", 64)
    assert not np.array_equal(np.argsort(g.pos[:, 1] * 8 + g.pos[:, 0]), np.arange(64))


def test_weights_and_degrees_match_the_documented_distributions() -> None:
    for family in ("er_sparse", "grid", "tree", "path"):
        w = build(family, 256).weights
        assert w.min() >= 0.05 and w.max() < 1.0
    d = build("delaunay", 256)
    lengths = np.linalg.norm(d.pos[d.edges[:, 0]] - d.pos[d.edges[:, 1]], axis=1)
    assert np.allclose(d.weights, lengths)
    geo = build("geometric", 1024)
    assert 5.0 < geo.num_edges / geo.num_nodes < 7.5  # mean degree ~ 6 (plus the MST edges)
    assert build("tree", 256).num_edges == 2 * 255
    er = build("er_dense", 64)
    assert 0.4 < er.num_edges / (64 * 63) < 0.6  # p = 0.5 at n = 64
    assert 25 < build("er_dense", 1024).num_edges / 1024 < 40  # mean degree capped near 32


def test_road_directed_has_about_30_percent_one_way() -> None:
    g = build("road_directed", 256)
    a = g.adjacency()
    one_way = int(((a != 0) > (a.T != 0)).nnz)  # edges u -> v without v -> u
    pairs = (g.num_edges + one_way) // 2  # two-way pairs contribute two edges, one-way pairs one
    assert 0.25 < one_way / pairs < 0.35


def test_suite_is_deterministic_and_independent_of_other_families() -> None:
    fams = ["grid", "delaunay", "tree"]
    a = suite(sizes=(64, 256), families=fams, graphs_per_cell=2, seed=5)
    b = suite(sizes=(64, 256), families=fams, graphs_per_cell=2, seed=5)
    assert [g.name for g in a] == [
        "grid-8x8", "grid-8x8", "grid-16x16", "grid-16x16",
        "delaunay-64", "delaunay-64", "delaunay-256", "delaunay-256",
        "tree-64", "tree-64", "tree-256", "tree-256",
    ]  # fmt: skip
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.edges, y.edges) and np.array_equal(x.weights, y.weights) and x.source == y.source
    alone = suite(sizes=(256,), families=["delaunay"], graphs_per_cell=2, seed=5)
    assert np.array_equal(alone[1].edges, a[7].edges)
    assert not np.array_equal(a[4].edges, a[5].edges)  # two graphs of a cell differ
    other = suite(sizes=(64,), families=["tree"], graphs_per_cell=1, seed=6)[0]
    assert not np.array_equal(other.edges, a[8].edges)
    with pytest.raises(ValueError, match="unknown suite families"):
        suite(families=["grid", "nope"])


def test_helsinki_whole_network(helsinki_ok: None) -> None:
    g = build("helsinki", 0)
    check_structure(g)
    assert (g.num_nodes, g.num_edges, g.directed) == (1437, 2126, True)
    assert reached_from_source(g) == 1353  # the most any node reaches (three weak components)
    assert 5 < np.median(g.weights) < 200  # metres
    j = build("helsinki_junctions", 0)
    check_structure(j)
    assert (j.num_nodes, j.num_edges, j.directed) == (175, 330, True)
    assert reached_from_source(j) == 158


@pytest.mark.parametrize("n", [64, 256, 1024])
def test_helsinki_region_has_n_nodes_all_reachable(n: int, helsinki_ok: None) -> None:
    g = build("helsinki_region", n)
    check_structure(g)
    assert g.num_nodes == n and g.directed and g.name == f"helsinki_region-{n}"
    assert reached_from_source(g) == n


def test_fixed_size_families_appear_once(helsinki_ok: None) -> None:
    graphs = suite(sizes=(64, 256), families=["helsinki", "helsinki_region"], graphs_per_cell=2)
    assert [g.name for g in graphs] == ["helsinki"] + ["helsinki_region-64"] * 2 + ["helsinki_region-256"] * 2


def graph(edges, weights, directed=False, n=3, source=0) -> SuiteGraph:
    return SuiteGraph("hand", "hand", n, np.array(edges, dtype=np.int64), np.array(weights, float), directed, source)


def test_suite_graph_validates() -> None:
    ok = graph([[0, 1], [1, 0]], [1.0, 1.0])
    assert not ok.edges.flags.writeable and not ok.directed
    for edges, weights, directed, match in (
        ([[0, 0]], [1.0], True, "self-loops"),
        ([[0, 1], [0, 1]], [1.0, 1.0], True, "parallel"),
        ([[0, 1], [1, 0]], [1.0, 0.0], False, "weights must be finite and > 0"),
        ([[0, 1], [1, 0]], [1.0, 2.0], False, "same weight"),
        ([[0, 1]], [1.0], False, "directed=False"),
        ([[0, 3]], [1.0], True, r"\[0, 3\)"),
    ):
        with pytest.raises(ValueError, match=match):
            graph(edges, weights, directed)
    with pytest.raises(ValueError, match="source"):
        graph([[0, 1], [1, 0]], [1.0, 1.0], source=5)
    with pytest.raises(ValueError, match="pos"):
        SuiteGraph("hand", "hand", 2, np.array([[0, 1]]), np.array([1.0]), True, 0, np.zeros((3, 2)))


def test_edge_ids() -> None:
    g = graph([[0, 1], [1, 0], [1, 2], [2, 1]], [1.0, 1.0, 2.0, 2.0])
    assert g.edge_ids(np.array([1, 0, 2]), np.array([2, 2, 1])).tolist() == [2, -1, 3]
    assert isinstance(g.adjacency(), sp.csr_matrix)


def test_helsinki_osm_nodes_agree_with_the_road_task_network(helsinki_ok: None) -> None:
    """Each junction-to-junction segment of nar.natural.osm is a directed path of at most its length
    in the OSM-node graph: the two read directions (one-way streets) and lengths alike."""
    from nar.scale.suite import _helsinki_junctions, _helsinki_osm_nodes

    fine, coarse = _helsinki_osm_nodes(), _helsinki_junctions()
    index = {osm: k for k, osm in enumerate(fine.node_osm.tolist())}
    tails = np.array([index[x] for x in coarse.node_osm[coarse.edges[:, 0]].tolist()])
    heads = np.array([index[x] for x in coarse.node_osm[coarse.edges[:, 1]].tolist()])
    a = sp.csr_matrix((fine.lengths, (fine.edges[:, 0], fine.edges[:, 1])), shape=(fine.num_nodes,) * 2)
    starts, row = np.unique(tails, return_inverse=True)
    dist = csgraph.dijkstra(a, indices=starts)[row, heads]  # (S,)
    assert np.all(dist <= coarse.lengths * (1 + 1e-9))
    assert np.mean(np.isclose(dist, coarse.lengths)) > 0.95  # the rest: a shorter way round
