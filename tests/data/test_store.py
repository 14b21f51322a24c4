"""The one sharded store: what synthetic and natural splits share (nar.data.store)."""

import json
import shutil

import numpy as np
import pytest

from nar.algorithms import get_algorithm
from nar.data.dataset import Manifest, TrajectoryLayout, load_dataset
from nar.data.store import (
    MANIFEST_NAME,
    DatasetError,
    ShardInfo,
    check_arrays,
    clean_split_dir,
    decode_shard,
    shard_name,
)
from nar.natural.build import build_natural
from nar.natural.config import parse_natural_params
from nar.natural.store import NaturalManifest, load_natural


@pytest.fixture(scope="module")
def natural_split(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    params = parse_natural_params(
        {"seed": 2, "shard_size": 3, "digit_grid": {"splits": {"val": {"count": 7, "sizes": [4]}}}}
    )
    build_natural("digit_grid", params, out_dir=root, progress=False)
    return root / "digit_grid" / "val"


def test_both_formats_are_store_manifests(bf_split, natural_split):
    out, manifest = bf_split
    for path, cls, load in ((out, Manifest, load_dataset), (natural_split, NaturalManifest, load_natural)):
        m = cls.read(path / MANIFEST_NAME)
        assert (path / MANIFEST_NAME).read_bytes() == m.to_json()
        assert [s.file for s in m.shards] == [shard_name(k) for k in range(len(m.shards))]
        ds = load(path)
        assert len(ds) == m.count and ds.num_nodes.dtype == np.int64
        with pytest.raises(IndexError, match="out of range"):
            ds[m.count]


def test_shard_info_round_trip():
    info = ShardInfo(file=shard_name(3), num_graphs=5, bytes=120, sha256="ab" * 32)
    assert ShardInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info


@pytest.mark.parametrize("kind", ["synthetic", "natural"])
def test_total_bytes_and_headers_are_checked_for_every_format(bf_split, natural_split, tmp_path, kind):
    src = bf_split[0] if kind == "synthetic" else natural_split
    load = load_dataset if kind == "synthetic" else load_natural
    split = tmp_path / "split"
    shutil.copytree(src, split)
    m = json.loads((split / MANIFEST_NAME).read_text())
    m["total_bytes"] += 1
    (split / MANIFEST_NAME).write_text(json.dumps(m))
    with pytest.raises(DatasetError, match="total_bytes"):
        load(split)


def test_layout_checks_run_after_the_store_checks(bf_split):
    """The store checks names, dtypes, lengths and indices; the layout adds its own domains (0/1 masks)."""
    out, _ = bf_split
    spec = get_algorithm("bellman_ford").spec
    arrays, _ = decode_shard((out / shard_name(0)).read_bytes(), "shard")
    arrays = dict(arrays)
    counts = check_arrays(TrajectoryLayout(spec), arrays, 25, "shard")
    assert set(counts) == {"num_nodes", "length"} and counts["num_nodes"].shape == (25,)
    mask = next(f for f in spec.fields if f.type == "mask")
    key = f"{mask.stage}/{mask.name}"
    arrays[key] = arrays[key] * 2
    with pytest.raises(DatasetError, match="0 or 1"):
        check_arrays(TrajectoryLayout(spec), arrays, 25, "shard")


def test_clean_split_dir_keeps_only_what_the_run_writes(tmp_path):
    for k in range(4):
        (tmp_path / shard_name(k)).write_bytes(b"x")
    (tmp_path / MANIFEST_NAME).write_text("{}")
    (tmp_path / f".{shard_name(0)}.123.tmp").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("mine")
    clean_split_dir(tmp_path, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", shard_name(0), shard_name(1)]
