"""Summary tables of splits and of an algorithm's directory."""

import numpy as np
import pytest

from nar.data.dataset import load_dataset
from nar.data.generate import generate_split
from nar.data.summary import COLUMNS, summarize, summarize_dir

from .conftest import COUNT


def test_split_row_matches_the_data(bf_split):
    out, manifest = bf_split
    ds = load_dataset(out)
    table = summarize(out)
    assert list(table.columns) == COLUMNS and len(table) == 1
    row = table.iloc[0]
    assert row["algorithm"] == "bellman_ford" and row["split"] == "train" and row["graphs"] == COUNT
    n, t = ds.num_nodes, ds.lengths
    assert row["sizes"] == " ".join(f"{k}:{v}" for k, v in sorted(manifest.sizes_histogram.items()))
    assert (row["nodes_min"], row["nodes_max"]) == (n.min(), n.max())
    assert row["nodes_mean"] == pytest.approx(n.mean())
    assert (row["length_min"], row["length_max"]) == (t.min(), t.max())
    assert row["length_mean"] == pytest.approx(t.mean())
    # independent density: off-diagonal entries of adj over n (n - 1)
    density = [(tr.inputs["adj"].sum() - np.trace(tr.inputs["adj"])) / (tr.num_nodes * (tr.num_nodes - 1)) for tr in ds]
    assert row["edge_density_mean"] == pytest.approx(np.mean(density))
    assert row["shards"] == 3 and row["megabytes"] == pytest.approx(manifest.total_bytes / 1e6)
    assert summarize(ds).equals(table)


def test_algorithm_directory_has_one_row_per_split_in_order(tmp_path):
    root = tmp_path / "bellman_ford"
    for split, sizes in (("test", (9,)), ("extra", (3,)), ("train", (4, 5)), ("val", (6,))):
        generate_split("bellman_ford", 8, sizes, 1, root / split, progress=False)
    (root / "unfinished").mkdir()  # no manifest: not a split
    table = summarize(root)
    assert list(table["split"]) == ["train", "val", "test", "extra"]
    assert list(table["nodes_max"]) == [5, 6, 9, 3]
    assert summarize_dir(root).equals(table)
    assert summarize_dir(tmp_path / "empty").empty
