"""The on-disk format of a natural-task split, its writer and its verified reader.

A natural task's example is not an algorithm trajectory: it has raw features per node and
per edge, an explicit (sparse) edge list, targets, and *hidden* ground truth (true costs)
that the model must never see. So it gets its own schema-driven variant of the
``nar.data.dataset`` format, sharing that module's machinery (``pack_arrays`` /
``decode_shard`` for deterministic gzip'd safetensors, ``atomic_write``, ``ShardInfo``,
shard names, ``DatasetError``).

A split directory (e.g. ``data/natural/road/train/``) holds::

    manifest.json                 written last: its presence means the split is complete
    shard-00000.safetensors.gz    examples 0 .. shard_size - 1
    ...

Schema
    Every example has ``n`` nodes and ``E`` directed edges. A field (:class:`FieldSpec`) has
    a ``role``, an ``axis`` and a trailing ``width``:

    ``role``
        ``input``: what a model may see (features, edge list, source, target);
        ``target``: what it is trained to predict (``pi``, ``path``);
        ``hidden``: ground truth for the oracle, the evaluation and plots only (true costs,
        distances, digit labels, congestion). A model must never read it;
        ``meta``: bookkeeping for plots and checks (coordinates, image and OSM ids).
    ``axis``
        ``node`` (leading dimension n), ``edge`` (leading E, aligned with the ``edge_index``
        input, itself an edge field of width (2,)), ``graph`` (no leading dimension).
    ``index``
        values are node indices, checked to lie in [0, n).

Shard
    ``meta/num_nodes`` and ``meta/num_edges`` (G,) int32, and per field ``<role>/<name>``: one
    flat 1-D array, the concatenation over the shard's examples of each value flattened in C
    order (``prod(width)`` values per node, per edge or per graph). The header metadata
    repeats the format, task, schema hash and example count.

Manifest
    ``format`` ``nar-natural``, ``format_version``, ``generator_version``, ``task``, ``split``,
    ``seed``, ``algorithm`` (the ``nar.algorithms`` entry whose output ``pi`` is the target, so
    an oracle reproduces it exactly), the build ``params``, the ``schema``, ``feature_names``
    (one name per column of each feature field), ``info`` (task facts: cost model, data
    provenance), ``count``, ``sizes`` and the realised ``sizes_histogram`` (in the task's size
    unit: grid side for digit grids, node count for roads), ``shard_size``, one entry per
    shard (file, examples, bytes, sha256), ``total_bytes``. No timestamps, no absolute
    paths: the same seed gives byte-identical files.

Reading
    ``load_natural(path)`` checks the manifest, each shard's size and sha256, its tensors
    against the schema (names, dtypes, lengths, finite floats, node indices in range) and
    the example counts, raising :class:`~nar.data.dataset.DatasetError` naming the file.
    Files go through the synthetic store's readers (``read_manifest_json``, ``read_shard``):
    regular files only, a capped manifest, shards decompressed within the memory budget.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

import nar
from nar.data.dataset import (
    MANIFEST_NAME,
    DatasetError,
    ReadBudget,
    ShardInfo,
    atomic_write,
    pack_arrays,
    read_manifest_json,
    read_shard,
    shard_name,
)

FORMAT = "nar-natural"
FORMAT_VERSION = 1
ROLES = ("input", "target", "hidden", "meta")
AXES = ("node", "edge", "graph")
DTYPES = ("float32", "int32", "int64", "uint8")
_META_KEYS = ("meta/num_nodes", "meta/num_edges")

Role = Literal["input", "target", "hidden", "meta"]
Axis = Literal["node", "edge", "graph"]


@dataclass(frozen=True)
class FieldSpec:
    """One named array of every example, e.g. ``FieldSpec("pi", "target", "node", "int32", index=True)``."""

    name: str
    role: Role
    axis: Axis
    dtype: str
    width: tuple[int, ...] = ()
    index: bool = False  # values are node indices in [0, n)
    doc: str = ""

    def __post_init__(self) -> None:
        if self.role not in ROLES or self.axis not in AXES or self.dtype not in DTYPES:
            raise ValueError(f"field {self.name!r}: bad role/axis/dtype {self.role!r}/{self.axis!r}/{self.dtype!r}")
        if self.index and self.dtype not in ("int32", "int64"):
            raise ValueError(f"field {self.name!r}: node indices must be integers")
        object.__setattr__(self, "width", tuple(int(w) for w in self.width))

    @property
    def key(self) -> str:
        return f"{self.role}/{self.name}"

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    @property
    def per_item(self) -> int:
        return int(np.prod(self.width, dtype=np.int64))

    def shape(self, n: int, e: int) -> tuple[int, ...]:
        lead = {"node": (n,), "edge": (e,), "graph": ()}[self.axis]
        return (*lead, *self.width)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "role": self.role,
            "axis": self.axis,
            "dtype": self.dtype,
            "width": list(self.width),
        }
        if self.index:
            d["index"] = True
        if self.doc:
            d["doc"] = self.doc
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FieldSpec:
        return cls(
            name=str(d["name"]),
            role=d["role"],
            axis=d["axis"],
            dtype=str(d["dtype"]),
            width=tuple(int(w) for w in d.get("width", ())),
            index=bool(d.get("index", False)),
            doc=str(d.get("doc", "")),
        )


@dataclass(frozen=True)
class Schema:
    fields: tuple[FieldSpec, ...]

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate field names in {names}")
        ei = self.get("edge_index")
        if ei is None or ei.role != "input" or ei.axis != "edge" or ei.width != (2,) or not ei.index:
            raise ValueError("a natural schema needs the input edge field 'edge_index' of width (2,) (node indices)")

    def __iter__(self) -> Iterator[FieldSpec]:
        return iter(self.fields)

    def get(self, name: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.name == name), None)

    def field(self, name: str) -> FieldSpec:
        f = self.get(name)
        if f is None:
            raise KeyError(f"no field {name!r}; fields: {[f.name for f in self.fields]}")
        return f

    def by_role(self, role: str) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.role == role)

    def to_list(self) -> list[dict[str, Any]]:
        return [f.to_dict() for f in self.fields]

    @classmethod
    def from_list(cls, items: list[dict[str, Any]]) -> Schema:
        return cls(tuple(FieldSpec.from_dict(d) for d in items))

    def digest(self) -> str:
        """sha256 of the schema's JSON (without docs): stamped into every shard's header."""
        plain = [{k: v for k, v in f.to_dict().items() if k != "doc"} for f in self.fields]
        return hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()


# --------------------------------------------------------------------------- examples


@dataclass
class Example:
    """One graph of a natural task, as numpy arrays grouped by role.

    ``inputs`` always holds ``edge_index`` (E, 2) (u -> v, sorted), ``source`` and ``target``
    (0-d); ``targets`` holds ``pi`` (n,) and ``path`` (n,); ``hidden`` holds ``edge_cost`` (E,)
    (the weight the target algorithm ran on), ``dist`` (n,) and ``edge_optimal`` (E,).
    Node indices are int64, other integer fields keep their stored dtype.
    """

    num_nodes: int
    num_edges: int
    inputs: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    hidden: dict[str, np.ndarray]
    meta: dict[str, np.ndarray]

    def group(self, role: str) -> dict[str, np.ndarray]:
        return {"input": self.inputs, "target": self.targets, "hidden": self.hidden, "meta": self.meta}[role]

    @property
    def edge_index(self) -> np.ndarray:
        return self.inputs["edge_index"]

    @property
    def source(self) -> int:
        return int(self.inputs["source"])

    @property
    def target(self) -> int:
        return int(self.inputs["target"])

    @property
    def pi(self) -> np.ndarray:
        return self.targets["pi"]

    def adjacency(self) -> np.ndarray:
        """(n, n) bool: ``adj[u, v]`` for every directed edge u -> v (no self-loops)."""
        adj = np.zeros((self.num_nodes, self.num_nodes), dtype=bool)
        adj[self.edge_index[:, 0], self.edge_index[:, 1]] = True
        return adj

    def dense_edges(self, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Scatter per-edge ``values`` (E, ...) into (n, n, ...), ``fill`` where there is no edge."""
        values = np.asarray(values)
        out = np.full((self.num_nodes, self.num_nodes, *values.shape[1:]), fill, dtype=values.dtype)
        out[self.edge_index[:, 0], self.edge_index[:, 1]] = values
        return out

    def hidden_weights(self) -> np.ndarray:
        """(n, n) float64 true edge costs (0 off-edge): what the oracle runs on. Hidden!"""
        return self.dense_edges(self.hidden["edge_cost"].astype(np.float64))


