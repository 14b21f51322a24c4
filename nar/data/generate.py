"""Generating a split: sample graphs, run the algorithm, check, write shards and a manifest.

Randomness (what makes "same seed => byte-identical files" hold, independently of the shard
size, of which shards a resumed run regenerates, and of the machine's core count):

* graph sizes: ``count`` draws from ``sizes`` with ``default_rng(SeedSequence([seed, 0]))``;
* graphs: the graphs of size n are numbered j = 0, 1, ... in split order and cut into chunks
  of ``chunk_size(n)``; chunk c is drawn by one :func:`~nar.data.samplers.sample_graphs`
  call with ``default_rng(SeedSequence([seed, 1, n, c]))`` and run through the algorithm as
  one batch. Graph i of the split is graph j mod chunk_size(n) of its chunk.

So two algorithms with the same graph kind and seed see the same graphs; give every split
its own seed (``nar.cli.split_seed`` does).

Checking: every value of every shard goes through the vectorised domain check of
:func:`nar.data.dataset.check_arrays` (after narrowing to the on-disk dtypes), and the
first trajectory of every chunk through the full ``validate_trajectory``. Validating every
trajectory with ``validate_trajectory`` costs about 50 µs each, more than sampling and
running Bellman-Ford at n = 16 together, and finds nothing the flat check does not.

Memory: :func:`estimate_memory` bounds what a split needs at once (the size plan, one algorithm batch,
one shard's trajectories and their encoding) from the largest size and the spec's fields;
:func:`generate_split` refuses a split above :func:`nar.limits.memory_limit` before it creates
anything, with the estimate and the limit in one line.

Writing: shards and the manifest are written to temporary names and moved into place with
``os.replace``; ``manifest.json`` comes last and is removed first, so a directory that has
it is complete. After each shard, ``manifest.partial.json`` records the shards done so
far; a rerun with the same plan (algorithm and spec version, seed, count, sizes, sampler,
shard size, generator version) reuses every shard whose sha256 still matches, so a killed
run resumes where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

import nar
from nar.algorithms import get_algorithm, validate_trajectory
from nar.algorithms.base import Algorithm, BatchTrace
from nar.algorithms.spec import DTYPES, Trajectory
from nar.data.dataset import Manifest, max_graph_bytes, write_shard
from nar.data.samplers import GraphSamplerConfig, sample_graphs
from nar.data.store import (
    MANIFEST_NAME,
    PARTIAL_MANIFEST_NAME,
    DatasetError,
    ShardInfo,
    atomic_write,
    clean_split_dir,
    read_manifest_json,
    sha256_file,
    shard_name,
)
from nar.limits import check_memory
from nar.progress import progress_bar

DEFAULT_SHARD_SIZE = 2000


def chunk_size(n: int) -> int:
    """Graphs per sampling/algorithm batch at size n: about 2^17 adjacency entries.

    Part of the random scheme (changing it changes the data). 512 graphs at n = 16, 32 at
    n = 64: big enough to amortise numpy's per-call overhead, small enough that a
    (B, T, n, n) hint of Floyd-Warshall stays in the tens of MB.
    """
    return int(min(1024, max(1, 2**17 // (n * n))))


class _Plan:
    """Which size every graph of the split has, and where it sits in its size's chunks."""

    def __init__(self, count: int, sizes: Sequence[int], seed: int) -> None:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
        self.seed = seed
        self.sizes = rng.choice(np.asarray(sizes, dtype=np.int64), size=count)  # (count,)
        self.rank = np.zeros(count, dtype=np.int64)  # index among the graphs of the same size
        self.total: dict[int, int] = {}
        for n in np.unique(self.sizes):
            members = np.flatnonzero(self.sizes == n)
            self.rank[members] = np.arange(len(members))
            self.total[int(n)] = len(members)


class _Runner:
    """Samples and runs chunks on demand, keeping the last chunk of each size."""

    def __init__(self, algo: Algorithm, sampler: GraphSamplerConfig, plan: _Plan) -> None:
        self.algo, self.sampler, self.plan = algo, sampler, plan
        self._cache: dict[int, tuple[int, BatchTrace]] = {}

    def chunk(self, n: int, c: int) -> BatchTrace:
        hit = self._cache.get(n)
        if hit is not None and hit[0] == c:
            return hit[1]
        cs = chunk_size(n)
        batch = min(cs, self.plan.total[n] - c * cs)
        rng = np.random.default_rng(np.random.SeedSequence([self.plan.seed, 1, n, c]))
        trace = self.algo.run(sample_graphs(self.algo.spec.graph, self.sampler, n, batch, rng))
        validate_trajectory(self.algo.spec, trace.trajectory(0))
        self._cache[n] = (c, trace)
        return trace

    def trajectories(self, indices: Iterable[int]) -> list[Trajectory]:
        out = []
        sizes, rank = self.plan.sizes, self.plan.rank
        for i in indices:
            n = int(sizes[i])
            c, j = divmod(int(rank[i]), chunk_size(n))
            out.append(self.chunk(n, c).trajectory(j))
        return out


def _check_args(count: int, sizes: Sequence[int], seed: int, shard_size: int) -> None:
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if not sizes or any(int(n) < 1 for n in sizes):
        raise ValueError(f"sizes must be a non-empty list of node counts >= 1, got {list(sizes)}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")


# _Plan: sizes and rank (int64 each), plus the choice and per-size index temporaries while it is built
PLAN_BYTES_PER_GRAPH = 40


