"""The on-disk format of a split of algorithm trajectories, and its verified reader.

A split directory (e.g. ``data/synthetic/bellman_ford/train/``) holds::

    manifest.json                 written last: its presence means the split is complete
    shard-00000.safetensors.gz    graphs 0 .. shard_size - 1
    shard-00001.safetensors.gz    ...

Shard
    A gzip'd (``mtime=0``, no file name, so the bytes are deterministic) safetensors file
    (``safetensors.numpy``: plain arrays and a JSON header, no pickle). It holds, for its G
    graphs in order:

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

    Files are read through :mod:`nar.limits`: the manifest and every shard must be regular files
    (not a FIFO, a device or a link to one), the manifest at most ``MAX_MANIFEST_BYTES``, a shard
    exactly its manifest's byte count; a shard is decompressed with a bound (what its graphs can
    hold at the manifest's largest size, :func:`max_graph_bytes`) and the whole split within a
    third of the memory limit, so a gzip bomb is refused instead of filling memory.

    Loaded trajectories hold scalars as float32 (exactly what is stored), pointers as int64
    node indices and the rest as uint8; every one passes ``validate_trajectory``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from nar.algorithms.spec import AlgorithmSpec, Field, GraphKind, Location, Stage, Trajectory, Type
from nar.errors import NarError
from nar.limits import format_bytes, gunzip_capped, memory_limit, read_capped

FORMAT = "nar-trajectories"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
PARTIAL_MANIFEST_NAME = "manifest.partial.json"  # progress of an unfinished generation
SHARD_TEMPLATE = "shard-{:05d}.safetensors.gz"
# Level 1: 3.4x faster than the default 6 for 10% more bytes (random float32 weights barely
# compress); at 6 compression alone took longer than sampling and running Bellman-Ford.
GZIP_LEVEL = 1

DISK_DTYPES: dict[Type, np.dtype] = {
    Type.SCALAR: np.dtype(np.float32),
    Type.MASK: np.dtype(np.uint8),
    Type.MASK_ONE: np.dtype(np.uint8),
    Type.CATEGORICAL: np.dtype(np.uint8),
    Type.POINTER: np.dtype(np.int32),
}
LOADED_DTYPES: dict[Type, np.dtype] = {**DISK_DTYPES, Type.POINTER: np.dtype(np.int64)}
_META_KEYS = ("meta/num_nodes", "meta/length")
MAX_MANIFEST_BYTES = 16 * 2**20  # about 100,000 shard entries; a real manifest is a few KB
# The safetensors header (JSON: names, dtypes, shapes, offsets) and alignment padding of a shard, on top of its data.
HEADER_SLACK = 2**16
_GROUP = {Stage.INPUT: "inputs", Stage.HINT: "hints", Stage.OUTPUT: "outputs"}


class DatasetError(NarError):
    """A split on disk is missing, incomplete, corrupted or inconsistent."""


def shard_name(index: int) -> str:
    return SHARD_TEMPLATE.format(index)


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


# --------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class ShardInfo:
    file: str
    num_graphs: int
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "num_graphs": self.num_graphs, "bytes": self.bytes, "sha256": self.sha256}


@dataclass(frozen=True)
class Manifest:
    """What a split holds and how it was made; ``manifest.json`` is its JSON form."""

    spec: AlgorithmSpec
    split: str
    seed: int
    sampler: dict[str, Any]
    count: int
    sizes: tuple[int, ...]
    sizes_histogram: dict[int, int]
    shard_size: int
    shards: tuple[ShardInfo, ...] = ()
    generator_version: str = ""
    format_version: int = FORMAT_VERSION

    @property
    def algorithm(self) -> str:
        return self.spec.name

    @property
    def total_bytes(self) -> int:
        return sum(s.bytes for s in self.shards)

    def plan(self) -> dict[str, Any]:
        """Everything that determines the shards' contents (the manifest without its shards)."""
        d = self.to_dict()
        for key in ("shards", "total_graphs", "total_bytes"):
            d.pop(key)
        return d

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": self.format_version,
            "generator_version": self.generator_version,
            "algorithm": self.spec.name,
            "spec_version": self.spec.version,
            "spec": spec_to_dict(self.spec),
            "split": self.split,
            "seed": self.seed,
            "sampler": dict(self.sampler),
            "count": self.count,
            "sizes": list(self.sizes),
            "sizes_histogram": {str(k): v for k, v in sorted(self.sizes_histogram.items())},
            "shard_size": self.shard_size,
            "shards": [s.to_dict() for s in self.shards],
            "total_graphs": sum(s.num_graphs for s in self.shards),
            "total_bytes": self.total_bytes,
        }

    def to_json(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2) + "\n").encode()

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = MANIFEST_NAME) -> Manifest:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise DatasetError(f"{where}: not a {FORMAT} manifest (its 'format' is {_get(d, 'format')!r})")
        if d.get("format_version") != FORMAT_VERSION:
            raise DatasetError(
                f"{where}: format_version {d.get('format_version')!r}, this code reads {FORMAT_VERSION}; "
                "regenerate the split"
            )
        try:
            spec = spec_from_dict(d["spec"])
            shards = tuple(
                ShardInfo(
                    file=str(s["file"]), num_graphs=int(s["num_graphs"]), bytes=int(s["bytes"]), sha256=str(s["sha256"])
                )
                for s in d["shards"]
            )
            m = cls(
                spec=spec,
                split=str(d["split"]),
                seed=int(d["seed"]),
                sampler=dict(d["sampler"]),
                count=int(d["count"]),
                sizes=tuple(int(n) for n in d["sizes"]),
                sizes_histogram={int(k): int(v) for k, v in d["sizes_histogram"].items()},
                shard_size=int(d["shard_size"]),
                shards=shards,
                generator_version=str(d["generator_version"]),
                format_version=int(d["format_version"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DatasetError(f"{where}: malformed manifest ({type(exc).__name__}: {exc})") from None
        if d.get("algorithm") != spec.name or d.get("spec_version") != spec.version:
            raise DatasetError(
                f"{where}: algorithm {d.get('algorithm')!r} version {d.get('spec_version')!r} disagrees with "
                f"its spec ({spec.name!r} version {spec.version})"
            )
        for k, s in enumerate(shards):
            if s.file != shard_name(k):
                raise DatasetError(f"{where}: shard {k} is named {s.file!r}, expected {shard_name(k)!r}")
        total = sum(s.num_graphs for s in shards)
        if total != m.count or d.get("total_graphs") != total:
            raise DatasetError(
                f"{where}: count {m.count} and total_graphs {d.get('total_graphs')} disagree with the "
                f"shards' graph counts (sum {total})"
            )
        if sum(m.sizes_histogram.values()) != m.count or not set(m.sizes_histogram) <= set(m.sizes):
            raise DatasetError(
                f"{where}: sizes_histogram {m.sizes_histogram} does not add up to count {m.count} "
                f"over the sizes {list(m.sizes)}"
            )
        if d.get("total_bytes") != m.total_bytes:
            raise DatasetError(f"{where}: total_bytes {d.get('total_bytes')} != sum of shard bytes {m.total_bytes}")
        return m

    @classmethod
    def read(cls, path: Path) -> Manifest:
        d = read_manifest_json(path, "not a dataset split, or its generation did not finish")
        return cls.from_dict(d, where=str(path))


def read_manifest_json(path: Path, missing: str) -> Any:
    """The parsed JSON of a split's manifest (synthetic or natural): a regular file of at most
    MAX_MANIFEST_BYTES. ``missing`` says what a missing file means. Raises DatasetError naming the file."""
    try:
        text = read_capped(path, MAX_MANIFEST_BYTES, DatasetError, what="manifest")
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing ({missing})") from None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise DatasetError(f"{path}: not a manifest (JSON nested thousands of levels deep)") from None


def _get(d: Any, key: str) -> Any:
    return d.get(key) if isinstance(d, dict) else None


# --------------------------------------------------------------------------- atomic files


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and os.replace.

    A reader (or a resumed run) never sees a partial file under the final name.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None:  # a failed write or fsync names no file: name the one being written
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


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
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "algorithm": spec.name,
        "spec_version": spec.version,
        "num_graphs": len(trajectories),
    }
    return pack_arrays(arrays, header)


def pack_arrays(arrays: dict[str, np.ndarray], header: dict[str, Any]) -> bytes:
    """Deterministic gzip'd safetensors bytes of ``arrays``, with ``header`` as the ``nar`` metadata.

    The inverse of :func:`decode_shard`; shared by every shard format of the project
    (trajectories here, natural-task examples in ``nar.natural.store``).
    """
    # One metadata entry holding sorted JSON: safetensors keeps metadata in a hash map whose
    # order changes from run to run, which would break byte-identical output with several keys.
    raw = st_save(arrays, metadata={"nar": json.dumps(header, sort_keys=True)})
    return gzip.compress(raw, compresslevel=GZIP_LEVEL, mtime=0)


def write_shard(path: Path, spec: AlgorithmSpec, trajectories: Sequence[Trajectory], first_graph: int = 0) -> ShardInfo:
    data = encode_shard(spec, trajectories, first_graph)
    atomic_write(path, data)
    return ShardInfo(
        file=path.name, num_graphs=len(trajectories), bytes=len(data), sha256=hashlib.sha256(data).hexdigest()
    )


def check_arrays(spec: AlgorithmSpec, arrays: dict[str, np.ndarray], num_graphs: int, where: str) -> None:
    """Check a shard's flat arrays: names, dtypes, lengths and every value's domain.

    Raises ``DatasetError`` starting with ``where``.
    """
    expected = set(_META_KEYS) | {tensor_key(f) for f in spec.fields}
    if set(arrays) != expected:
        missing, extra = sorted(expected - set(arrays)), sorted(set(arrays) - expected)
        raise DatasetError(
            f"{where}: tensors disagree with the spec of {spec.name!r}: missing {missing}, extra {extra}"
        )
    for key in _META_KEYS:
        a = arrays[key]
        if a.dtype != np.int32 or a.shape != (num_graphs,):
            raise DatasetError(f"{where}: {key} is {a.dtype} {a.shape}, expected int32 ({num_graphs},)")
    num_nodes = arrays["meta/num_nodes"].astype(np.int64)
    length = arrays["meta/length"].astype(np.int64)
    if num_graphs and (num_nodes.min() < 1 or length.min() < 1):
        raise DatasetError(f"{where}: meta/num_nodes and meta/length must be >= 1")
    for f in spec.fields:
        key = tensor_key(f)
        a = arrays[key]
        if a.dtype != DISK_DTYPES[f.type] or a.ndim != 1:
            raise DatasetError(f"{where}: {key} is {a.dtype} with shape {a.shape}, expected flat {DISK_DTYPES[f.type]}")
        sizes = _field_sizes(f, num_nodes, length)
        if a.shape[0] != int(sizes.sum()):
            raise DatasetError(
                f"{where}: {key} holds {a.shape[0]} values, but num_nodes and length call for {int(sizes.sum())}"
            )
        if a.size:
            _check_domain(f, key, a, num_nodes, length, sizes, where)


def _check_domain(
    f: Field, key: str, a: np.ndarray, num_nodes: np.ndarray, length: np.ndarray, sizes: np.ndarray, where: str
) -> None:
    what = f"{where}: {key} ({f.location} {f.type})"
    if f.type == Type.SCALAR:
        if not np.isfinite(a).all():
            raise DatasetError(f"{what}: contains NaN or inf")
    elif f.type == Type.POINTER:
        bound = np.repeat(num_nodes, sizes)  # each value's graph size
        if a.min() < 0 or (a >= bound).any():
            raise DatasetError(f"{what}: a node index outside [0, num_nodes)")
    else:
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


def decode_shard(
    data: bytes, where: str, max_bytes: int | None = None, allowed: str = ""
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, the ``nar`` header metadata) of a shard's bytes; ``DatasetError`` if they do not parse or
    decompress to more than ``max_bytes`` (default: a third of the memory limit; ``allowed`` says why)."""
    if max_bytes is None:
        max_bytes, allowed = ReadBudget.start().cap(None, "")
    raw = gunzip_capped(data, max_bytes, where, allowed, DatasetError)
    try:
        arrays = st_load(raw)
        header_len = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + header_len])
        meta = json.loads((header.get("__metadata__") or {}).get("nar", "{}"))
    except (SafetensorError, ValueError, json.JSONDecodeError, AttributeError) as exc:
        raise DatasetError(f"{where}: not a valid safetensors file ({exc})") from None
    return arrays, meta if isinstance(meta, dict) else {}


# --------------------------------------------------------------------------- reading


@dataclass
class _Shard:
    """One shard's arrays (loaded dtypes) and per-field offsets of each graph."""

    arrays: dict[str, np.ndarray]
    offsets: dict[str, np.ndarray]  # (G + 1,) int64 per field
    num_nodes: np.ndarray  # (G,) int64
    length: np.ndarray  # (G,) int64


@dataclass(eq=False, repr=False)
class Dataset(Sequence[Trajectory]):
    """A verified split in memory: a sequence of :class:`Trajectory` in generation order.

    Trajectories are built on access as views of the shards' flat arrays (cheap);
    ``trajectories()`` returns them all as a list.
    """

    path: Path
    manifest: Manifest
    _shards: list[_Shard] = field(repr=False)

    def __post_init__(self) -> None:
        counts = [len(s.num_nodes) for s in self._shards]
        self._starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])

    def __repr__(self) -> str:
        m = self.manifest
        return f"Dataset({str(self.path)!r}, algorithm={m.algorithm!r}, split={m.split!r}, graphs={len(self)})"

    @property
    def spec(self) -> AlgorithmSpec:
        return self.manifest.spec

    @property
    def num_nodes(self) -> np.ndarray:
        """(len,) int64: node count of every graph."""
        return np.concatenate([s.num_nodes for s in self._shards]) if self._shards else np.zeros(0, np.int64)

    @property
    def lengths(self) -> np.ndarray:
        """(len,) int64: hint steps of every graph."""
        return np.concatenate([s.length for s in self._shards]) if self._shards else np.zeros(0, np.int64)

    def __len__(self) -> int:
        return int(self._starts[-1])

    @overload
    def __getitem__(self, i: int) -> Trajectory: ...

    @overload
    def __getitem__(self, i: slice) -> list[Trajectory]: ...

    def __getitem__(self, i: int | slice) -> Trajectory | list[Trajectory]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"graph {i} out of range for a split of {len(self)}")
        k = int(np.searchsorted(self._starts, i, side="right")) - 1
        return self._build(self._shards[k], i - int(self._starts[k]))

    def __iter__(self) -> Iterator[Trajectory]:
        for shard in self._shards:
            for j in range(len(shard.num_nodes)):
                yield self._build(shard, j)

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

    def _build(self, s: _Shard, j: int) -> Trajectory:
        n, t = int(s.num_nodes[j]), int(s.length[j])
        groups: dict[str, dict[str, np.ndarray]] = {"inputs": {}, "hints": {}, "outputs": {}}
        for f in self.spec.fields:
            key = tensor_key(f)
            off = s.offsets[key]
            shape = f.shape(n)
            if f.stage == Stage.HINT:
                shape = (t, *shape)
            groups[_GROUP[f.stage]][f.name] = s.arrays[key][off[j] : off[j + 1]].reshape(shape)
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


