"""The synthetic format of the sharded store (:mod:`nar.data.store`): splits of algorithm trajectories.

A split directory (e.g. ``data/synthetic/bellman_ford/train/``) holds ``manifest.json`` and
``shard-00000.safetensors.gz`` ... as every split of the store does.

Shard
    For its G graphs in order:

    * ``meta/num_nodes`` (G,) int32 and ``meta/length`` (G,) int32 (hint steps T);
    * per spec field, ``<stage>/<name>`` (e.g. ``input/A``, ``hint/d``, ``output/pi``): one
      flat 1-D array, the concatenation over the shard's graphs of each graph's value
      flattened in C order. Graph g contributes ``prod(field.shape(n_g))`` values, times
      ``T_g`` for hints, so offsets follow from ``num_nodes`` and ``length``.

    On disk scalars are float32, mask / mask_one / categorical uint8 and pointers int32.
    The samplers draw inputs that float32 holds exactly, so only computed scalar hints and
    outputs (e.g. distances) are rounded. The safetensors header metadata repeats the
    format, algorithm, spec version and graph count.

Manifest (``manifest.json``)
    ``format``/``format_version``, ``generator_version`` (``nar.__version__``), the
    algorithm's name, spec version, graph kind and fields (so a split can be read without
    the code that wrote it), ``split``, ``seed``, the sampler config, ``count``, the size
    list and the realised ``sizes_histogram``, ``shard_size``, one entry per shard (file
    name, number of graphs, byte size, sha256 of the file) and ``total_bytes``.
    No timestamps or paths: the same seed gives byte-identical files.

Reading
    ``load_dataset(path)`` checks everything before returning: the manifest exists and is
    well formed; each shard exists, has the manifest's size and sha256, decompresses and
    parses; its tensors are exactly the spec's fields with the on-disk dtypes, their lengths
    agree with ``num_nodes``/``length``, the graph counts and size histogram agree with the
    manifest, and every value is in its type's domain (finite scalars, 0/1 masks, exactly
    one 1 per mask_one, one-hot categoricals, pointers to existing nodes), vectorised over
    the flat arrays. Any failure raises :class:`DatasetError` naming the file and the fault.
    If the algorithm is registered and its current spec differs from the manifest's (a
    changed version or fields), the split is refused as stale. ``load_dataset(path,
    algorithm=..., split=...)`` also refuses a manifest that names another algorithm or split
    than the directory is for (a split copied to the wrong place would be trained or scored
    as the wrong data), before any shard is read.

    Files are read through the store's capped readers; a shard is decompressed within what its
    graphs can hold at the manifest's largest size (:func:`max_graph_bytes`).

    Loaded trajectories hold scalars as float32 (exactly what is stored), pointers as int64
    node indices and the rest as uint8; every one passes ``validate_trajectory``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from nar.algorithms.spec import AlgorithmSpec, Field, GraphKind, Location, Stage, Trajectory, Type
from nar.data.store import (
    HEADER_SLACK,
    MANIFEST_NAME,
    Column,
    DatasetError,
    Shard,
    ShardedSplit,
    ShardInfo,
    SplitManifest,
    load_shards,
    pack_arrays,
    read_split_manifest,
    write_shard_bytes,
)
from nar.data.store import check_arrays as check_layout

FORMAT = "nar-trajectories"
FORMAT_VERSION = 1

DISK_DTYPES: dict[Type, np.dtype] = {
    Type.SCALAR: np.dtype(np.float32),
    Type.MASK: np.dtype(np.uint8),
    Type.MASK_ONE: np.dtype(np.uint8),
    Type.CATEGORICAL: np.dtype(np.uint8),
    Type.POINTER: np.dtype(np.int32),
}
LOADED_DTYPES: dict[Type, np.dtype] = {**DISK_DTYPES, Type.POINTER: np.dtype(np.int64)}
_GROUP = {Stage.INPUT: "inputs", Stage.HINT: "hints", Stage.OUTPUT: "outputs"}


def tensor_key(f: Field) -> str:
    return f"{f.stage}/{f.name}"


# --------------------------------------------------------------------------- spec <-> JSON


def spec_to_dict(spec: AlgorithmSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "version": spec.version,
        "graph": {
            "weighted": spec.graph.weighted,
            "directed": spec.graph.directed,
            "acyclic": spec.graph.acyclic,
            "needs_source": spec.graph.needs_source,
        },
        "fields": [
            {
                "name": f.name,
                "stage": str(f.stage),
                "location": str(f.location),
                "type": str(f.type),
                **({"num_categories": f.num_categories} if f.num_categories is not None else {}),
            }
            for f in spec.fields
        ],
        "description": spec.description,
    }


def spec_from_dict(d: dict[str, Any]) -> AlgorithmSpec:
    return AlgorithmSpec(
        name=d["name"],
        version=int(d["version"]),
        graph=GraphKind(**d["graph"]),
        fields=tuple(
            Field(
                name=f["name"],
                stage=Stage(f["stage"]),
                location=Location(f["location"]),
                type=Type(f["type"]),
                num_categories=f.get("num_categories"),
            )
            for f in d["fields"]
        ),
        description=str(d.get("description", "")),
    )


def _same_spec(a: AlgorithmSpec, b: AlgorithmSpec) -> bool:
    return a.version == b.version and a.fields == b.fields and a.graph == b.graph


# --------------------------------------------------------------------------- layout and manifest


@dataclass(frozen=True)
class TrajectoryLayout:
    """The store layout of an algorithm's trajectories: one tensor per spec field, counted by the graph's
    node count n and hint steps T."""

    spec: AlgorithmSpec
    counts: ClassVar[dict[str, int]] = {"num_nodes": 1, "length": 1}

    @property
    def owner(self) -> str:
        return f"the spec of {self.spec.name!r}"

    def keys(self) -> list[str]:
        return [tensor_key(f) for f in self.spec.fields]

    def columns(self, counts: dict[str, np.ndarray]) -> list[Column]:
        return [
            Column(
                tensor_key(f),
                DISK_DTYPES[f.type],
                LOADED_DTYPES[f.type],
                _field_sizes(f, counts["num_nodes"], counts["length"]),
                index=f.type == Type.POINTER,
            )
            for f in self.spec.fields
        ]

    def check_values(self, arrays: dict[str, np.ndarray], counts: dict[str, np.ndarray], where: str) -> None:
        """0/1 masks, exactly one 1 per mask_one, one-hot categoricals (scalars and pointers: the store's)."""
        num_nodes, length = counts["num_nodes"], counts["length"]
        for f in self.spec.fields:
            key = tensor_key(f)
            a = arrays[key]
            if not a.size or f.type in (Type.SCALAR, Type.POINTER):
                continue
            what = f"{where}: {key} ({f.location} {f.type})"
            if a.max() > 1:
                raise DatasetError(f"{what}: values must be 0 or 1")
            if f.type == Type.CATEGORICAL:
                if not (a.reshape(-1, f.num_categories).sum(axis=1, dtype=np.int64) == 1).all():
                    raise DatasetError(f"{what}: must be one-hot over its {f.num_categories} categories")
            elif f.type == Type.MASK_ONE:
                # One segment of n_g values per graph (per graph and step for hints).
                reps = length if f.stage == Stage.HINT else np.ones_like(length)
                seg = np.repeat(num_nodes, reps)
                starts = np.concatenate([[0], np.cumsum(seg)[:-1]])
                if not (np.add.reduceat(a, starts, dtype=np.int64) == 1).all():
                    raise DatasetError(f"{what}: must have exactly one 1 over the nodes")


def _header(spec: AlgorithmSpec, num_graphs: int) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "algorithm": spec.name,
        "spec_version": spec.version,
        "num_graphs": num_graphs,
    }