def _as_example(arrays: dict[str, np.ndarray], n: int, e: int) -> Example:
    groups: dict[str, dict[str, np.ndarray]] = {r: {} for r in ROLES}
    for key, value in arrays.items():
        role, name = key.split("/", 1)
        groups[role][name] = value
    return Example(n, e, groups["input"], groups["target"], groups["hidden"], groups["meta"])


# --------------------------------------------------------------------------- writing


def encode_examples(
    schema: Schema, task: str, examples: Sequence[dict[str, np.ndarray]], where: str
) -> tuple[bytes, np.ndarray]:
    """Shard bytes of ``examples`` (each a ``{field name: array}``), and their sizes (G, 2) [n, E].

    Every array is cast to its field's dtype and checked against the schema before writing.
    """
    n = np.array([len(ex[_node_field(schema)]) for ex in examples], dtype=np.int64)
    e = np.array([len(ex["edge_index"]) for ex in examples], dtype=np.int64)
    arrays: dict[str, np.ndarray] = {"meta/num_nodes": n.astype(np.int32), "meta/num_edges": e.astype(np.int32)}
    for f in schema:
        parts = []
        for j, ex in enumerate(examples):
            if f.name not in ex:
                raise ValueError(f"{where}: example {j} has no field {f.name!r}")
            value = np.asarray(ex[f.name])
            if value.shape != f.shape(int(n[j]), int(e[j])):
                raise ValueError(
                    f"{where}: example {j} field {f.name!r} has shape {value.shape}, "
                    f"expected {f.shape(int(n[j]), int(e[j]))}"
                )
            cast = value.astype(f.np_dtype)
            if np.issubdtype(value.dtype, np.integer) and not np.array_equal(cast, value):
                raise ValueError(f"{where}: example {j} field {f.name!r} does not fit {f.dtype}")
            parts.append(cast.ravel())
        arrays[f.key] = np.ascontiguousarray(np.concatenate(parts) if parts else np.zeros(0, f.np_dtype))
    check_arrays(schema, arrays, len(examples), where)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "task": task,
        "schema_sha256": schema.digest(),
        "num_graphs": len(examples),
    }
    return pack_arrays(arrays, header), np.stack([n, e], axis=1)


