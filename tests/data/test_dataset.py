"""Reading splits: random access, speed, and refusing every kind of damaged split."""

import gzip
import hashlib
import json
import shutil
import time

import numpy as np
import pytest
from safetensors.numpy import save

from nar.algorithms import ALGORITHMS, validate_trajectory
from nar.data.dataset import (
    MANIFEST_NAME,
    Dataset,
    DatasetError,
    Manifest,
    load_dataset,
    spec_from_dict,
    spec_to_dict,
)
from nar.data.generate import generate_split
from nar.data.store import decode_shard

from .conftest import COUNT

SHARD = "shard-00001.safetensors.gz"


@pytest.fixture
def split(bf_split, tmp_path):
    """A private copy of the session's split, free to damage."""
    src, _ = bf_split
    dst = tmp_path / "train"
    shutil.copytree(src, dst)
    return dst


def refused(path, *fragments):
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def edit_manifest(split, edit):
    m = json.loads((split / MANIFEST_NAME).read_text())
    edit(m)
    (split / MANIFEST_NAME).write_text(json.dumps(m))


def rewrite_shard(split, name, edit):
    """Replace a shard's arrays by ``edit(arrays)`` and fix the manifest's size and sha256:
    a hand-made shard that only the content checks can catch."""
    arrays, meta = decode_shard((split / name).read_bytes(), name)
    arrays = edit(dict(arrays))
    data = gzip.compress(save(arrays, metadata={"nar": json.dumps(meta, sort_keys=True)}), mtime=0)
    (split / name).write_bytes(data)

    def fix(m):
        for s in m["shards"]:
            if s["file"] == name:
                s["sha256"], s["bytes"] = hashlib.sha256(data).hexdigest(), len(data)
        m["total_bytes"] = sum(s["bytes"] for s in m["shards"])

    edit_manifest(split, fix)


# --------------------------------------------------------------------------- reading


def test_dataset_is_a_sequence_of_valid_trajectories(bf_split):
    out, manifest = bf_split
    ds = load_dataset(out)
    assert isinstance(ds, Dataset) and len(ds) == COUNT and ds.manifest == manifest
    assert ds.spec == ALGORITHMS["bellman_ford"].spec
    items = list(ds)
    assert len(items) == len(ds.trajectories()) == COUNT
    for i in (0, 24, 25, 59, -1):  # across shard boundaries
        a, b = ds[i], items[i]
        assert a.num_nodes == b.num_nodes and np.array_equal(a.inputs["A"], b.inputs["A"])
    assert [t.num_nodes for t in ds[10:30:5]] == [items[i].num_nodes for i in range(10, 30, 5)]
    with pytest.raises(IndexError):
        ds[COUNT]
    np.testing.assert_array_equal(ds.num_nodes, [t.num_nodes for t in items])
    np.testing.assert_array_equal(ds.lengths, [t.length for t in items])
    for t in items:
        validate_trajectory(ds.spec, t)


def test_values_gives_flat_arrays_with_offsets(bf_split):
    ds = load_dataset(bf_split[0])
    flat, offsets = ds.values("pi_h")
    assert offsets.shape == (COUNT + 1,) and offsets[-1] == flat.size
    for i in (0, 30, 59):
        np.testing.assert_array_equal(flat[offsets[i] : offsets[i + 1]], ds[i].hints["pi_h"].ravel())


def test_spec_round_trips_through_json():
    for algo in ALGORITHMS.values():
        assert spec_from_dict(json.loads(json.dumps(spec_to_dict(algo.spec)))) == algo.spec


def test_loading_a_thousand_small_graphs_is_fast(tmp_path):
    generate_split("bellman_ford", 1000, (4, 7, 11, 13, 16), 0, tmp_path / "s", shard_size=400, progress=False)
    start = time.perf_counter()
    trajectories = load_dataset(tmp_path / "s").trajectories()
    elapsed = time.perf_counter() - start
    assert len(trajectories) == 1000 and elapsed < 1.0, elapsed


# --------------------------------------------------------------------------- refusing damage


@pytest.mark.fault(
    category="data", fault="synthetic split without manifest.json", expected="DatasetError naming the split"
)
def test_missing_manifest(split, tmp_path):
    (split / MANIFEST_NAME).unlink()
    refused(split, str(split / MANIFEST_NAME), "missing")
    refused(tmp_path / "nowhere", "nowhere", "not a directory")


@pytest.mark.fault(
    category="data", fault="a shard listed in the manifest is missing", expected="DatasetError naming the shard"
)
def test_missing_shard(split):
    (split / SHARD).unlink()
    refused(split, SHARD, "missing")


