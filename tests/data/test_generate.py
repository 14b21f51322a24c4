"""generate_split: determinism, sizes, round trip, atomic writing and resuming."""

import json
import os

import numpy as np
import pytest

from nar.algorithms import ALGORITHMS, Stage, Type, validate_trajectory
from nar.data import generate as generate_module
from nar.data.dataset import load_dataset
from nar.data.generate import chunk_size, generate_split, sample_trajectories
from nar.data.samplers import GraphSamplerConfig
from nar.data.store import MANIFEST_NAME, PARTIAL_MANIFEST_NAME, DatasetError

from .conftest import COUNT, SIZES


def files(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_same_seed_gives_byte_identical_files(bf_split, tmp_path):
    out, manifest = bf_split
    again = generate_split("bellman_ford", COUNT, SIZES, 5, tmp_path / "train", shard_size=25, progress=False)
    assert files(out) == files(tmp_path / "train")
    assert again == manifest
    assert sorted(files(out)) == [
        MANIFEST_NAME,
        "shard-00000.safetensors.gz",
        "shard-00001.safetensors.gz",
        "shard-00002.safetensors.gz",
    ]


def test_different_seed_gives_different_data(bf_split, tmp_path):
    out, _ = bf_split
    generate_split("bellman_ford", COUNT, SIZES, 6, tmp_path / "train", shard_size=25, progress=False)
    a, b = files(out), files(tmp_path / "train")
    assert all(a[k] != b[k] for k in a)


def test_data_does_not_depend_on_the_shard_size(bf_split, tmp_path):
    out, _ = bf_split
    generate_split("bellman_ford", COUNT, SIZES, 5, tmp_path / "one", shard_size=1000, progress=False)
    one, three = load_dataset(tmp_path / "one"), load_dataset(out)
    assert len(one.manifest.shards) == 1
    for a, b in zip(one, three, strict=True):
        assert_same_trajectory(a, b)


def test_sizes_only_from_the_list_and_histogram_recorded(bf_split):
    out, manifest = bf_split
    ds = load_dataset(out)
    assert set(ds.num_nodes) <= set(SIZES) and len(set(ds.num_nodes)) == len(SIZES)
    assert manifest.sizes_histogram == {n: int((ds.num_nodes == n).sum()) for n in SIZES}
    assert manifest.count == len(ds) == COUNT
    m = json.loads((out / MANIFEST_NAME).read_text())
    assert m["split"] == "train" and m["seed"] == 5 and m["algorithm"] == "bellman_ford"
    assert m["sampler"]["kind"] == "er" and m["sampler"]["p_range"] == [0.1, 0.9]
    assert [s["num_graphs"] for s in m["shards"]] == [25, 25, 10] and m["total_graphs"] == COUNT
    assert {f["name"] for f in m["spec"]["fields"]} == {f.name for f in ALGORITHMS["bellman_ford"].spec.fields}


def test_round_trip_equals_generated_trajectories_after_narrowing(bf_split):
    out, _ = bf_split
    spec = ALGORITHMS["bellman_ford"].spec
    generated = sample_trajectories("bellman_ford", COUNT, SIZES, 5)
    loaded = load_dataset(out).trajectories()
    assert len(loaded) == len(generated)
    for g, ld in zip(generated, loaded, strict=True):
        for f in spec.fields:
            group = {Stage.INPUT: "inputs", Stage.HINT: "hints", Stage.OUTPUT: "outputs"}[f.stage]
            want, got = getattr(g, group)[f.name], getattr(ld, group)[f.name]
            assert got.shape == want.shape
            if f.type == Type.SCALAR:
                assert got.dtype == np.float32
                np.testing.assert_array_equal(got, want.astype(np.float32))
                if f.stage == Stage.INPUT:  # the samplers draw float32-exact inputs
                    np.testing.assert_array_equal(got.astype(np.float64), want)
            else:
                assert got.dtype == (np.int64 if f.type == Type.POINTER else np.uint8)
                np.testing.assert_array_equal(got, want)


def assert_same_trajectory(a, b):
    for group in ("inputs", "hints", "outputs"):
        x, y = getattr(a, group), getattr(b, group)
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_every_algorithm_generates_valid_loadable_splits(name, tmp_path):
    generate_split(name, 24, (1, 3, 6, 9), 0, tmp_path / "s", shard_size=10, progress=False)
    ds = load_dataset(tmp_path / "s")
    assert len(ds) == 24
    for traj in ds:
        validate_trajectory(ds.spec, traj)


@pytest.mark.parametrize("family", ["grid", "geometric"])
def test_other_graph_families_generate(family, tmp_path):
    sampler = GraphSamplerConfig(kind=family)
    manifest = generate_split("bellman_ford", 12, (9, 16), 0, tmp_path / "s", sampler=sampler, progress=False)
    assert manifest.sampler["kind"] == family
    ds = load_dataset(tmp_path / "s")
    assert GraphSamplerConfig.from_dict(ds.manifest.sampler) == sampler
    for traj in ds:
        validate_trajectory(ds.spec, traj)


def test_chunks_are_bounded_and_deterministic():
    assert chunk_size(16) == 512 and chunk_size(64) == 32 and chunk_size(4) == 1024 and chunk_size(1024) == 1
    # more graphs than one chunk: the second chunk continues the same split, first graphs unchanged
    few = sample_trajectories("bellman_ford", 5, [32], 1)
    many = sample_trajectories("bellman_ford", chunk_size(32) + 3, [32], 1)
    assert len({t.inputs["A"].tobytes() for t in many}) == len(many)
    assert many[0].num_nodes == 32 and few[0].num_nodes == 32


@pytest.mark.fault(
    category="interrupt",
    fault="temp files or partial manifest left after generating",
    expected="none left",
    lossless=True,
)
def test_no_temp_files_and_partial_manifest_left(bf_split):
    out, _ = bf_split
    assert not [p for p in out.iterdir() if p.name.startswith(".") or "partial" in p.name or "tmp" in p.name]


def test_files_get_ordinary_permissions(bf_split):
    out, _ = bf_split
    umask = os.umask(0o022)
    os.umask(umask)
    for p in out.iterdir():
        assert p.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


@pytest.mark.fault(
    category="interrupt",
    fault="generation interrupted mid-split (exception after a shard)",
    expected="no manifest.json (not complete-looking); rerun reuses the finished shards",
    lossless=True,
)
def test_interrupted_run_leaves_no_complete_looking_split_and_resumes(bf_split, tmp_path, monkeypatch):
    out, _ = bf_split
    target = tmp_path / "train"
    real_write = generate_module.write_shard
    calls = []

    def failing_write(path, *args, **kwargs):
        calls.append(path.name)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed while producing the second shard
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(generate_module, "write_shard", failing_write)
    with pytest.raises(KeyboardInterrupt):
        generate_split("bellman_ford", COUNT, SIZES, 5, target, shard_size=25, progress=False)
    names = sorted(p.name for p in target.iterdir())
    assert names == [PARTIAL_MANIFEST_NAME, "shard-00000.safetensors.gz"]
    with pytest.raises(DatasetError, match="manifest.json: missing"):
        load_dataset(target)

    calls.clear()
    monkeypatch.setattr(
        generate_module, "write_shard", lambda path, *a, **k: calls.append(path.name) or real_write(path, *a, **k)
    )
    generate_split("bellman_ford", COUNT, SIZES, 5, target, shard_size=25, progress=False)
    assert calls == ["shard-00001.safetensors.gz", "shard-00002.safetensors.gz"]  # shard 0 reused
    assert files(target) == files(out)

    # a finished split with the same plan is reused entirely; a corrupted shard is regenerated
    calls.clear()
    generate_split("bellman_ford", COUNT, SIZES, 5, target, shard_size=25, progress=False)
    assert calls == []
    (target / "shard-00001.safetensors.gz").write_bytes(b"garbage")
    generate_split("bellman_ford", COUNT, SIZES, 5, target, shard_size=25, progress=False)
    assert calls == ["shard-00001.safetensors.gz"]
    assert files(target) == files(out)


def test_a_different_plan_regenerates_and_removes_stale_shards(bf_split, tmp_path):
    out, _ = bf_split
    target = tmp_path / "train"
    generate_split("bellman_ford", COUNT, SIZES, 5, target, shard_size=25, progress=False)
    (target / "notes.txt").write_text("not ours")
    (target / ".shard-00009.safetensors.gz.abc.tmp").write_bytes(b"left by a crash")
    generate_split("bellman_ford", 20, SIZES, 5, target, shard_size=25, progress=False)
    assert sorted(p.name for p in target.iterdir()) == [MANIFEST_NAME, "notes.txt", "shard-00000.safetensors.gz"]
    assert len(load_dataset(target)) == 20


def test_progress_bar_can_be_silenced(tmp_path, capsys):
    generate_split("bellman_ford", 5, (4,), 0, tmp_path / "s", progress=False)
    assert capsys.readouterr().err == ""
    generate_split("bellman_ford", 5, (4,), 0, tmp_path / "t", progress=True)
    assert "bellman_ford/t" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"count": 0}, "count"),
        ({"sizes": ()}, "sizes"),
        ({"sizes": (0, 4)}, "sizes"),
        ({"seed": -1}, "seed"),
        ({"shard_size": 0}, "shard_size"),
    ],
)
@pytest.mark.fault(
    category="config",
    fault="generate_split with bad count/sizes/shard size/algorithm",
    expected="ValueError naming the argument",
)
def test_bad_arguments(kwargs, match, tmp_path):
    args = {"algorithm": "bellman_ford", "count": 4, "sizes": (4,), "seed": 0, "out_dir": tmp_path / "s"} | kwargs
    with pytest.raises(ValueError, match=match):
        generate_split(**args, progress=False)
    with pytest.raises(KeyError, match="unknown algorithm"):
        generate_split("no_such", 4, (4,), 0, tmp_path / "s", progress=False)