def estimate_memory(algorithm: str, count: int, sizes: Sequence[int], shard_size: int) -> int:
    """An upper bound of the bytes generating this split holds at once, as if every graph had the largest
    size and the most hint steps any algorithm takes (``nar.data.dataset.max_steps``)."""
    spec = get_algorithm(algorithm).spec
    n = max(int(s) for s in sizes)
    in_memory = max_graph_bytes(spec, n, DTYPES)  # float64 scalars, int64 pointers while the algorithm runs
    on_disk = max_graph_bytes(spec, n)
    batch = min(chunk_size(n), count)
    per_shard = min(shard_size, count)
    graphs = batch * 17 * n * n  # the sampled batch: weights (float64), adjacency (bool), the adj field
    # A shard's trajectories are views that keep their batches alive (up to one batch more than the shard),
    # while the next batch runs with its hints twice (the list of steps and their stack); then the shard's
    # on-disk arrays, the safetensors bytes and their gzip.
    trajectories = (per_shard + 2 * batch) * in_memory + graphs
    return PLAN_BYTES_PER_GRAPH * count + trajectories + 3 * per_shard * on_disk


def check_split_memory(algorithm: str, count: int, sizes: Sequence[int], shard_size: int, what: str) -> None:
    """Refuse (ResourceError, one line) a split whose :func:`estimate_memory` exceeds the memory limit."""
    n = max(int(s) for s in sizes)
    estimate = estimate_memory(algorithm, count, sizes, shard_size)
    check_memory(estimate, f"{what}: {count} graph{'s' * (count != 1)} of up to {n} nodes (shards of {shard_size})")


def sample_trajectories(
    algorithm: str,
    count: int,
    sizes: Sequence[int],
    seed: int,
    sampler: GraphSamplerConfig | None = None,
) -> list[Trajectory]:
    """The trajectories :func:`generate_split` would write for these arguments, in memory
    (in-memory dtypes: no float32 narrowing)."""
    _check_args(count, sizes, seed, 1)
    plan = _Plan(count, sizes, seed)
    return _Runner(get_algorithm(algorithm), sampler or GraphSamplerConfig(), plan).trajectories(range(count))


def generate_split(
    algorithm: str,
    count: int,
    sizes: Sequence[int],
    seed: int,
    out_dir: str | Path,
    sampler: GraphSamplerConfig | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    progress: bool = True,
    split: str | None = None,
) -> Manifest:
    """Generate ``count`` trajectories of ``algorithm`` into ``out_dir`` (see the module docstring).

    ``split`` names the split in the manifest (default: the directory's name). Returns the
    manifest written to ``out_dir/manifest.json``.
    """
    _check_args(count, sizes, seed, shard_size)
    sampler = sampler or GraphSamplerConfig()
    algo = get_algorithm(algorithm)
    sampler.resolve(algo.spec.graph)  # refuse impossible overrides before touching the disk
    out = Path(out_dir)
    check_split_memory(algorithm, count, sizes, shard_size, f"generate {algorithm}/{split or out.name}")
    out.mkdir(parents=True, exist_ok=True)
    plan = _Plan(count, sizes, seed)
    skeleton = Manifest(
        spec=algo.spec,
        split=split if split is not None else out.resolve().name,
        seed=int(seed),
        sampler=sampler.to_dict(),
        count=int(count),
        sizes=tuple(int(n) for n in sizes),
        sizes_histogram={n: plan.total.get(n, 0) for n in sorted({int(n) for n in sizes})},
        shard_size=int(shard_size),
        generator_version=nar.__version__,
    )
    num_shards = -(-count // shard_size)
    reusable = _reusable_shards(out, skeleton)
    clean_split_dir(out, num_shards)

    runner = _Runner(algo, sampler, plan)
    done: list[ShardInfo] = []
    # a bar in a terminal, a plain line every 30 s in a log (no carriage-return frames)
    bar = progress_bar(count, desc=f"{algorithm}/{skeleton.split}", unit="graph", disable=not progress)
    try:
        for k in range(num_shards):
            lo, hi = k * shard_size, min(count, (k + 1) * shard_size)
            path = out / shard_name(k)
            info = reusable.get(path.name)
            if info is None or info.num_graphs != hi - lo or not _matches(path, info):
                info = write_shard(path, algo.spec, runner.trajectories(range(lo, hi)), first_graph=lo)
            done.append(info)
            atomic_write(out / PARTIAL_MANIFEST_NAME, _replace_shards(skeleton, done).to_json())
            bar.update(hi - lo)
    finally:
        bar.close()
    manifest = _replace_shards(skeleton, done)
    atomic_write(out / MANIFEST_NAME, manifest.to_json())
    (out / PARTIAL_MANIFEST_NAME).unlink(missing_ok=True)
    return manifest


def _replace_shards(m: Manifest, shards: list[ShardInfo]) -> Manifest:
    return replace(m, shards=tuple(shards))


def _reusable_shards(out: Path, skeleton: Manifest) -> dict[str, ShardInfo]:
    """Shards recorded by a finished or interrupted earlier run with the same plan."""
    for name in (MANIFEST_NAME, PARTIAL_MANIFEST_NAME):
        path = out / name
        if not path.exists():
            continue
        try:
            d = read_manifest_json(path, "")  # a FIFO or a huge file left there is refused, not waited on
            # A partial manifest's counts do not add up yet: compare plans, read shards directly.
            previous_plan = {k: v for k, v in d.items() if k not in ("shards", "total_graphs", "total_bytes")}
            if previous_plan != json.loads(json.dumps(skeleton.plan())):
                continue
            return {s["file"]: ShardInfo.from_dict(s) for s in d["shards"]}
        except (OSError, ValueError, KeyError, TypeError, DatasetError):
            continue
    return {}


def _matches(path: Path, info: ShardInfo) -> bool:
    try:
        return path.stat().st_size == info.bytes and sha256_file(path) == info.sha256
    except OSError:
        return False