@pytest.mark.fault(category="data", fault="truncated shard", expected="DatasetError naming the shard")
def test_truncated_shard(split):
    data = (split / SHARD).read_bytes()
    (split / SHARD).write_bytes(data[: len(data) // 2])
    refused(split, SHARD, "truncated")


@pytest.mark.fault(category="data", fault="corrupted shard bytes", expected="DatasetError (sha256 mismatch)")
def test_corrupted_shard(split):
    data = bytearray((split / SHARD).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (split / SHARD).write_bytes(bytes(data))
    refused(split, SHARD, "sha256", "corrupted")


@pytest.mark.fault(
    category="data",
    fault="truncated shard whose manifest entry was rewritten to match",
    expected="DatasetError from the shard's own header",
)
def test_truncated_shard_with_matching_manifest_entry(split):
    data = (split / SHARD).read_bytes()[:-100]
    (split / SHARD).write_bytes(data)

    def fix(m):
        m["shards"][1]["sha256"], m["shards"][1]["bytes"] = hashlib.sha256(data).hexdigest(), len(data)
        m["total_bytes"] = sum(s["bytes"] for s in m["shards"])

    edit_manifest(split, fix)
    refused(split, SHARD, "gzip")


@pytest.mark.fault(
    category="data", fault="hand-edited pointer outside the graph", expected="DatasetError naming the field"
)
def test_edited_pointer_out_of_range(split):
    def edit(arrays):
        arrays["output/pi"] = arrays["output/pi"].copy()
        arrays["output/pi"][3] = 99
        return arrays

    rewrite_shard(split, SHARD, edit)
    refused(split, SHARD, "output/pi", "node index")


@pytest.mark.parametrize(
    "edit, fragments",
    [
        (lambda a: {k: v for k, v in a.items() if k != "hint/d"}, ("missing ['hint/d']",)),
        (lambda a: a | {"hint/extra": np.zeros(3, np.float32)}, ("extra ['hint/extra']",)),
        (lambda a: a | {"input/A": a["input/A"][:-1]}, ("input/A", "values")),
        (lambda a: a | {"input/A": a["input/A"].astype(np.float64)}, ("input/A", "float64")),
        (
            lambda a: (
                a | {"input/A": np.where(np.arange(a["input/A"].size) == 0, np.nan, a["input/A"]).astype(np.float32)}
            ),
            ("input/A", "NaN"),
        ),
        (lambda a: a | {"input/adj": a["input/adj"] * 2}, ("input/adj", "0 or 1")),
        (lambda a: a | {"input/s": np.zeros_like(a["input/s"])}, ("input/s", "exactly one")),
        (lambda a: a | {"meta/length": a["meta/length"] + 1}, ("hint/", "num_nodes and length")),
        (lambda a: a | {"meta/num_nodes": a["meta/num_nodes"][:-1]}, ("meta/num_nodes",)),
    ],
)
@pytest.mark.fault(category="data", fault="hand-edited shard contents", expected="DatasetError naming what is wrong")
def test_hand_edited_shard_contents(split, edit, fragments):
    rewrite_shard(split, SHARD, edit)
    refused(split, SHARD, *fragments)


@pytest.mark.fault(category="data", fault="shard header disagreeing with the manifest", expected="DatasetError")
def test_shard_header_disagreeing_with_manifest(split):
    arrays, meta = decode_shard((split / SHARD).read_bytes(), SHARD)

    def fix(m):
        data = gzip.compress(save(arrays, metadata={"nar": json.dumps(meta | {"num_graphs": 3})}), mtime=0)
        (split / SHARD).write_bytes(data)
        m["shards"][1]["sha256"], m["shards"][1]["bytes"] = hashlib.sha256(data).hexdigest(), len(data)
        m["total_bytes"] = sum(s["bytes"] for s in m["shards"])

    edit_manifest(split, fix)
    refused(split, SHARD, "header")


@pytest.mark.parametrize(
    "edit, file, fragments",
    [
        (lambda m: m.update(count=61), MANIFEST_NAME, ("count",)),
        (lambda m: m["shards"][0].update(num_graphs=24), MANIFEST_NAME, ("count",)),
        (lambda m: m["shards"][0].update(file="../elsewhere.gz"), MANIFEST_NAME, ("named",)),
        (lambda m: m.update(format_version=99), MANIFEST_NAME, ("format_version",)),
        (lambda m: m.update(format="other"), MANIFEST_NAME, ("not a nar-trajectories manifest",)),
        (lambda m: m.pop("seed"), MANIFEST_NAME, ("malformed", "seed")),
        (lambda m: m.update(sizes_histogram={"4": 30, "7": 20, "11": 10}), MANIFEST_NAME, ("sizes_histogram",)),
        (lambda m: m.update(algorithm="bfs"), MANIFEST_NAME, ("algorithm",)),
        # the manifest's spec differs from the code's: refused as stale
        (lambda m: m["spec"]["fields"].pop(), MANIFEST_NAME, ("regenerate",)),
    ],
)
@pytest.mark.fault(
    category="data",
    fault="manifest disagreeing with itself or its shards",
    expected="DatasetError naming the disagreement",
)
def test_manifest_disagreeing_with_itself_or_its_shards(split, edit, file, fragments):
    edit_manifest(split, edit)
    refused(split, file, *fragments)


@pytest.mark.parametrize(
    "edit, fragments",
    [
        (lambda m: m["spec"]["fields"].pop(), ("tensors disagree", "missing []", "extra ['output/pi']")),
        (lambda m: m["spec"]["fields"][2].update(type="mask"), ("input/A", "float32", "expected flat uint8")),
    ],
)
@pytest.mark.fault(category="data", fault="manifest spec disagreeing with the shards", expected="DatasetError")
def test_manifest_spec_disagreeing_with_the_shards(split, edit, fragments, monkeypatch):
    # With the algorithm unregistered only the manifest's own spec is there to check against.
    monkeypatch.delitem(ALGORITHMS, "bellman_ford")
    edit_manifest(split, edit)
    refused(split, "shard-00000", *fragments)


@pytest.mark.fault(category="data", fault="manifest.json not JSON", expected="DatasetError naming the file")
def test_manifest_not_json(split):
    (split / MANIFEST_NAME).write_text("{ not json")
    refused(split, MANIFEST_NAME, "not valid JSON")


@pytest.mark.fault(
    category="data", fault="dataset written by an older algorithm spec", expected="refused: spec version differs"
)
def test_stale_spec_is_refused(split):
    def bump(m):
        m["spec_version"] = m["spec"]["version"] = 99

    edit_manifest(split, bump)
    refused(split, MANIFEST_NAME, "regenerate")


def test_manifest_object_round_trip(bf_split):
    out, manifest = bf_split
    assert Manifest.read(out / MANIFEST_NAME) == manifest
    assert (out / MANIFEST_NAME).read_bytes() == manifest.to_json()
