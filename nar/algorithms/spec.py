"""Algorithms as data: one spec per algorithm, one ``Field`` per input, hint and output.

Every field is described CLRS-style by ``(stage, location, type)``. Shapes of one graph's
field with ``n`` nodes (hints get a leading time axis ``T``):

=========  ===========  ======================  =======================
location   type         shape (inputs/outputs)  in-memory dtype
=========  ===========  ======================  =======================
node       scalar/mask  (n,)                    float64 / uint8
node       mask_one     (n,)                    uint8, exactly one 1
node       categorical  (n, C)                  uint8 one-hot
node       pointer      (n,)                    int64 node index
edge       scalar/mask  (n, n)                  float64 / uint8
edge       categorical  (n, n, C)               uint8 one-hot
edge       pointer      (n, n)                  int64 node index
graph      scalar/mask  ()                      float64 / uint8
graph      categorical  (C,)                    uint8 one-hot
=========  ===========  ======================  =======================

Pointers are stored as node indices (compact, and exact to compare); the model side turns
them into one-hot distributions over nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np


class Stage(StrEnum):
    INPUT = "input"
    HINT = "hint"
    OUTPUT = "output"


class Location(StrEnum):
    NODE = "node"
    EDGE = "edge"
    GRAPH = "graph"


class Type(StrEnum):
    SCALAR = "scalar"
    MASK = "mask"
    MASK_ONE = "mask_one"
    CATEGORICAL = "categorical"
    POINTER = "pointer"


# dtype of each type in memory; on disk scalars are narrowed to float32 (see nar.data.dataset).
DTYPES: dict[Type, np.dtype] = {
    Type.SCALAR: np.dtype(np.float64),
    Type.MASK: np.dtype(np.uint8),
    Type.MASK_ONE: np.dtype(np.uint8),
    Type.CATEGORICAL: np.dtype(np.uint8),
    Type.POINTER: np.dtype(np.int64),
}


#: how a scalar hint follows a pointer (``Field.along``)
ALONG_KINDS = ("path", "edge")


@dataclass(frozen=True)
class Field:
    """One named quantity of an algorithm, e.g. ``Field("pi", OUTPUT, NODE, POINTER)``."""

    name: str
    stage: Stage
    location: Location
    type: Type
    num_categories: int | None = None  # only for CATEGORICAL
    # a scalar in the units of the edge weights (weights, distances, keys): scaling every weight
    # of a graph by c scales it by c and leaves every pointer unchanged (models may normalise it).
    # A property of the model's view, not of the traces: not compared (dataset manifests omit it).
    weight_unit: bool = field(default=False, compare=False)
    # a scalar hint that a node pointer hint determines, so a model may compute it from the pointer
    # it feeds back instead of decoding it (``ModelConfig.scalars_along_pointers``): ("pi_h", "path")
    # = the pointed-to node's value at the previous step + the weight of the edge from it to this node
    # (shortest-path distances), ("pi_h", "edge") = that edge's weight alone (Prim's keys). Not compared.
    along: tuple[str, str] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if (self.type == Type.CATEGORICAL) != (self.num_categories is not None):
            raise ValueError(f"field {self.name!r}: num_categories is required for, and only for, categorical")
        if self.type == Type.POINTER and self.location == Location.GRAPH:
            raise ValueError(f"field {self.name!r}: graph-level pointers are not supported")
        if self.weight_unit and self.type != Type.SCALAR:
            raise ValueError(f"field {self.name!r}: only scalars can be in weight units")
        if self.type == Type.MASK_ONE and self.location != Location.NODE:
            raise ValueError(f"field {self.name!r}: mask_one is defined over nodes only")
        if self.along is not None and (
            self.stage != Stage.HINT or self.location != Location.NODE or not self.weight_unit
        ):
            raise ValueError(f"field {self.name!r}: only node scalar hints in weight units can follow a pointer")
        if self.along is not None and self.along[1] not in ALONG_KINDS:
            raise ValueError(f"field {self.name!r}: along kind {self.along[1]!r}; allowed: {ALONG_KINDS}")

    def shape(self, n: int) -> tuple[int, ...]:
        """Shape of this field for one graph of ``n`` nodes, without the hint time axis."""
        base = {Location.NODE: (n,), Location.EDGE: (n, n), Location.GRAPH: ()}[self.location]
        if self.type == Type.CATEGORICAL:
            assert self.num_categories is not None
            return (*base, self.num_categories)
        return base

    @property
    def dtype(self) -> np.dtype:
        return DTYPES[self.type]


@dataclass(frozen=True)
class GraphKind:
    """What kind of graph an algorithm is defined on; the sampler honours it."""

    weighted: bool = True
    directed: bool = False
    acyclic: bool = False  # DAGs (implies directed)
    needs_source: bool = True


@dataclass(frozen=True)
class AlgorithmSpec:
    name: str
    fields: tuple[Field, ...]
    graph: GraphKind = field(default_factory=GraphKind)
    version: int = 1  # bump when the trace semantics change; recorded in dataset manifests
    description: str = ""

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"spec {self.name!r}: duplicate field names {names}")
        pointers = {
            f.name
            for f in self.fields
            if f.stage == Stage.HINT and f.location == Location.NODE and f.type == Type.POINTER
        }
        for f in self.fields:
            if f.along is not None and f.along[0] not in pointers:
                raise ValueError(f"spec {self.name!r}: {f.name} follows {f.along[0]!r}, not a node pointer hint of it")

    def by_stage(self, stage: Stage) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.stage == stage)

    @property
    def inputs(self) -> tuple[Field, ...]:
        return self.by_stage(Stage.INPUT)

    @property
    def hints(self) -> tuple[Field, ...]:
        return self.by_stage(Stage.HINT)

    @property
    def outputs(self) -> tuple[Field, ...]:
        return self.by_stage(Stage.OUTPUT)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"spec {self.name!r} has no field {name!r}; fields: {[f.name for f in self.fields]}")


@dataclass
class Trajectory:
    """One graph's execution: inputs, hints (each with a leading time axis T) and outputs."""

    inputs: dict[str, np.ndarray]
    hints: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]

    @property
    def num_nodes(self) -> int:
        return int(self.inputs["pos"].shape[0])

    @property
    def length(self) -> int:
        """Number of hint steps T (the initial state and every step after it)."""
        return int(next(iter(self.hints.values())).shape[0])