@dataclass(frozen=True, kw_only=True)
class Manifest(SplitManifest):
    """What a split of trajectories holds and how it was made; ``manifest.json`` is its JSON form."""

    FORMAT: ClassVar[str] = FORMAT
    FORMAT_VERSION: ClassVar[int] = FORMAT_VERSION
    REBUILD: ClassVar[str] = "regenerate the split"
    MISSING: ClassVar[str] = "not a dataset split, or its generation did not finish"

    spec: AlgorithmSpec
    sampler: dict[str, Any]

    @property
    def algorithm(self) -> str:
        return self.spec.name

    @property
    def layout(self) -> TrajectoryLayout:
        return TrajectoryLayout(self.spec)

    def plan(self) -> dict[str, Any]:
        """Everything that determines the shards' contents (the manifest without its shards)."""
        d = self.to_dict()
        for key in ("shards", "total_graphs", "total_bytes"):
            d.pop(key)
        return d

    def _about(self) -> dict[str, Any]:
        return {
            "algorithm": self.spec.name,
            "spec_version": self.spec.version,
            "spec": spec_to_dict(self.spec),
            "split": self.split,
            "seed": self.seed,
            "sampler": dict(self.sampler),
        }

    @classmethod
    def _about_from(cls, d: dict[str, Any]) -> dict[str, Any]:
        return {"spec": spec_from_dict(d["spec"]), "sampler": dict(d["sampler"])}

    def _check(self, d: dict[str, Any], where: str) -> None:
        if d.get("algorithm") != self.spec.name or d.get("spec_version") != self.spec.version:
            raise DatasetError(
                f"{where}: algorithm {d.get('algorithm')!r} version {d.get('spec_version')!r} disagrees with "
                f"its spec ({self.spec.name!r} version {self.spec.version})"
            )
        if not set(self.sizes_histogram) <= set(self.sizes):
            raise DatasetError(f"{where}: sizes_histogram {self.sizes_histogram} names sizes not in {list(self.sizes)}")

    def shard_header(self, num_graphs: int) -> dict[str, Any]:
        return _header(self.spec, num_graphs)

    def shard_bound(self, info: ShardInfo) -> tuple[int | None, str]:
        n = max(self.sizes, default=0)
        derived = info.num_graphs * max_graph_bytes(self.spec, n) + HEADER_SLACK
        return derived, f"what {info.num_graphs} graphs of at most {n} nodes (its manifest's sizes) can hold"


