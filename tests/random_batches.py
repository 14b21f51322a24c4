"""Random batches for tests: graphs drawn by the library's sampler, and made-up trajectories.

``er_graphs``, ``make_batch``, ``OnlineBatches`` and ``fixed_batches`` draw Erdős–Rényi graphs
through :func:`nar.data.samplers.sample_graphs` (p ~ U(0.1, 0.9) per graph unless ``p_range`` says
otherwise, the algorithm's ``GraphKind``), one node count per batch. ``OnlineBatches`` is a pure
function of (algorithm, step), so a resumed training run sees the batches an uninterrupted one saw.
``all_types_spec`` / ``random_batch`` cover every (stage, location, type) the models support.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nar.algorithms import ALGORITHMS, GraphKind, Graphs
from nar.algorithms.spec import AlgorithmSpec, Field, Location, Stage, Trajectory, Type
from nar.data.batching import Batch, collate
from nar.data.samplers import GraphSamplerConfig, sample_graphs


def er_graphs(
    rng: np.random.Generator,
    batch_size: int,
    n: int,
    kind: GraphKind | None = None,
    p_range: tuple[float, float] = (0.1, 0.9),
) -> Graphs:
    """``batch_size`` Erdős–Rényi graphs with ``n`` nodes, one edge probability per graph."""
    return sample_graphs(kind or GraphKind(), GraphSamplerConfig(kind="er", p_range=p_range), n, batch_size, rng)


def make_batch(algorithm: str, rng: np.random.Generator, batch_size: int, n: int) -> Batch:
    algo = ALGORITHMS[algorithm]
    trace = algo.run(er_graphs(rng, batch_size, n, algo.spec.graph))
    return collate(algo.spec, trace.trajectories())


class OnlineBatches:
    """``batches(algorithm, step) -> Batch``: a fresh batch per step, one size per batch."""

    def __init__(self, sizes: Sequence[int] = (4, 7, 11, 13, 16), batch_size: int = 32, seed: int = 0) -> None:
        self.sizes = tuple(int(s) for s in sizes)
        self.batch_size = batch_size
        self.seed = seed

    def __call__(self, algorithm: str, step: int) -> Batch:
        rng = np.random.default_rng([self.seed, sorted(ALGORITHMS).index(algorithm), step])
        n = self.sizes[int(rng.integers(len(self.sizes)))]
        return make_batch(algorithm, rng, self.batch_size, n)


def fixed_batches(algorithm: str, count: int, n: int, batch_size: int = 32, seed: int = 0) -> list[Batch]:
    """``count`` graphs of size n, in batches: a validation or test set."""
    rng = np.random.default_rng([seed, n, count])
    return [make_batch(algorithm, rng, min(batch_size, count - start), n) for start in range(0, count, batch_size)]


def all_types_spec(name: str = "all_types") -> AlgorithmSpec:
    """A made-up spec with every (stage, location, type) the models support, for tests."""
    I, H, O = Stage.INPUT, Stage.HINT, Stage.OUTPUT
    N, E, G = Location.NODE, Location.EDGE, Location.GRAPH
    S, M, M1, C, P = Type.SCALAR, Type.MASK, Type.MASK_ONE, Type.CATEGORICAL, Type.POINTER
    spec = [
        ("pos", I, N, S), ("s", I, N, M1), ("A", I, E, S), ("adj", I, E, M), ("cat_in", I, N, C),
        ("ptr_in", I, N, P), ("ecat_in", I, E, C), ("eptr_in", I, E, P), ("gs_in", I, G, S), ("gcat_in", I, G, C),
        ("h_ns", H, N, S), ("h_nm", H, N, M), ("h_n1", H, N, M1), ("h_nc", H, N, C), ("h_np", H, N, P),
        ("h_es", H, E, S), ("h_em", H, E, M), ("h_ec", H, E, C), ("h_ep", H, E, P),
        ("h_gs", H, G, S), ("h_gm", H, G, M), ("h_gc", H, G, C),
        ("o_np", O, N, P), ("o_nm", O, N, M), ("o_n1", O, N, M1), ("o_nc", O, N, C), ("o_ns", O, N, S),
        ("o_ep", O, E, P), ("o_em", O, E, M), ("o_es", O, E, S), ("o_ec", O, E, C),
        ("o_gs", O, G, S), ("o_gm", O, G, M), ("o_gc", O, G, C),
    ]  # fmt: skip
    return AlgorithmSpec(
        name=name,
        fields=tuple(Field(n, st, loc, t, 3 if t == Type.CATEGORICAL else None) for n, st, loc, t in spec),
    )


def random_trajectory(spec: AlgorithmSpec, rng: np.random.Generator, n: int, length: int) -> Trajectory:
    """Random values in every field's domain (an undirected ``adj`` with self-loops)."""

    def value(f: Field) -> np.ndarray:
        shape = f.shape(n)
        if f.name == "adj":
            a = np.triu(rng.random((n, n)) < 0.5, 1)
            return (a | a.T | np.eye(n, dtype=bool)).astype(np.uint8)
        if f.type == Type.SCALAR:
            return rng.random(shape)
        if f.type == Type.MASK:
            return rng.integers(0, 2, shape).astype(np.uint8)
        if f.type == Type.POINTER:
            return rng.integers(0, n, shape).astype(np.int64)
        k = n if f.type == Type.MASK_ONE else f.num_categories
        base = shape if f.type == Type.MASK_ONE else shape[:-1]
        idx = rng.integers(0, k, base[:-1] if f.type == Type.MASK_ONE else base)
        return np.eye(k, dtype=np.uint8)[idx]

    return Trajectory(
        inputs={f.name: value(f) for f in spec.inputs},
        hints={f.name: np.stack([value(f) for _ in range(length)]) for f in spec.hints},
        outputs={f.name: value(f) for f in spec.outputs},
    )


def random_batch(spec: AlgorithmSpec, sizes: Sequence[int], lengths: Sequence[int], seed: int = 0) -> Batch:
    """A padded batch of random trajectories with the given node counts and hint lengths."""
    rng = np.random.default_rng(seed)
    return collate(spec, [random_trajectory(spec, rng, n, t) for n, t in zip(sizes, lengths, strict=True)])
