"""The natural split format: determinism, verified reading, refusing damaged splits."""

import hashlib
import json
import shutil

import numpy as np
import pytest

from nar.data.store import DatasetError
from nar.natural.build import build_natural
from nar.natural.store import MANIFEST_NAME, FieldSpec, Schema, encode_examples, load_natural

from .conftest import small_params


def digests(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*.*")}


def test_same_seed_same_bytes(built, tmp_path):
    params = small_params()
    for task in ("digit_grid", "road"):
        build_natural(task, params, out_dir=tmp_path, progress=False)
        assert digests(tmp_path / task) == digests(built / task), task


def test_other_seed_other_data(built, tmp_path):
    build_natural("digit_grid", small_params(), out_dir=tmp_path, seed=12, progress=False, splits=["val"])
    a, b = load_natural(built / "digit_grid" / "val"), load_natural(tmp_path / "digit_grid" / "val")
    assert not np.array_equal(a[0].meta["image_id"], b[0].meta["image_id"])


def test_shard_size_does_not_change_examples(built, tmp_path):
    build_natural("road", small_params(shard_size=5), out_dir=tmp_path, progress=False, splits=["train"])
    a, b = load_natural(built / "road" / "train"), load_natural(tmp_path / "road" / "train")
    assert len(b.manifest.shards) == 8 and len(a.manifest.shards) == 3
    for ea, eb in zip(a, b, strict=True):
        for role in ("input", "target", "hidden", "meta"):
            ga, gb = ea.group(role), eb.group(role)
            assert ga.keys() == gb.keys()
            for k in ga:
                np.testing.assert_array_equal(ga[k], gb[k])


def test_manifest_describes_the_split(built):
    ds = load_natural(built / "digit_grid" / "train")
    m = ds.manifest
    assert (m.task, m.split, m.count, m.algorithm) == ("digit_grid", "train", 40, "bellman_ford")
    assert sum(m.sizes_histogram.values()) == 40 and set(m.sizes_histogram) <= {4, 6}
    assert m.params["split"]["pool"] == "train"
    raw = json.loads((built / "digit_grid" / "train" / MANIFEST_NAME).read_text())
    assert "/" not in json.dumps(raw["params"])  # no paths
    assert {f.role for f in ds.schema} == {"input", "target", "hidden", "meta"}
    assert len(ds.feature_names["node_features"]) == ds.schema.field("node_features").width[0]


@pytest.fixture
def split(built, tmp_path):
    dst = tmp_path / "train"
    shutil.copytree(built / "road" / "train", dst)
    return dst


def refused(path, *fragments):
    with pytest.raises(DatasetError) as exc:
        load_natural(path)
    for f in fragments:
        assert f in str(exc.value)
    return str(exc.value)


@pytest.mark.fault(
    category="data", fault="natural split without manifest.json", expected="DatasetError naming the split"
)
def test_refuses_missing_manifest(split):
    (split / MANIFEST_NAME).unlink()
    refused(split, str(split / MANIFEST_NAME), "missing")


@pytest.mark.fault(
    category="data", fault="natural shard hand-edited", expected="refused: sha256 mismatch naming the shard"
)
def test_refuses_edited_shard(split):
    shard = split / "shard-00001.safetensors.gz"
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    refused(split, str(shard), "sha256")


@pytest.mark.fault(category="data", fault="natural shard truncated", expected="refused naming the shard")
def test_refuses_truncated_shard(split):
    shard = split / "shard-00000.safetensors.gz"
    shard.write_bytes(shard.read_bytes()[:-10])
    refused(split, str(shard), "bytes")


@pytest.mark.fault(category="data", fault="natural manifest from another task", expected="refused naming the manifest")
def test_refuses_foreign_manifest(split):
    (split / MANIFEST_NAME).write_text(json.dumps({"format": "nar-trajectories"}))
    refused(split, "not a nar-natural manifest")


@pytest.mark.fault(
    category="data", fault="a file where a split directory should be", expected="refused: not a directory"
)
def test_refuses_a_file_instead_of_a_split(tmp_path):
    (tmp_path / "x").write_text("hi")
    refused(tmp_path / "x", "not a directory")


@pytest.mark.fault(
    category="data",
    fault="natural example with out-of-range pointer, NaN feature, wrong shape",
    expected="refused before writing",
    inputs=3,
)
def test_encoder_refuses_bad_examples():
    schema = Schema(
        (
            FieldSpec("node_features", "input", "node", "float32", (2,)),
            FieldSpec("edge_index", "input", "edge", "int32", (2,), index=True),
            FieldSpec("pi", "target", "node", "int32", index=True),
        )
    )
    good = {
        "node_features": np.zeros((3, 2)),
        "edge_index": np.array([[0, 1], [1, 2]]),
        "pi": np.array([0, 0, 1]),
    }
    data, sizes = encode_examples(schema, "t", [good], "t/x")
    assert sizes.tolist() == [[3, 2]]
    with pytest.raises(DatasetError, match="node index outside"):
        encode_examples(schema, "t", [{**good, "pi": np.array([0, 0, 3])}], "t/x")
    with pytest.raises(DatasetError, match="NaN"):
        encode_examples(schema, "t", [{**good, "node_features": np.full((3, 2), np.nan)}], "t/x")
    with pytest.raises(ValueError, match="shape"):
        encode_examples(schema, "t", [{**good, "pi": np.array([0, 0])}], "t/x")
