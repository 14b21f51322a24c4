"""Dataset files that are not what their names say (issue 17 item 6): a shard linked to /dev/zero, a FIFO
manifest, a gzip bomb, a manifest of 17 MB or nested 100,000 deep. Both stores (synthetic trajectories and
natural examples) read through the same checks (nar.limits, nar.data.store.read_shard): each is refused
as one line naming the file, what is wrong and what is allowed, without reading it whole or waiting on it."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import signal
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nar.data.dataset import load_dataset
from nar.data.store import MANIFEST_NAME, MAX_MANIFEST_BYTES, DatasetError
from nar.natural.store import load_natural

from .helpers import TINY, files, nar, one_line_error, write_params

SHARD = "shard-00000.safetensors.gz"


@pytest.fixture(scope="module")
def splits(tmp_path_factory) -> dict[str, tuple[Path, Callable]]:
    """One small split of each store, with two shards or more (do not modify: copy it first)."""
    from nar.data.generate import generate_split
    from nar.natural.build import build_natural
    from nar.natural.config import parse_natural_params

    root = tmp_path_factory.mktemp("stores")
    generate_split("bellman_ford", 30, (4, 7), seed=3, out_dir=root / "synthetic", shard_size=10, progress=False)
    params = parse_natural_params(
        {"seed": 1, "shard_size": 4, "digit_grid": {"splits": {"train": {"count": 8, "sizes": [4]}}}}
    )
    build_natural("digit_grid", params, out_dir=root, progress=False)
    return {"synthetic": (root / "synthetic", load_dataset), "natural": (root / "digit_grid" / "train", load_natural)}


@pytest.fixture(params=["synthetic", "natural"])
def store(request, splits, tmp_path) -> tuple[Path, Callable]:
    """(a fresh copy of one store's split, its loader)."""
    source, load = splits[request.param]
    copy = tmp_path / "split"
    shutil.copytree(source, copy)
    load(copy)  # the copy itself is fine
    return copy, load


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail instead of hanging (a reader blocked on a FIFO would wait forever)."""

    def expired(signum, frame):
        raise AssertionError(f"still reading after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def refused(load: Callable, path: Path, *fragments: str) -> str:
    with deadline(20), pytest.raises(DatasetError) as info:
        load(path)
    message = str(info.value)
    assert "\n" not in message and len(message) < 600, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def relist(split: Path, name: str, data: bytes) -> None:
    """Replace shard ``name`` by ``data`` and make the manifest agree (bytes, sha256): a consistent forgery."""
    (split / name).write_bytes(data)
    manifest = json.loads((split / MANIFEST_NAME).read_text())
    for shard in manifest["shards"]:
        if shard["file"] == name:
            shard.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    manifest["total_bytes"] = sum(s["bytes"] for s in manifest["shards"])
    (split / MANIFEST_NAME).write_text(json.dumps(manifest))


@pytest.mark.fault(
    category="data",
    fault="a split whose shard is a symlink to /dev/zero or a FIFO, or whose manifest is a FIFO or a directory "
    "(synthetic and natural stores)",
    expected="refused at once as one line naming the file, its kind and 'allowed: a regular file'; nothing is "
    "read from it (no endless read, no hang)",
    inputs=4,
)
def test_special_files_are_refused_before_they_are_read(store):
    split, load = store
    original = split / SHARD
    kept = original.read_bytes()
    original.unlink()
    original.symlink_to("/dev/zero")
    refused(load, split, f"{SHARD}: a character device (a symlink to /dev/zero)", "allowed: a regular file")
    original.unlink()
    os.mkfifo(original)
    refused(load, split, f"{SHARD}: a FIFO", "allowed: a regular file")
    original.unlink()
    original.write_bytes(kept)
    manifest = split / MANIFEST_NAME
    manifest.unlink()
    os.mkfifo(manifest)
    refused(load, split, f"{MANIFEST_NAME}: a FIFO (named pipe)", "allowed: a regular file")
    manifest.unlink()
    manifest.mkdir()
    refused(load, split, f"{MANIFEST_NAME}: a directory", "allowed: a regular file")


@pytest.mark.fault(
    category="data",
    fault="a gzip bomb: a shard of 16 KB that inflates to 16 MB, listed consistently in its manifest (bytes and "
    "sha256 recomputed); synthetic: over what the manifest's graphs can hold; natural: over the memory budget "
    "(NAR_MEMORY_LIMIT set low)",
    expected="refused as one line naming the shard, the bound and where it comes from; decompression stops at "
    "the bound (peak allocation < 2 MB, not 16 MB)",
)
def test_gzip_bomb_stops_at_its_bound(store, request, monkeypatch):
    split, load = store
    natural = "natural" in request.node.callspec.id
    if natural:  # its bound is the memory budget: a third of the limit for the whole split (a few KB here)
        monkeypatch.setenv("NAR_MEMORY_LIMIT", "1536K")
        load(split)  # the real split fits
    bomb = gzip.compress(b"\0" * (16 << 20), compresslevel=9, mtime=0)
    assert len(bomb) < 20_000
    relist(split, SHARD, bomb)
    tracemalloc.start()
    try:
        message = refused(load, split, f"{SHARD}: decompresses to more than", "allowed: at most")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 << 20, peak
    if natural:
        assert "split's share of memory" in message and "NAR_MEMORY_LIMIT=1536K" in message, message
    else:
        assert "graphs of at most 7 nodes (its manifest's sizes)" in message, message


@pytest.mark.fault(
    category="data",
    fault="a manifest of 17 MB (over MAX_MANIFEST_BYTES, 16 MB), and one nested 100,000 lists deep",
    expected="refused as one line naming the manifest and the limit (the big one is not read: its size decides)",
    inputs=2,
)
def test_oversized_or_deeply_nested_manifest_is_refused(store):
    split, load = store
    manifest = split / MANIFEST_NAME
    with open(manifest, "wb") as f:
        f.truncate(MAX_MANIFEST_BYTES + 2**20)  # sparse: costs no disk
    refused(load, split, f"{MANIFEST_NAME}: 17.0 MiB", "allowed: a manifest of at most 16.0 MiB")
    manifest.write_text("[" * 100_000 + "]" * 100_000)
    refused(load, split, MANIFEST_NAME, "nested")


@pytest.mark.fault(
    category="data",
    fault="`nar pretrain` on a workspace whose val manifest is a FIFO, then a symlink to /dev/zero",
    expected="exit 2 within seconds, one line naming the manifest; nothing written (no checkpoint, no MLflow "
    "store, no model)",
    inputs=2,
    lossless=True,
)
def test_pretrain_refuses_a_fifo_manifest(tmp_path):
    write_params(tmp_path, TINY)
    proc = nar(["generate", "--algorithm", "bellman_ford", "--no-progress"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    manifest = tmp_path / "data/synthetic/bellman_ford/val" / MANIFEST_NAME
    manifest.unlink()
    os.mkfifo(manifest)
    before = files(tmp_path)
    message = one_line_error(nar(["pretrain", "--no-progress"], tmp_path, timeout=90), "pretrain")
    assert str(manifest.relative_to(tmp_path)) in message and "a FIFO" in message, message
    manifest.unlink()
    manifest.symlink_to("/dev/zero")
    message = one_line_error(nar(["pretrain", "--no-progress"], tmp_path, timeout=90), "pretrain")
    assert "a character device (a symlink to /dev/zero)" in message, message
    assert files(tmp_path) == before


@pytest.mark.fault(
    category="data",
    fault="`generate_split` into a directory whose manifest.json and manifest.partial.json are FIFOs (what a "
    "rerun reads to find reusable shards)",
    expected="not waited on: treated as nothing to reuse, the split is generated and replaces them; it loads",
    inputs=2,
)
def test_generate_does_not_wait_on_a_fifo_manifest(tmp_path):
    from nar.data.generate import generate_split
    from nar.data.store import PARTIAL_MANIFEST_NAME

    out = tmp_path / "train"
    out.mkdir()
    os.mkfifo(out / MANIFEST_NAME)
    os.mkfifo(out / PARTIAL_MANIFEST_NAME)
    with deadline(30):
        generate_split("bfs", 12, (4,), seed=1, out_dir=out, shard_size=5, progress=False)
    assert len(load_dataset(out)) == 12
    assert not (out / PARTIAL_MANIFEST_NAME).exists()
