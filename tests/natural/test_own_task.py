"""Bring your own natural task: the worked example docs/examples/terrain.py is one file, registered with one
entry, built by the pipeline's builder, checked against scipy's exact shortest paths, and trained on by the
transfer code (issue 16 item 5, docs/natural_task.md)."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.csgraph

from nar.natural import build_natural, load_natural
from nar.natural.config import NATURAL_TASKS, natural_params_class
from nar.validation import ConfigError, build

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "terrain.py"
TINY_SPLITS = {
    "train": {"count": 12, "sizes": [4, 5]},
    "val": {"count": 4, "sizes": [4]},
    "test": {"count": 4, "sizes": [5]},
    "ood": {"count": 2, "sizes": [7]},
}


@pytest.fixture(scope="module")
def terrain():
    spec = importlib.util.spec_from_file_location("terrain_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture(scope="module")
def params_class(terrain):
    """NaturalParams with the example registered: what one line in nar/natural/config.py gives."""
    return natural_params_class({**NATURAL_TASKS, terrain.TASK.name: terrain.TASK})


@pytest.fixture(scope="module")
def built(tmp_path_factory, params_class):
    root = tmp_path_factory.mktemp("own_task")
    params = build(params_class, {"terrain": {"uphill": 6.0, "splits": TINY_SPLITS}}, "natural")
    build_natural("terrain", params, out_dir=root, progress=False)
    return root


def test_the_section_is_validated_like_every_other(params_class):
    assert build(params_class, None, "natural").terrain.uphill == 4.0  # the task's defaults
    with pytest.raises(ConfigError, match=r"natural\.terrain\.uphill: got -1"):
        build(params_class, {"terrain": {"uphill": -1}}, "natural")
    with pytest.raises(ConfigError, match=r"natural\.terrain"):
        build(params_class, {"terrain": {"slope": 1}}, "natural")  # unknown key
    assert "terrain" not in NATURAL_TASKS  # the shipped registry is untouched


def test_the_builder_writes_every_split_with_exact_targets(built, terrain):
    for split, spec in TINY_SPLITS.items():
        ds = load_natural(built / "terrain" / split)
        assert len(ds) == spec["count"]
        for ex in ds:
            k = int(ex.meta["grid_size"])
            assert k in spec["sizes"] and ex.num_nodes == k * k
            assert ex.inputs["node_features"].shape == (k * k, terrain.PATCH * terrain.PATCH * 3)
            # exact distances from scipy on the hidden costs, computed here independently of the builder
            u, v = ex.edge_index[:, 0], ex.edge_index[:, 1]
            cost = ex.hidden["edge_cost"].astype(np.float64)
            graph = scipy.sparse.csr_matrix((cost, (u, v)), shape=(ex.num_nodes, ex.num_nodes))
            dist = scipy.sparse.csgraph.dijkstra(graph, indices=ex.source)
            np.testing.assert_allclose(ex.hidden["dist"], dist, rtol=1e-5)
            # every pointer is a tight edge of the tree: dist(v) = dist(pi(v)) + cost(pi(v) -> v)
            w = dict(zip(zip(u.tolist(), v.tolist(), strict=True), cost.tolist(), strict=True))
            for node, parent in enumerate(ex.pi.tolist()):
                if node != ex.source:
                    assert dist[node] == pytest.approx(dist[parent] + w[(parent, node)], rel=1e-5)


def test_climbing_makes_the_cost_depend_on_the_pair_of_cells(built):
    ex = load_natural(built / "terrain" / "train")[0]
    cost = ex.hidden["edge_cost"]
    into = ex.edge_index[:, 1]
    spread = [np.ptp(cost[into == v]) for v in range(ex.num_nodes)]
    assert max(spread) > 0  # moves into the same cell cost differently: one scalar per cell is not enough


def test_the_transfer_code_trains_on_it(built):
    from nar.transfer.config import TaskTransferParams
    from nar.transfer.train import RunSpec, TaskData, train_run

    params = TaskTransferParams(width=8, batch_size=4, max_steps=2, val_examples=4, precision="float32")
    data = TaskData.load(str(built), "terrain", params)
    for variant in ("bottleneck", "heuristic", "oracle"):
        r = train_run(RunSpec("terrain", variant, 8, 0), params, data, None)
        assert set(r.metrics) == {"val", "test", "ood"}
    assert r.metrics["test"]["pointer_acc"] == 1.0  # the oracle: the exact algorithm on the hidden costs