# --------------------------------------------------------------------------- shard encoding


def _field_sizes(f: Field, num_nodes: np.ndarray, length: np.ndarray) -> np.ndarray:
    """(G,) int64: the number of flat values graph g contributes to field ``f``."""
    per_graph = {Location.NODE: num_nodes, Location.EDGE: num_nodes * num_nodes}.get(
        f.location, np.ones_like(num_nodes)
    )
    if f.type == Type.CATEGORICAL:
        assert f.num_categories is not None
        per_graph = per_graph * f.num_categories
    if f.stage == Stage.HINT:
        per_graph = per_graph * length
    return per_graph.astype(np.int64)


def encode_shard(spec: AlgorithmSpec, trajectories: Sequence[Trajectory], first_graph: int = 0) -> bytes:
    """The gzip'd safetensors bytes of one shard (narrowed to the on-disk dtypes, then checked)."""
    num_nodes = np.array([t.num_nodes for t in trajectories], dtype=np.int64)
    length = np.array([t.length for t in trajectories], dtype=np.int64)
    arrays: dict[str, np.ndarray] = {
        "meta/num_nodes": num_nodes.astype(np.int32),
        "meta/length": length.astype(np.int32),
    }
    for f in spec.fields:
        group = _GROUP[f.stage]
        parts = [getattr(t, group)[f.name].ravel() for t in trajectories]
        flat = np.concatenate(parts) if parts else np.zeros(0)
        arrays[tensor_key(f)] = np.ascontiguousarray(flat.astype(DISK_DTYPES[f.type], copy=False))
    # Every value of every shard is checked before it is written (vectorised, cheap); this
    # also catches values that do not survive the narrowing (e.g. a float32 overflow).
    last = first_graph + len(trajectories) - 1
    check_arrays(spec, arrays, len(trajectories), where=f"{spec.name}, graphs {first_graph}..{last}")
    return pack_arrays(arrays, _header(spec, len(trajectories)))


def write_shard(path: Path, spec: AlgorithmSpec, trajectories: Sequence[Trajectory], first_graph: int = 0) -> ShardInfo:
    return write_shard_bytes(path, encode_shard(spec, trajectories, first_graph), len(trajectories))


def check_arrays(spec: AlgorithmSpec, arrays: dict[str, np.ndarray], num_graphs: int, where: str) -> None:
    """Check a shard's flat arrays: names, dtypes, lengths and every value's domain (finite scalars, 0/1
    masks, exactly one 1 per mask_one, one-hot categoricals, pointers to existing nodes).

    Raises ``DatasetError`` starting with ``where``.
    """
    check_layout(TrajectoryLayout(spec), arrays, num_graphs, where)


# --------------------------------------------------------------------------- reading


