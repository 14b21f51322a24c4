"""The natural format of the sharded store (:mod:`nar.data.store`): splits of natural-task examples.

A natural task's example is not an algorithm trajectory: it has raw features per node and
per edge, an explicit (sparse) edge list, targets, and *hidden* ground truth (true costs)
that the model must never see. So its layout is a schema (:class:`Schema`), where the
synthetic format's is an algorithm's spec; manifests, shards, their writing, checks and
reading are the store's. A split directory (e.g. ``data/natural/road/train/``) holds
``manifest.json`` and ``shard-00000.safetensors.gz`` ... (examples 0 .. shard_size - 1, ...).

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
    the example counts, raising :class:`~nar.data.store.DatasetError` naming the file.
    Files go through the store's readers: regular files only, a capped manifest, shards
    decompressed within the memory budget.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

import nar
from nar.data.store import (
    MANIFEST_NAME,
    Column,
    DatasetError,
    Shard,
    ShardedSplit,
    ShardInfo,
    SplitManifest,
    atomic_write,
    check_arrays,
    clean_split_dir,
    load_shards,
    pack_arrays,
    read_split_manifest,
    shard_name,
    write_shard_bytes,
)

FORMAT = "nar-natural"
FORMAT_VERSION = 1
ROLES = ("input", "target", "hidden", "meta")
AXES = ("node", "edge", "graph")
DTYPES = ("float32", "int32", "int64", "uint8")

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
    """The fields of a natural task's examples: the store layout of its splits (counted by the example's
    node count n and edge count E)."""

    fields: tuple[FieldSpec, ...]
    counts: ClassVar[dict[str, int]] = {"num_nodes": 1, "num_edges": 0}
    owner: ClassVar[str] = "the schema"

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

    def keys(self) -> list[str]:
        return [f.key for f in self.fields]

    def columns(self, counts: dict[str, np.ndarray]) -> list[Column]:
        """The shard tensors of these fields; node indices load as int64."""
        n, e = counts["num_nodes"], counts["num_edges"]
        return [
            Column(f.key, f.np_dtype, np.dtype(np.int64) if f.index else f.np_dtype, _sizes(f, n, e), index=f.index)
            for f in self.fields
        ]

    def check_values(self, arrays: dict[str, np.ndarray], counts: dict[str, np.ndarray], where: str) -> None:
        """Nothing beyond the store's checks: a schema declares no value domains but finite floats and indices."""

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
    return pack_arrays(arrays, _header(schema, task, len(examples))), np.stack([n, e], axis=1)


def _header(schema: Schema, task: str, num_graphs: int) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "task": task,
        "schema_sha256": schema.digest(),
        "num_graphs": num_graphs,
    }


def _node_field(schema: Schema) -> str:
    f = next((f for f in schema if f.axis == "node"), None)
    if f is None:
        raise ValueError("a natural schema needs at least one node field")
    return f.name


@dataclass(frozen=True, kw_only=True)
class NaturalManifest(SplitManifest):
    """What a natural split holds and how it was built; ``manifest.json`` is its JSON form."""

    FORMAT: ClassVar[str] = FORMAT
    FORMAT_VERSION: ClassVar[int] = FORMAT_VERSION
    REBUILD: ClassVar[str] = "rebuild the split (nar natural)"
    MISSING: ClassVar[str] = "not a natural split, or its build did not finish"
    ENSURE_ASCII: ClassVar[bool] = False  # OSM names and units stay readable

    task: str
    algorithm: str
    params: dict[str, Any]
    schema: Schema
    feature_names: dict[str, list[str]]
    info: dict[str, Any]

    @property
    def layout(self) -> Schema:
        return self.schema

    def _about(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "split": self.split,
            "seed": self.seed,
            "algorithm": self.algorithm,
            "params": self.params,
            "schema": self.schema.to_list(),
            "feature_names": self.feature_names,
            "info": self.info,
        }

    @classmethod
    def _about_from(cls, d: dict[str, Any]) -> dict[str, Any]:
        return {
            "task": str(d["task"]),
            "algorithm": str(d["algorithm"]),
            "params": dict(d["params"]),
            "schema": Schema.from_list(d["schema"]),
            "feature_names": {str(k): [str(x) for x in v] for k, v in d["feature_names"].items()},
            "info": dict(d["info"]),
        }

    def _check(self, d: dict[str, Any], where: str) -> None:
        for name, names in self.feature_names.items():
            f = self.schema.get(name)
            if f is None or len(f.width) != 1 or f.width[0] != len(names):
                raise DatasetError(f"{where}: feature_names[{name!r}] ({len(names)} names) does not match the schema")

    def shard_header(self, num_graphs: int) -> dict[str, Any]:
        return _header(self.schema, self.task, num_graphs)


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
    clean_split_dir(out_dir, -(-manifest.count // manifest.shard_size))
    shards: list[ShardInfo] = []
    histogram: dict[int, int] = {}
    buffer: list[dict[str, np.ndarray]] = []
    it = iter(examples)

    def flush() -> None:
        k = len(shards)
        first = k * manifest.shard_size
        where = f"{manifest.task}/{manifest.split}, examples {first}..{first + len(buffer) - 1}"
        data, _ = encode_examples(manifest.schema, manifest.task, buffer, where)
        shards.append(write_shard_bytes(out_dir / shard_name(k), data, len(buffer)))
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
    done = replace(manifest, shards=tuple(shards), sizes_histogram={k: histogram[k] for k in sorted(histogram)})
    atomic_write(out_dir / MANIFEST_NAME, done.to_json())
    return done


def _sizes(f: FieldSpec, n: np.ndarray, e: np.ndarray) -> np.ndarray:
    lead = {"node": n, "edge": e, "graph": np.ones_like(n)}[f.axis]
    return (lead * f.per_item).astype(np.int64)


# --------------------------------------------------------------------------- reading


@dataclass(eq=False, repr=False)
class NaturalDataset(ShardedSplit[Example]):
    """A verified natural split in memory: a sequence of :class:`Example` in build order.

    Examples are i.i.d. draws, so a prefix ``ds[:m]`` is a random subset of size m (use it for
    training-set-size sweeps). ``feature_names[field]`` names the columns of a feature field.
    """

    ITEM: ClassVar[str] = "example"
    manifest: NaturalManifest

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

    def _build(self, s: Shard, j: int) -> Example:
        n, e = int(s.counts["num_nodes"][j]), int(s.counts["num_edges"][j])
        arrays = {f.key: self._view(s, j, f.key).reshape(f.shape(n, e)) for f in self.schema}
        return _as_example(arrays, n, e)


def load_natural(path: str | Path) -> NaturalDataset:
    """Read and verify a natural split directory (see the module docstring). Shards are decompressed within
    the memory budget alone: the manifest's sizes are in the task's own unit and edge counts are not recorded."""
    path, manifest = read_split_manifest(path, NaturalManifest, "a natural split")
    return NaturalDataset(path=path, manifest=manifest, _shards=load_shards(path, manifest))


def new_manifest(**kwargs: Any) -> NaturalManifest:
    """A manifest skeleton (no shards yet) stamped with this code's version."""
    return NaturalManifest(generator_version=nar.__version__, sizes_histogram={}, **kwargs)
