"""Requests beyond what the machine has (issue 17 items 7 and 12): a billion graphs, 100,000-node graphs,
Floyd-Warshall at the allowed 1,024 nodes, a 100,000-wide processor, an output directory that is read-only or
fills up. Each is refused as one line giving the estimate and the limit (or naming the directory) before
anything is allocated or written; a full disk mid-run leaves only whole files, and a rerun resumes."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from nar.cli import main

from .helpers import TINY, files, nar, one_line_error, tiny, write_params


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    write_params(tmp_path, TINY)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def refused_in_process(capsys, args: list[str], command: str) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(f"nar {command}: error: ")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.fault(
    category="config",
    fault="`nar generate` asking for more memory than there is: --count 1000000000, floyd_warshall --size 1024 "
    "(allowed by the size rule: 1,024 nodes, ~244 GiB of hints), and a limit (NAR_MEMORY_LIMIT) that the first "
    "splits fit but the last does not",
    expected="exit 2, one line with the estimate and the limit (and how to override it) before anything is "
    "allocated; no directory created, not even for the splits that would fit",
    inputs=3,
    lossless=True,
)
def test_generate_beyond_memory_is_refused_before_anything_is_written(tmp_path):
    from nar.data.generate import estimate_memory

    write_params(tmp_path, TINY)
    for args in (
        ["--algorithm", "bfs", "--split", "x", "--count", "1000000000", "--size", "8"],
        ["--algorithm", "floyd_warshall", "--split", "x", "--count", "2", "--size", "1024"],
    ):
        message = one_line_error(nar(["generate", *args, "--no-progress"], tmp_path), "generate")
        assert "needs about" in message and "GiB of memory; allowed: at most" in message, message
        assert "NAR_MEMORY_LIMIT" in message, message
        assert not (tmp_path / "data").exists()
    params = tiny(**{"generate.splits.test.sizes": [64]})
    write_params(tmp_path, params)
    gen = params["generate"]
    sizes = {
        k: estimate_memory("bellman_ford", s["count"], s["sizes"], gen["shard_size"]) for k, s in gen["splits"].items()
    }
    limit = max(sizes["train"], sizes["val"]) + 1
    assert list(gen["splits"])[-1] == "test" and sizes["test"] > limit  # the last split alone is over
    proc = nar(["generate", "--algorithm", "bellman_ford", "--no-progress"], tmp_path, NAR_MEMORY_LIMIT=str(limit))
    message = one_line_error(proc, "generate")
    assert message.startswith("generate bellman_ford/test: 4 graphs of up to 64 nodes"), message
    assert f"NAR_MEMORY_LIMIT={limit}" in message, message
    assert not (tmp_path / "data").exists()


@pytest.mark.fault(
    category="config",
    fault="graph sizes over the params cap: `nar generate --size 100000` / `--size 1025` (the CLI used to accept "
    "any size), and generate.splits.train.sizes [2000] in params.yaml",
    expected="one line from the one rule (nar.config.check_node_counts): node counts from 1 to 1024; nothing written",
    inputs=3,
    lossless=True,
)
def test_sizes_over_the_cap_are_refused_by_one_rule(workspace, capsys):
    for size in ("100000", "1025"):
        line = refused_in_process(capsys, ["generate", "--split", "x", "--count", "1", "--size", size], "generate")
        assert line.endswith(f"--size: got {size}; allowed: node counts from 1 to 1024"), line
    write_params(workspace, tiny(**{"generate.splits.train.sizes": [4, 2000]}))
    line = refused_in_process(capsys, ["generate", "--no-progress"], "generate")
    assert line.endswith("generate.splits.train.sizes[1]: got 2000; allowed: node counts from 1 to 1024"), line
    assert not (workspace / "data").exists()


@pytest.mark.fault(
    category="config",
    fault="pretrain.runs.<name>.model.processor: hidden 100000 (a 240 GB weight matrix), hidden 0, "
    "msg_mlp_layers 1000000000",
    expected="`nar pretrain` exits 2 with one line naming the key and the allowed range (the rule shared with the "
    "registry: nar.config.processor_size_problem) before any model is built; nothing written",
    inputs=3,
    lossless=True,
)
def test_processor_size_over_the_cap_is_refused(tmp_path):
    key = "pretrain.runs.tiny.model.processor"
    for field, value, expected in (
        ("hidden", 100000, f"{key}.hidden: got 100000; allowed: an integer from 1 to 4096"),
        # 0 is refused earlier, by ProcessorConfig's own >= 1 check, also naming the key
        ("hidden", 0, f"{key}: got {{'hidden': 0, 'kind': 'mpnn'}}; allowed: processor hidden must be >= 1, got 0"),
        ("msg_mlp_layers", 10**9, f"{key}.msg_mlp_layers: got 1000000000; allowed: an integer from 0 to 8"),
    ):
        params = tiny()
        params["pretrain"]["runs"]["tiny"]["model"]["processor"][field] = value
        write_params(tmp_path, params)
        before = files(tmp_path)
        assert one_line_error(nar(["pretrain", "--no-progress"], tmp_path), "pretrain") == expected
        assert files(tmp_path) == before


@pytest.mark.fault(
    category="config",
    fault="NAR_MEMORY_LIMIT that is not a size ('lots', '-5G')",
    expected="one line naming the variable and the forms allowed (8G, 50%)",
    inputs=2,
)
def test_bad_memory_limit_is_one_line(workspace, capsys, monkeypatch):
    for value in ("lots", "-5G"):
        monkeypatch.setenv("NAR_MEMORY_LIMIT", value)
        line = refused_in_process(capsys, ["generate", "--no-progress"], "generate")
        assert f"NAR_MEMORY_LIMIT='{value}'" in line and "(e.g. 8G)" in line and "(e.g. 50%)" in line, line
    assert not (workspace / "data").exists()


def test_every_algorithm_stays_within_the_step_bound():
    """nar.data.dataset.max_steps bounds the hint steps of every registered algorithm: the shard bound and the
    generation estimate rely on it (paths and complete graphs: the longest and the densest cases)."""
    from nar.algorithms import ALGORITHMS
    from nar.data.dataset import max_steps
    from nar.data.generate import sample_trajectories

    for name in ALGORITHMS:
        for n in (2, 5, 9):
            for traj in sample_trajectories(name, 6, (n,), seed=n):
                assert traj.length <= max_steps(n), (name, n, traj.length)
    from nar.algorithms import get_algorithm
    from nar.algorithms.base import Graphs

    for name in ALGORITHMS:
        n = 12
        path = np.zeros((n, n))
        path[np.arange(n - 1), np.arange(1, n)] = 1.0
        spec = get_algorithm(name).spec
        if not spec.graph.directed:
            path = path + path.T
        trace = get_algorithm(name).run(Graphs.single(path))
        assert int(trace.lengths.max()) <= max_steps(n), (name, trace.lengths)


# --------------------------------------------------------------------------- output directories


def _refuse_writes(monkeypatch, under: Path, code: int) -> None:
    """Every file or directory creation under ``under`` fails with ``code`` (as on a read-only mount)."""
    real_open, real_mkdir = os.open, os.mkdir
    under = under.resolve()

    def inside(path) -> bool:
        p = Path(os.fsdecode(path)).resolve()
        return p == under or under in p.parents

    def guarded_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
            raise OSError(code, os.strerror(code), os.fsdecode(path))
        return real_open(path, flags, *args, **kwargs)

    def guarded_mkdir(path, *args, **kwargs):
        if inside(path):
            raise OSError(code, os.strerror(code), os.fsdecode(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_open)
    monkeypatch.setattr(os, "mkdir", guarded_mkdir)


@pytest.mark.fault(
    category="data",
    fault="output directory on a read-only file system: `nar generate --out` and `nar pretrain` (models/)",
    expected="exit 2, one line naming the directory before any work (pretrain: before training); nothing written",
    inputs=2,
    lossless=True,
)
def test_read_only_output_directory_is_refused_before_any_work(workspace, capsys, monkeypatch):
    (workspace / "ro").mkdir()
    (workspace / "models").mkdir()
    _refuse_writes(monkeypatch, workspace / "ro", errno.EROFS)
    _refuse_writes(monkeypatch, workspace / "models", errno.EROFS)
    before = files(workspace)
    line = refused_in_process(capsys, ["generate", "--out", "ro", "--no-progress"], "generate")
    assert "--out" in line and f"cannot write in {workspace / 'ro'}" in line and "Read-only file system" in line
    assert "allowed: a writable directory" in line, line
    line = refused_in_process(capsys, ["pretrain", "--no-progress", "--no-mlflow"], "pretrain")
    assert "output directory models/pretrain: cannot write in models (Read-only file system)" in line, line
    assert files(workspace) == before
    assert not (workspace / "checkpoints").exists() and not (workspace / "data").exists()


@pytest.mark.fault(
    category="data",
    fault="the disk fills up while `nar generate` writes its second shard (ENOSPC from the write)",
    expected="exit 2, one line naming the shard file and saying the finished shards are kept; no temporary or "
    "half-written file, no final manifest; with space again the rerun reuses shard 0 and the split is "
    "byte-identical to a clean run",
    lossless=True,
)
def test_full_disk_mid_generation_leaves_whole_files_and_resumes(workspace, capsys, monkeypatch):
    split = workspace / "data/synthetic/bellman_ford/train"
    real_fsync, calls = os.fsync, []

    def fsync_then_full(fd):
        calls.append(fd)
        if len(calls) == 3:  # shard 0, the partial manifest, then shard 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_then_full)
    args = ["generate", "--algorithm", "bellman_ford", "--split", "train", "--no-progress"]
    line = refused_in_process(capsys, args, "generate")
    assert f"cannot write {split / 'shard-00001.safetensors.gz'}: No space left on device" in line, line
    assert "the shards finished so far are kept and a rerun reuses them" in line, line
    assert sorted(p.name for p in split.iterdir()) == ["manifest.partial.json", "shard-00000.safetensors.gz"]
    shard0 = (split / "shard-00000.safetensors.gz").stat().st_mtime_ns
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert main(args) == 0
    assert (split / "shard-00000.safetensors.gz").stat().st_mtime_ns == shard0  # reused, not rewritten
    clean = workspace / "clean"
    assert main([*args, "--out", "clean"]) == 0
    for p in sorted((clean / "bellman_ford/train").iterdir()):
        assert (split / p.name).read_bytes() == p.read_bytes(), p.name