class ReadBudget:
    """The decompressed bytes a split may still take as it is read: a third of the memory limit (the raw
    bytes, the arrays parsed from them and their loaded copies live at once), shared by its shards."""

    FALLBACK = 64 * 2**30  # where the platform does not say how much memory there is

    def __init__(self, left: int, why: str) -> None:
        self.left, self.why = left, why

    @classmethod
    def start(cls) -> ReadBudget:
        limit, why = memory_limit()
        if limit is None:
            return cls(cls.FALLBACK, f"a fixed {format_bytes(cls.FALLBACK)} ({why})")
        return cls(limit // 3, f"a third of the memory limit of {format_bytes(limit)} ({why})")

    def cap(self, derived: int | None, derived_why: str) -> tuple[int, str]:
        """(the bound for the next shard, where it comes from): ``derived`` (from its manifest) or what is left."""
        if derived is not None and derived <= self.left:
            return derived, derived_why
        return max(self.left, 0), f"what is left of the split's share of memory, {self.why}"

    def spend(self, n: int) -> None:
        self.left -= n


def read_shard(
    file: Path, info: ShardInfo, budget: ReadBudget, derived: int | None = None, derived_why: str = ""
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, header metadata) of one shard of any split format, after its checks: a regular file of
    exactly the manifest's byte count and sha256, decompressed within ``derived`` bytes (what its manifest
    says it can hold, if the format knows) and what is left of ``budget``. DatasetError names the file."""
    max_bytes, why = budget.cap(derived, derived_why)
    # gzip adds a few bytes per 64 KB block at worst: a compressed shard far above the bound cannot fit it
    if info.bytes > max_bytes + max_bytes // 100 + HEADER_SLACK:
        raise DatasetError(
            f"{file}: its manifest lists {format_bytes(info.bytes)} of compressed data; allowed: a shard that "
            f"decompresses to at most {format_bytes(max_bytes)}: {why}"
        )
    try:
        data = read_capped(file, info.bytes, DatasetError, what="shard of the byte count its manifest lists")
    except FileNotFoundError:
        raise DatasetError(f"{file}: missing (listed in {MANIFEST_NAME})") from None
    if len(data) != info.bytes:
        raise DatasetError(f"{file}: {len(data)} bytes, the manifest says {info.bytes} (truncated or replaced)")
    digest = hashlib.sha256(data).hexdigest()
    if digest != info.sha256:
        raise DatasetError(
            f"{file}: sha256 {digest[:16]}... does not match the manifest's {info.sha256[:16]}... (corrupted or edited)"
        )
    arrays, meta = decode_shard(data, str(file), max_bytes, why)
    budget.spend(sum(a.nbytes for a in arrays.values()))
    return arrays, meta


def load_dataset(path: str | Path, *, algorithm: str | None = None, split: str | None = None) -> Dataset:
    """Read and verify a split directory (see the module docstring for what is checked).

    algorithm, split: what the directory is for (``<root>/<algorithm>/<split>``); its manifest must name them.
    """
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"{path}: not a directory (expected a split with {MANIFEST_NAME} and shards)")
    manifest = Manifest.read(path / MANIFEST_NAME)
    check_identity(manifest, path, algorithm, split)
    spec = manifest.spec
    _check_registered_spec(spec, path / MANIFEST_NAME)
    shards = []
    histogram: dict[int, int] = {}
    budget = ReadBudget.start()
    for info in manifest.shards:
        shard = _read_shard(path / info.file, info, manifest, budget)
        shards.append(shard)
        for n, c in zip(*np.unique(shard.num_nodes, return_counts=True), strict=True):
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


def _read_shard(file: Path, info: ShardInfo, manifest: Manifest, budget: ReadBudget) -> _Shard:
    spec = manifest.spec
    n = max(manifest.sizes, default=0)
    derived = info.num_graphs * max_graph_bytes(spec, n) + HEADER_SLACK
    derived_why = f"what {info.num_graphs} graphs of at most {n} nodes (its manifest's sizes) can hold"
    arrays, meta = read_shard(file, info, budget, derived, derived_why)
    where = str(file)
    if (
        meta.get("format") != FORMAT
        or meta.get("format_version") != FORMAT_VERSION
        or meta.get("algorithm") != spec.name
        or meta.get("spec_version") != spec.version
        or meta.get("num_graphs") != info.num_graphs
    ):
        raise DatasetError(
            f"{where}: its header {meta} disagrees with the manifest ({FORMAT} version {FORMAT_VERSION}, "
            f"{spec.name!r} spec version {spec.version}, {info.num_graphs} graphs)"
        )
    check_arrays(spec, arrays, info.num_graphs, where)
    num_nodes = arrays["meta/num_nodes"].astype(np.int64)
    length = arrays["meta/length"].astype(np.int64)
    loaded: dict[str, np.ndarray] = {}
    offsets: dict[str, np.ndarray] = {}
    for f in spec.fields:
        key = tensor_key(f)
        loaded[key] = arrays[key].astype(LOADED_DTYPES[f.type], copy=False)
        sizes = _field_sizes(f, num_nodes, length)
        offsets[key] = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return _Shard(arrays=loaded, offsets=offsets, num_nodes=num_nodes, length=length)
