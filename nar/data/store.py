"""The one sharded store of the project: synthetic trajectories and natural-task examples alike.

A split directory holds::

    manifest.json                 written last: its presence means the split is complete
    shard-00000.safetensors.gz    graphs 0 .. shard_size - 1
    shard-00001.safetensors.gz    ...

Shard
    A gzip'd (``mtime=0``, no file name, so the bytes are deterministic) safetensors file
    (``safetensors.numpy``: plain arrays and a JSON header, no pickle). For its G graphs it holds
    per-graph counts ``meta/<count>`` (G,) int32 (``num_nodes`` and the hint steps ``length`` of a
    trajectory, ``num_nodes`` and ``num_edges`` of a natural example), and per field one flat 1-D
    array: the concatenation over the shard's graphs of each graph's value flattened in C order.
    What graph g contributes to a field follows from its counts, so offsets need not be stored.
    The safetensors header metadata (one ``nar`` entry, sorted JSON) repeats the format and the
    graph count; the reader checks it against the manifest.

Manifest (``manifest.json``)
    ``format``/``format_version``, ``generator_version``, what the format records about the split
    (:class:`SplitManifest` subclasses: the algorithm and its spec, or the natural task and its
    schema), ``split``, ``seed``, ``count``, ``sizes`` and the realised ``sizes_histogram``,
    ``shard_size``, one entry per shard (file name, number of graphs, byte size, sha256 of the
    file), ``total_graphs`` and ``total_bytes``. No timestamps or paths: the same seed gives
    byte-identical files.

What a format supplies is a :class:`Layout` (its tensors' names, dtypes and per-graph sizes) and a
manifest subclass; this module writes (:func:`pack_arrays`, :func:`write_shard_bytes`,
:func:`atomic_write`), reads and verifies (:func:`load_shards`, :func:`check_arrays`) and serves
the graphs (:class:`ShardedSplit`). Files are read through :mod:`nar.limits`: the manifest and every
shard must be regular files (not a FIFO, a device or a link to one), the manifest at most
``MAX_MANIFEST_BYTES``, a shard exactly its manifest's byte count; a shard is decompressed with a
bound (what its graphs can hold, where the format knows it) and the whole split within a third of
the memory limit (:class:`ReadBudget`), so a gzip bomb is refused instead of filling memory. Every
fault raises :class:`DatasetError` naming the file.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar, overload

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from nar.errors import NarError
from nar.limits import format_bytes, gunzip_capped, memory_limit, read_capped

MANIFEST_NAME = "manifest.json"
PARTIAL_MANIFEST_NAME = "manifest.partial.json"  # progress of an unfinished generation
SHARD_TEMPLATE = "shard-{:05d}.safetensors.gz"
# Level 1: 3.4x faster than the default 6 for 10% more bytes (random float32 weights barely
# compress); at 6 compression alone took longer than sampling and running Bellman-Ford.
GZIP_LEVEL = 1
MAX_MANIFEST_BYTES = 16 * 2**20  # about 100,000 shard entries; a real manifest is a few KB
# The safetensors header (JSON: names, dtypes, shapes, offsets) and alignment padding of a shard, on top of its data.
HEADER_SLACK = 2**16


class DatasetError(NarError):
    """A split on disk is missing, incomplete, corrupted or inconsistent."""


def shard_name(index: int) -> str:
    return SHARD_TEMPLATE.format(index)


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Column:
    """One flat tensor of a shard, e.g. ``input/A``: its on-disk and in-memory dtypes, and how many values
    each graph of the shard contributes (``sizes``, (G,) int64)."""

    key: str
    disk: np.dtype
    loaded: np.dtype
    sizes: np.ndarray
    index: bool = False  # values are node indices, in [0, num_nodes) of their graph


class Layout(Protocol):
    """How a format flattens its graphs into a shard's tensors (an algorithm's spec, a natural schema)."""

    counts: ClassVar[dict[str, int]]  # per-graph counts stored as ``meta/<name>``, with their least value
    owner: str  # what declares the tensors, for messages: "the spec of 'bfs'", "the schema"

    def keys(self) -> list[str]: ...

    def columns(self, counts: dict[str, np.ndarray]) -> list[Column]: ...

    def check_values(self, arrays: dict[str, np.ndarray], counts: dict[str, np.ndarray], where: str) -> None:
        """The format's own domain checks, after the store's (``DatasetError`` starting with ``where``)."""


def check_arrays(layout: Layout, arrays: dict[str, np.ndarray], num_graphs: int, where: str) -> dict[str, np.ndarray]:
    """Check a shard's flat arrays against ``layout``: names, dtypes, lengths, finite floats and node indices
    in range (vectorised), then the layout's own checks. Returns the per-graph counts ((G,) int64 by name);
    ``DatasetError`` starts with ``where``."""
    meta_keys = [f"meta/{name}" for name in layout.counts]
    expected = set(meta_keys) | set(layout.keys())
    if set(arrays) != expected:
        missing, extra = sorted(expected - set(arrays)), sorted(set(arrays) - expected)
        raise DatasetError(f"{where}: tensors disagree with {layout.owner}: missing {missing}, extra {extra}")
    for key in meta_keys:
        a = arrays[key]
        if a.dtype != np.int32 or a.shape != (num_graphs,):
            raise DatasetError(f"{where}: {key} is {a.dtype} {a.shape}, expected int32 ({num_graphs},)")
    counts = {name: arrays[f"meta/{name}"].astype(np.int64) for name in layout.counts}
    if num_graphs and any(counts[name].min() < least for name, least in layout.counts.items()):
        bounds = " and ".join(f"meta/{name} >= {least}" for name, least in layout.counts.items())
        raise DatasetError(f"{where}: counts must be {bounds}")
    for c in layout.columns(counts):
        a = arrays[c.key]
        if a.dtype != c.disk or a.ndim != 1:
            raise DatasetError(f"{where}: {c.key} is {a.dtype} with shape {a.shape}, expected flat {c.disk}")
        total = int(c.sizes.sum())
        if a.shape[0] != total:
            raise DatasetError(
                f"{where}: {c.key} holds {a.shape[0]} values, but {' and '.join(layout.counts)} call for {total}"
            )
        if not a.size:
            continue
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise DatasetError(f"{where}: {c.key} contains NaN or inf")
        if c.index:
            bound = np.repeat(counts["num_nodes"], c.sizes)  # each value's graph size
            if a.min() < 0 or (a >= bound).any():
                raise DatasetError(f"{where}: {c.key} holds a node index outside [0, num_nodes)")
    layout.check_values(arrays, counts, where)
    return counts


# --------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class ShardInfo:
    file: str
    num_graphs: int
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "num_graphs": self.num_graphs, "bytes": self.bytes, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, s: dict[str, Any]) -> ShardInfo:
        return cls(file=str(s["file"]), num_graphs=int(s["num_graphs"]), bytes=int(s["bytes"]), sha256=str(s["sha256"]))


@dataclass(frozen=True, kw_only=True)
class SplitManifest(ABC):
    """What every split's manifest records; a format's subclass adds what it is about (``_about``) and its
    layout. Keyword-only: subclasses add required fields."""

    FORMAT: ClassVar[str]
    FORMAT_VERSION: ClassVar[int] = 1
    REBUILD: ClassVar[str]  # how a user remakes a split, for messages
    MISSING: ClassVar[str]  # what a missing manifest means, for messages
    ENSURE_ASCII: ClassVar[bool] = True  # json.dumps' choice for this format (part of its bytes)

    split: str
    seed: int
    count: int
    sizes: tuple[int, ...]
    sizes_histogram: dict[int, int]
    shard_size: int
    shards: tuple[ShardInfo, ...] = ()
    generator_version: str = ""

    @property
    def total_bytes(self) -> int:
        return sum(s.bytes for s in self.shards)

    @property
    @abstractmethod
    def layout(self) -> Layout:
        """How this split's graphs are flattened into its shards' tensors."""

    @abstractmethod
    def _about(self) -> dict[str, Any]:
        """The format's own entries, in file order (``split`` and ``seed`` among them)."""

    @classmethod
    @abstractmethod
    def _about_from(cls, d: dict[str, Any]) -> dict[str, Any]:
        """The constructor arguments of the format's own fields, from the JSON (KeyError etc. when malformed)."""

    @abstractmethod
    def _check(self, d: dict[str, Any], where: str) -> None:
        """The format's own consistency checks of a parsed manifest (``DatasetError`` naming ``where``)."""

    @abstractmethod
    def shard_header(self, num_graphs: int) -> dict[str, Any]:
        """The ``nar`` header metadata a shard of ``num_graphs`` graphs of this split carries."""

    def shard_bound(self, info: ShardInfo) -> tuple[int | None, str]:
        """(the most bytes the shard can decompress to, where that comes from), or (None, "") if unknown."""
        return None, ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.FORMAT,
            "format_version": self.FORMAT_VERSION,
            "generator_version": self.generator_version,
            **self._about(),
            "count": self.count,
            "sizes": list(self.sizes),
            "sizes_histogram": {str(k): v for k, v in sorted(self.sizes_histogram.items())},
            "shard_size": self.shard_size,
            "shards": [s.to_dict() for s in self.shards],
            "total_graphs": sum(s.num_graphs for s in self.shards),
            "total_bytes": self.total_bytes,
        }

    def to_json(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2, ensure_ascii=self.ENSURE_ASCII) + "\n").encode()

    @classmethod
    def from_dict(cls, d: Any, where: str = MANIFEST_NAME) -> Any:
        if not isinstance(d, dict) or d.get("format") != cls.FORMAT:
            got = d.get("format") if isinstance(d, dict) else None
            raise DatasetError(f"{where}: not a {cls.FORMAT} manifest (its 'format' is {got!r})")
        if d.get("format_version") != cls.FORMAT_VERSION:
            raise DatasetError(
                f"{where}: format_version {d.get('format_version')!r}, this code reads {cls.FORMAT_VERSION}; "
                f"{cls.REBUILD}"
            )
        try:
            m = cls(
                **cls._about_from(d),
                split=str(d["split"]),
                seed=int(d["seed"]),
                count=int(d["count"]),
                sizes=tuple(int(n) for n in d["sizes"]),
                sizes_histogram={int(k): int(v) for k, v in d["sizes_histogram"].items()},
                shard_size=int(d["shard_size"]),
                shards=tuple(ShardInfo.from_dict(s) for s in d["shards"]),
                generator_version=str(d["generator_version"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DatasetError(f"{where}: malformed manifest ({type(exc).__name__}: {exc})") from None
        m._check(d, where)
        for k, s in enumerate(m.shards):
            if s.file != shard_name(k):
                raise DatasetError(f"{where}: shard {k} is named {s.file!r}, expected {shard_name(k)!r}")
        total = sum(s.num_graphs for s in m.shards)
        if total != m.count or d.get("total_graphs") != total or sum(m.sizes_histogram.values()) != m.count:
            raise DatasetError(
                f"{where}: count {m.count}, total_graphs {d.get('total_graphs')} and sizes_histogram "
                f"{m.sizes_histogram} disagree with the shards' graph counts (sum {total})"
            )
        if d.get("total_bytes") != m.total_bytes:
            raise DatasetError(f"{where}: total_bytes {d.get('total_bytes')} != sum of shard bytes {m.total_bytes}")
        return m

    @classmethod
    def read(cls, path: Path) -> Any:
        """The manifest at ``path``, checked."""
        return cls.from_dict(read_manifest_json(path, cls.MISSING), where=str(path))


def read_manifest_json(path: Path, missing: str) -> Any:
    """The parsed JSON of a split's manifest: a regular file of at most MAX_MANIFEST_BYTES. ``missing`` says
    what a missing file means. Raises DatasetError naming the file."""
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


# --------------------------------------------------------------------------- writing


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


def pack_arrays(arrays: dict[str, np.ndarray], header: dict[str, Any]) -> bytes:
    """Deterministic gzip'd safetensors bytes of ``arrays``, with ``header`` as the ``nar`` metadata.

    The inverse of :func:`decode_shard`.
    """
    # One metadata entry holding sorted JSON: safetensors keeps metadata in a hash map whose
    # order changes from run to run, which would break byte-identical output with several keys.
    raw = st_save(arrays, metadata={"nar": json.dumps(header, sort_keys=True)})
    return gzip.compress(raw, compresslevel=GZIP_LEVEL, mtime=0)


def write_shard_bytes(path: Path, data: bytes, num_graphs: int) -> ShardInfo:
    """Write one encoded shard into place atomically; its manifest entry."""
    atomic_write(path, data)
    return ShardInfo(file=path.name, num_graphs=num_graphs, bytes=len(data), sha256=hashlib.sha256(data).hexdigest())


def clean_split_dir(out: Path, num_shards: int) -> None:
    """Make the directory look unfinished, and drop leftovers a run writing ``num_shards`` will not use.

    Only files this store writes are touched: the manifest, temporary files and shards beyond the new count.
    """
    (out / MANIFEST_NAME).unlink(missing_ok=True)
    keep = {shard_name(k) for k in range(num_shards)}
    for p in out.iterdir():
        name = p.name
        stale_shard = name.startswith("shard-") and name.endswith(".safetensors.gz") and name not in keep
        temp = name.startswith(".") and name.endswith(".tmp")
        if (stale_shard or temp) and p.is_file():
            os.unlink(p)


# --------------------------------------------------------------------------- reading


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
    """(arrays, header metadata) of one shard, after its checks: a regular file of exactly the manifest's
    byte count and sha256, decompressed within ``derived`` bytes (what its manifest says it can hold, if the
    format knows) and what is left of ``budget``. DatasetError names the file."""
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


@dataclass
class Shard:
    """One verified shard in memory: its flat arrays in loaded dtypes, and where each graph's values start."""

    arrays: dict[str, np.ndarray]
    offsets: dict[str, np.ndarray]  # (G + 1,) int64 per key: graph g is arrays[key][offsets[g]:offsets[g + 1]]
    counts: dict[str, np.ndarray]  # (G,) int64 per count name (num_nodes, length or num_edges)


def load_shards(path: Path, manifest: SplitManifest) -> list[Shard]:
    """Every shard the manifest lists, read and verified (size, sha256, decompression bound, header, arrays)."""
    budget = ReadBudget.start()
    layout = manifest.layout
    shards = []
    for info in manifest.shards:
        file = path / info.file
        arrays, meta = read_shard(file, info, budget, *manifest.shard_bound(info))
        expected = manifest.shard_header(info.num_graphs)
        if any(meta.get(k) != v for k, v in expected.items()):
            raise DatasetError(f"{file}: its header {meta} disagrees with the manifest ({expected})")
        counts = check_arrays(layout, arrays, info.num_graphs, str(file))
        loaded, offsets = {}, {}
        for c in layout.columns(counts):
            loaded[c.key] = arrays[c.key].astype(c.loaded, copy=False)
            offsets[c.key] = np.concatenate([[0], np.cumsum(c.sizes)]).astype(np.int64)
        shards.append(Shard(loaded, offsets, counts))
    return shards


T = TypeVar("T")


@dataclass(eq=False, repr=False)
class ShardedSplit(Sequence[T], Generic[T]):
    """A verified split in memory: a sequence of its graphs in generation order, built on access as views
    of the shards' flat arrays (cheap). A format's subclass builds one graph (``_build``)."""

    ITEM: ClassVar[str] = "graph"  # what one element is called in messages

    path: Path
    manifest: Any
    _shards: list[Shard] = field(repr=False)

    def __post_init__(self) -> None:
        counts = [len(s.counts["num_nodes"]) for s in self._shards]
        self._starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)

    def _concat(self, name: str) -> np.ndarray:
        """(len,) int64: the count ``name`` of every graph."""
        return np.concatenate([s.counts[name] for s in self._shards]) if self._shards else np.zeros(0, np.int64)

    @property
    def num_nodes(self) -> np.ndarray:
        """(len,) int64: node count of every graph."""
        return self._concat("num_nodes")

    def __len__(self) -> int:
        return int(self._starts[-1])

    @overload
    def __getitem__(self, i: int) -> T: ...

    @overload
    def __getitem__(self, i: slice) -> list[T]: ...

    def __getitem__(self, i: int | slice) -> T | list[T]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"{self.ITEM} {i} out of range for a split of {len(self)}")
        k = int(np.searchsorted(self._starts, i, side="right")) - 1
        return self._build(self._shards[k], i - int(self._starts[k]))

    def __iter__(self) -> Iterator[T]:
        for shard in self._shards:
            for j in range(len(shard.counts["num_nodes"])):
                yield self._build(shard, j)

    @abstractmethod
    def _build(self, s: Shard, j: int) -> T:
        """Graph j of shard s."""

    def _view(self, s: Shard, j: int, key: str) -> np.ndarray:
        """Graph j's flat values of ``key`` in shard s (a view)."""
        off = s.offsets[key]
        return s.arrays[key][off[j] : off[j + 1]]


def read_split_manifest(path: str | Path, manifest_class: type[SplitManifest], what: str) -> tuple[Path, Any]:
    """(path, its checked manifest) of a split directory; ``what`` names the kind of split for messages."""
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"{path}: not a directory (expected {what} with {MANIFEST_NAME} and shards)")
    return path, manifest_class.read(path / MANIFEST_NAME)