class SpecError(ValueError):
    """A trajectory does not satisfy its algorithm's spec."""


def validate_trajectory(spec: AlgorithmSpec, traj: Trajectory) -> None:
    """Check every field is present with the right shape, dtype and value domain.

    Raises ``SpecError`` naming the algorithm, field and what is wrong.
    """
    n = traj.num_nodes
    lengths = set()
    for stage, group in ((Stage.INPUT, traj.inputs), (Stage.HINT, traj.hints), (Stage.OUTPUT, traj.outputs)):
        expected = {f.name for f in spec.by_stage(stage)}
        if set(group) != expected:
            raise SpecError(f"{spec.name}: {stage} fields are {sorted(group)}, the spec says {sorted(expected)}")
        for f in spec.by_stage(stage):
            value = np.asarray(group[f.name])
            shape = f.shape(n)
            if stage == Stage.HINT:
                lengths.add(value.shape[0] if value.ndim else -1)
                shape = (value.shape[0] if value.ndim else -1, *shape)
            if value.shape != shape:
                raise SpecError(f"{spec.name}: {stage} {f.name!r} has shape {value.shape}, expected {shape}")
            _check_domain(spec.name, f, value, n)
    if len(lengths) > 1:
        raise SpecError(f"{spec.name}: hints have different lengths {sorted(lengths)}")
    if lengths and min(lengths) < 1:
        raise SpecError(f"{spec.name}: a trajectory needs at least one hint step")


def _check_domain(algo: str, f: Field, value: np.ndarray, n: int) -> None:
    where = f"{algo}: {f.stage} {f.name!r} ({f.location} {f.type})"
    if f.type == Type.SCALAR:
        if not np.issubdtype(value.dtype, np.floating):
            raise SpecError(f"{where}: dtype {value.dtype}, expected a float")
        if not np.all(np.isfinite(value)):
            raise SpecError(f"{where}: contains NaN or inf")
        return
    if f.type == Type.POINTER:
        if not np.issubdtype(value.dtype, np.integer):
            raise SpecError(f"{where}: dtype {value.dtype}, expected integer node indices")
        if value.size and (value.min() < 0 or value.max() >= n):
            raise SpecError(f"{where}: node index outside [0, {n})")
        return
    if not (np.issubdtype(value.dtype, np.integer) or value.dtype == np.bool_):
        raise SpecError(f"{where}: dtype {value.dtype}, expected uint8 0/1")
    if value.size and not np.all((value == 0) | (value == 1)):
        raise SpecError(f"{where}: values must be 0 or 1")
    if f.type == Type.MASK_ONE and not np.all(value.sum(axis=-1) == 1):
        raise SpecError(f"{where}: must have exactly one 1 over the nodes")
    if f.type == Type.CATEGORICAL and not np.all(value.sum(axis=-1) == 1):
        raise SpecError(f"{where}: must be one-hot over its {f.num_categories} categories")