@dataclass(eq=False, repr=False)
class Dataset(ShardedSplit[Trajectory]):
    """A verified split in memory: a sequence of :class:`Trajectory` in generation order.

    Trajectories are built on access as views of the shards' flat arrays (cheap);
    ``trajectories()`` returns them all as a list.
    """

    manifest: Manifest

    def __repr__(self) -> str:
        m = self.manifest
        return f"Dataset({str(self.path)!r}, algorithm={m.algorithm!r}, split={m.split!r}, graphs={len(self)})"

    @property
    def spec(self) -> AlgorithmSpec:
        return self.manifest.spec

    @property
    def lengths(self) -> np.ndarray:
        """(len,) int64: hint steps of every graph."""
        return self._concat("length")

    def trajectories(self) -> list[Trajectory]:
        return list(self)

    def values(self, f: str | Field) -> tuple[np.ndarray, np.ndarray]:
        """(flat values of field ``f`` over the whole split, (len + 1,) offsets of each graph)."""
        fld = self.spec.field(f) if isinstance(f, str) else f
        key = tensor_key(fld)
        flats = [s.arrays[key] for s in self._shards]
        sizes = [np.diff(s.offsets[key]) for s in self._shards]
        flat = np.concatenate(flats) if flats else np.zeros(0, LOADED_DTYPES[fld.type])
        offsets = np.concatenate([[0], np.cumsum(np.concatenate(sizes))]) if sizes else np.zeros(1, np.int64)
        return flat, offsets.astype(np.int64)

    def _build(self, s: Shard, j: int) -> Trajectory:
        n, t = int(s.counts["num_nodes"][j]), int(s.counts["length"][j])
        groups: dict[str, dict[str, np.ndarray]] = {"inputs": {}, "hints": {}, "outputs": {}}
        for f in self.spec.fields:
            shape = f.shape(n)
            if f.stage == Stage.HINT:
                shape = (t, *shape)
            groups[_GROUP[f.stage]][f.name] = self._view(s, j, tensor_key(f)).reshape(shape)
        return Trajectory(**groups)


def max_steps(n: int) -> int:
    """An upper bound of the hint steps T of any registered algorithm on n nodes: DFS and topological sort
    take exactly 2n + 1 (one discovery or finish per step), the others at most n + 1."""
    return 2 * n + 1


def max_graph_bytes(spec: AlgorithmSpec, n: int, dtypes: dict[Type, np.dtype] = DISK_DTYPES) -> int:
    """An upper bound of the bytes one graph of n nodes takes in ``dtypes`` (on disk by default): every
    field's values, hints for :func:`max_steps` steps, and its two meta values."""
    total = 2 * np.dtype(np.int32).itemsize
    for f in spec.fields:
        values = int(np.prod(f.shape(n), dtype=np.int64)) * (max_steps(n) if f.stage == Stage.HINT else 1)
        total += values * dtypes[f.type].itemsize
    return total


def load_dataset(path: str | Path, *, algorithm: str | None = None, split: str | None = None) -> Dataset:
    """Read and verify a split directory (see the module docstring for what is checked).

    algorithm, split: what the directory is for (``<root>/<algorithm>/<split>``); its manifest must name them.
    """
    path, manifest = read_split_manifest(path, Manifest, "a split")
    check_identity(manifest, path, algorithm, split)
    _check_registered_spec(manifest.spec, path / MANIFEST_NAME)
    shards = load_shards(path, manifest)
    histogram: dict[int, int] = {}
    for shard in shards:
        for n, c in zip(*np.unique(shard.counts["num_nodes"], return_counts=True), strict=True):
            histogram[int(n)] = histogram.get(int(n), 0) + int(c)
    if histogram != {k: v for k, v in manifest.sizes_histogram.items() if v}:
        raise DatasetError(
            f"{path / MANIFEST_NAME}: sizes_histogram {manifest.sizes_histogram} disagrees with the shards' "
            f"node counts {dict(sorted(histogram.items()))}"
        )
    return Dataset(path=path, manifest=manifest, _shards=shards)


def check_identity(manifest: Manifest, path: Path, algorithm: str | None, split: str | None) -> None:
    """Refuse a split whose manifest names another algorithm or split than the directory it was read from."""
    wrong = []
    if algorithm is not None and manifest.algorithm != algorithm:
        wrong.append(f"algorithm {manifest.algorithm!r} (not {algorithm!r})")
    if split is not None and manifest.split != split:
        wrong.append(f"split {manifest.split!r} (not {split!r})")
    if wrong:
        regenerate = f"nar generate --algorithm {algorithm or manifest.algorithm}"
        if split is not None:
            regenerate += f" --split {split}"
        raise DatasetError(
            f"{path / MANIFEST_NAME}: this split is for {' and '.join(wrong)}: copied or moved here from "
            f"another directory? Regenerate it ({regenerate})"
        )


def _check_registered_spec(spec: AlgorithmSpec, where: Path) -> None:
    from nar.algorithms import ALGORITHMS

    algo = ALGORITHMS.get(spec.name)
    if algo is not None and not _same_spec(algo.spec, spec):
        raise DatasetError(
            f"{where}: written for {spec.name!r} spec version {spec.version}, but the code's spec "
            f"(version {algo.spec.version}) has different fields or graph kind; regenerate the split"
        )