def _node_field(schema: Schema) -> str:
    f = next((f for f in schema if f.axis == "node"), None)
    if f is None:
        raise ValueError("a natural schema needs at least one node field")
    return f.name


@dataclass(frozen=True)
class NaturalManifest:
    task: str
    split: str
    seed: int
    algorithm: str
    params: dict[str, Any]
    schema: Schema
    feature_names: dict[str, list[str]]
    info: dict[str, Any]
    count: int
    sizes: tuple[int, ...]
    sizes_histogram: dict[int, int]
    shard_size: int
    shards: tuple[ShardInfo, ...] = ()
    generator_version: str = ""
    format_version: int = FORMAT_VERSION

    @property
    def total_bytes(self) -> int:
        return sum(s.bytes for s in self.shards)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": self.format_version,
            "generator_version": self.generator_version,
            "task": self.task,
            "split": self.split,
            "seed": self.seed,
            "algorithm": self.algorithm,
            "params": self.params,
            "schema": self.schema.to_list(),
            "feature_names": self.feature_names,
            "info": self.info,
            "count": self.count,
            "sizes": list(self.sizes),
            "sizes_histogram": {str(k): v for k, v in sorted(self.sizes_histogram.items())},
            "shard_size": self.shard_size,
            "shards": [s.to_dict() for s in self.shards],
            "total_graphs": sum(s.num_graphs for s in self.shards),
            "total_bytes": self.total_bytes,
        }

    def to_json(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n").encode()

    @classmethod
    def from_dict(cls, d: Any, where: str) -> NaturalManifest:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            got = d.get("format") if isinstance(d, dict) else None
            raise DatasetError(f"{where}: not a {FORMAT} manifest (its 'format' is {got!r})")
        if d.get("format_version") != FORMAT_VERSION:
            raise DatasetError(
                f"{where}: format_version {d.get('format_version')!r}, this code reads {FORMAT_VERSION}; "
                "rebuild the split (nar natural)"
            )
        try:
            m = cls(
                task=str(d["task"]),
                split=str(d["split"]),
                seed=int(d["seed"]),
                algorithm=str(d["algorithm"]),
                params=dict(d["params"]),
                schema=Schema.from_list(d["schema"]),
                feature_names={str(k): [str(x) for x in v] for k, v in d["feature_names"].items()},
                info=dict(d["info"]),
                count=int(d["count"]),
                sizes=tuple(int(x) for x in d["sizes"]),
                sizes_histogram={int(k): int(v) for k, v in d["sizes_histogram"].items()},
                shard_size=int(d["shard_size"]),
                shards=tuple(
                    ShardInfo(str(s["file"]), int(s["num_graphs"]), int(s["bytes"]), str(s["sha256"]))
                    for s in d["shards"]
                ),
                generator_version=str(d["generator_version"]),
                format_version=int(d["format_version"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DatasetError(f"{where}: malformed manifest ({type(exc).__name__}: {exc})") from None
        for k, s in enumerate(m.shards):
            if s.file != shard_name(k):
                raise DatasetError(f"{where}: shard {k} is named {s.file!r}, expected {shard_name(k)!r}")
        total = sum(s.num_graphs for s in m.shards)
        if total != m.count or d.get("total_graphs") != total or sum(m.sizes_histogram.values()) != m.count:
            raise DatasetError(
                f"{where}: count {m.count}, total_graphs {d.get('total_graphs')} and sizes_histogram "
                f"{m.sizes_histogram} disagree with the shards' example counts (sum {total})"
            )
        for name, names in m.feature_names.items():
            f = m.schema.get(name)
            if f is None or len(f.width) != 1 or f.width[0] != len(names):
                raise DatasetError(f"{where}: feature_names[{name!r}] ({len(names)} names) does not match the schema")
        return m

    @classmethod
    def read(cls, path: Path) -> NaturalManifest:
        d = read_manifest_json(path, "not a natural split, or its build did not finish")
        return cls.from_dict(d, where=str(path))


def write_split(
    out_dir: Path,
    manifest: NaturalManifest,
    examples: Iterable[dict[str, np.ndarray]],
    size_of: Any,
    progress: Any = None,
) -> NaturalManifest:
    """Write ``manifest.count`` examples into ``out_dir`` in shards of ``manifest.shard_size``.

    ``size_of(example)`` gives the example's size (for the histogram); ``progress`` (a tqdm
    bar or None) is advanced per example. The manifest goes last, so a directory holding it is
    complete; a previous manifest is removed first, and shards beyond the new count deleted.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    num_shards = -(-manifest.count // manifest.shard_size)
    keep = {shard_name(k) for k in range(num_shards)}
    for p in out_dir.iterdir():
        stale = p.name.startswith("shard-") and p.name.endswith(".safetensors.gz") and p.name not in keep
        if (stale or (p.name.startswith(".") and p.name.endswith(".tmp"))) and p.is_file():
            p.unlink()
    shards: list[ShardInfo] = []
    histogram: dict[int, int] = {}
    buffer: list[dict[str, np.ndarray]] = []
    it = iter(examples)

    def flush() -> None:
        k = len(shards)
        first = k * manifest.shard_size
        where = f"{manifest.task}/{manifest.split}, examples {first}..{first + len(buffer) - 1}"
        data, _ = encode_examples(manifest.schema, manifest.task, buffer, where)
        atomic_write(out_dir / shard_name(k), data)
        shards.append(ShardInfo(shard_name(k), len(buffer), len(data), hashlib.sha256(data).hexdigest()))
        buffer.clear()

    for _ in range(manifest.count):
        ex = next(it)
        size = int(size_of(ex))
        histogram[size] = histogram.get(size, 0) + 1
        buffer.append(ex)
        if progress is not None:
            progress.update(1)
        if len(buffer) == manifest.shard_size:
            flush()
    if buffer:
        flush()
    done = NaturalManifest(
        **{
            **{k: getattr(manifest, k) for k in manifest.__dataclass_fields__},
            "shards": tuple(shards),
            "sizes_histogram": {k: histogram[k] for k in sorted(histogram)},
        }
    )
    atomic_write(out_dir / MANIFEST_NAME, done.to_json())
    return done


# --------------------------------------------------------------------------- checking


def check_arrays(schema: Schema, arrays: dict[str, np.ndarray], num_graphs: int, where: str) -> None:
    """A shard's flat arrays against the schema; ``DatasetError`` starting with ``where``."""
    expected = set(_META_KEYS) | {f.key for f in schema}
    if set(arrays) != expected:
        missing, extra = sorted(expected - set(arrays)), sorted(set(arrays) - expected)
        raise DatasetError(f"{where}: tensors disagree with the schema: missing {missing}, extra {extra}")
    for key in _META_KEYS:
        a = arrays[key]
        if a.dtype != np.int32 or a.shape != (num_graphs,):
            raise DatasetError(f"{where}: {key} is {a.dtype} {a.shape}, expected int32 ({num_graphs},)")
    n = arrays["meta/num_nodes"].astype(np.int64)
    e = arrays["meta/num_edges"].astype(np.int64)
    if num_graphs and (n.min() < 1 or e.min() < 0):
        raise DatasetError(f"{where}: meta/num_nodes must be >= 1 and meta/num_edges >= 0")
    for f in schema:
        a = arrays[f.key]
        if a.dtype != f.np_dtype or a.ndim != 1:
            raise DatasetError(f"{where}: {f.key} is {a.dtype} with shape {a.shape}, expected flat {f.dtype}")
        sizes = _sizes(f, n, e)
        if a.shape[0] != int(sizes.sum()):
            raise DatasetError(f"{where}: {f.key} holds {a.shape[0]} values, the example sizes call for {sizes.sum()}")
        if not a.size:
            continue
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise DatasetError(f"{where}: {f.key} contains NaN or inf")
        if f.index:
            bound = np.repeat(n, sizes)
            if a.min() < 0 or (a >= bound).any():
                raise DatasetError(f"{where}: {f.key} holds a node index outside [0, num_nodes)")


def _sizes(f: FieldSpec, n: np.ndarray, e: np.ndarray) -> np.ndarray:
    lead = {"node": n, "edge": e, "graph": np.ones_like(n)}[f.axis]
    return (lead * f.per_item).astype(np.int64)


# --------------------------------------------------------------------------- reading


@dataclass
class _Shard:
    arrays: dict[str, np.ndarray]
    offsets: dict[str, np.ndarray]
    num_nodes: np.ndarray
    num_edges: np.ndarray


@dataclass(eq=False, repr=False)
class NaturalDataset(Sequence[Example]):
    """A verified natural split in memory: a sequence of :class:`Example` in build order.

    Examples are i.i.d. draws, so a prefix ``ds[:m]`` is a random subset of size m (use it for
    training-set-size sweeps). ``feature_names[field]`` names the columns of a feature field.
    """

    path: Path
    manifest: NaturalManifest
    _shards: list[_Shard] = field(repr=False)

    def __post_init__(self) -> None:
        counts = [len(s.num_nodes) for s in self._shards]
        self._starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)

    def __repr__(self) -> str:
        m = self.manifest
        return f"NaturalDataset({str(self.path)!r}, task={m.task!r}, split={m.split!r}, examples={len(self)})"

    @property
    def task(self) -> str:
        return self.manifest.task

    @property
    def split(self) -> str:
        return self.manifest.split

    @property
    def schema(self) -> Schema:
        return self.manifest.schema

    @property
    def algorithm(self) -> str:
        return self.manifest.algorithm

    @property
    def feature_names(self) -> dict[str, list[str]]:
        return self.manifest.feature_names

    @property
    def num_nodes(self) -> np.ndarray:
        return np.concatenate([s.num_nodes for s in self._shards]) if self._shards else np.zeros(0, np.int64)

    def __len__(self) -> int:
        return int(self._starts[-1])

    @overload
    def __getitem__(self, i: int) -> Example: ...

    @overload
    def __getitem__(self, i: slice) -> list[Example]: ...

    def __getitem__(self, i: int | slice) -> Example | list[Example]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"example {i} out of range for a split of {len(self)}")
        k = int(np.searchsorted(self._starts, i, side="right")) - 1
        return self._build(self._shards[k], i - int(self._starts[k]))

    def __iter__(self) -> Iterator[Example]:
        for s in self._shards:
            for j in range(len(s.num_nodes)):
                yield self._build(s, j)

    def collate(self, indices: Iterable[int] | None = None) -> Any:
        """A padded torch :class:`~nar.natural.batching.NaturalBatch` of these examples (all by default)."""
        from nar.natural.batching import collate_natural

        chosen = list(self) if indices is None else [self[int(i)] for i in indices]
        return collate_natural(chosen, self.schema, self.task)

    def _build(self, s: _Shard, j: int) -> Example:
        n, e = int(s.num_nodes[j]), int(s.num_edges[j])
        arrays = {}
        for f in self.schema:
            off = s.offsets[f.key]
            arrays[f.key] = s.arrays[f.key][off[j] : off[j + 1]].reshape(f.shape(n, e))
        return _as_example(arrays, n, e)


def load_natural(path: str | Path) -> NaturalDataset:
    """Read and verify a natural split directory (see the module docstring)."""
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"{path}: not a directory (expected a natural split with {MANIFEST_NAME} and shards)")
    manifest = NaturalManifest.read(path / MANIFEST_NAME)
    budget = ReadBudget.start()
    shards = [_read_shard(path / info.file, info, manifest, budget) for info in manifest.shards]
    return NaturalDataset(path=path, manifest=manifest, _shards=shards)


def _read_shard(file: Path, info: ShardInfo, m: NaturalManifest, budget: ReadBudget) -> _Shard:
    # No bound from the manifest: its sizes are in the task's own unit (grid side, nodes) and edge counts are
    # not recorded, so the memory budget alone bounds the decompression.
    arrays, meta = read_shard(file, info, budget)
    if (
        meta.get("format") != FORMAT
        or meta.get("format_version") != FORMAT_VERSION
        or meta.get("task") != m.task
        or meta.get("schema_sha256") != m.schema.digest()
        or meta.get("num_graphs") != info.num_graphs
    ):
        raise DatasetError(
            f"{file}: its header {meta} disagrees with the manifest ({m.task!r}, {info.num_graphs} graphs)"
        )
    check_arrays(m.schema, arrays, info.num_graphs, str(file))
    n = arrays["meta/num_nodes"].astype(np.int64)
    e = arrays["meta/num_edges"].astype(np.int64)
    loaded, offsets = {}, {}
    for f in m.schema:
        a = arrays[f.key]
        loaded[f.key] = a.astype(np.int64) if f.index else a
        offsets[f.key] = np.concatenate([[0], np.cumsum(_sizes(f, n, e))]).astype(np.int64)
    return _Shard(loaded, offsets, n, e)


def new_manifest(**kwargs: Any) -> NaturalManifest:
    """A manifest skeleton (no shards yet) stamped with this code's version."""
    return NaturalManifest(generator_version=nar.__version__, sizes_histogram={}, **kwargs)
