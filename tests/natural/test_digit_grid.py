"""digit_grid: real digits, disjoint image pools, targets that agree with networkx, no leaks."""

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.datasets import load_digits

from nar.natural.digit_grid import CELL_COST, grid_edges, split_images
from nar.natural.store import load_natural

from .conftest import check_against_networkx

SPLITS = ("train", "val", "test", "ood")


@pytest.fixture(scope="module")
def splits(built):
    return {s: load_natural(built / "digit_grid" / s) for s in SPLITS}


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    return d.data.astype(np.float32) / 16.0, d.target


def test_image_pools_are_disjoint_stratified_and_complete(digits):
    _, labels = digits
    pools = split_images(labels, (0.6, 0.2, 0.2), seed=11)
    all_ids = np.concatenate(list(pools.values()))
    assert len(all_ids) == len(set(all_ids.tolist())) == len(labels)
    for d in range(10):
        counts = [int((labels[p] == d).sum()) for p in pools.values()]
        total = int((labels == d).sum())
        assert abs(counts[0] - 0.6 * total) <= 1 and abs(counts[1] - 0.2 * total) <= 1
    assert not np.array_equal(pools["train"], split_images(labels, (0.6, 0.2, 0.2), seed=12)["train"])


def test_no_image_shared_across_splits(splits):
    used = {s: set(np.concatenate([ex.meta["image_id"] for ex in ds]).tolist()) for s, ds in splits.items()}
    assert not used["train"] & used["val"]
    assert not used["train"] & (used["test"] | used["ood"])
    assert not used["val"] & (used["test"] | used["ood"])
    pools = splits["train"].manifest.info["pool_sizes"]
    assert sum(pools.values()) == 1797
    assert splits["ood"].manifest.params["split"]["pool"] == "test"


def test_ood_grids_are_larger(splits):
    assert max(splits["train"].manifest.sizes_histogram) == 6
    assert min(splits["ood"].manifest.sizes_histogram) == 12
    assert min(ex.num_nodes for ex in splits["ood"]) > 2 * max(ex.num_nodes for ex in splits["train"])


def test_cells_are_real_digits_and_costs_follow_the_rule(splits, digits):
    images, labels = digits
    for ds in splits.values():
        for ex in ds[:5]:
            ids = ex.meta["image_id"]
            np.testing.assert_array_equal(ex.inputs["node_features"], images[ids])
            np.testing.assert_array_equal(ex.hidden["digit"], labels[ids])
            np.testing.assert_array_equal(ex.hidden["cell_cost"], 1 + labels[ids])
            np.testing.assert_array_equal(ex.hidden["edge_cost"], CELL_COST[labels[ids]][ex.edge_index[:, 1]])
            k = int(ex.meta["grid_size"])
            np.testing.assert_array_equal(ex.edge_index, grid_edges(k))
            r, c = ex.meta["coords"][ex.source], ex.meta["coords"][ex.target]
            assert abs(r - c).sum() >= k - 1


def test_targets_agree_with_networkx(splits):
    for ds in splits.values():
        for ex in ds:
            check_against_networkx(ex)


def test_grid_edges_are_the_4_neighbourhood():
    e = grid_edges(3)
    assert len(e) == 24  # 12 undirected neighbour pairs, both directions
    pairs = {tuple(x) for x in e.tolist()}
    assert (0, 1) in pairs and (1, 0) in pairs and (0, 3) in pairs and (0, 4) not in pairs


def test_costs_are_not_model_inputs(splits):
    ds = splits["train"]
    inputs = {f.name for f in ds.schema.by_role("input")}
    assert inputs == {"node_features", "edge_index", "source", "target"}
    hidden = {f.name for f in ds.schema.by_role("hidden")}
    assert {"edge_cost", "cell_cost", "digit", "dist"} <= hidden
    ex = ds[0]
    assert not set(ex.inputs) & hidden
    # no pixel column is the cost, or a monotone function of it
    X = np.concatenate([ex.inputs["node_features"] for ex in ds])
    cost = np.concatenate([ex.hidden["cell_cost"] for ex in ds])
    for j in range(X.shape[1]):
        if X[:, j].std() > 0:
            assert abs(spearmanr(X[:, j], cost).statistic) < 0.8, j
