"""Batches of random CLRS-style graphs made on the fly, for tests, benchmarks and quick runs.

A small stand-in for ``nar.data`` (seeded samplers and on-disk datasets): Erdős–Rényi graphs
with p ~ U(0.1, 0.9) per graph, weights U[0, 1), a uniform random source and sorted uniform
positions, directed or acyclic when the algorithm's ``GraphKind`` asks for it. Batches have
one size each (CLRS draws a size per batch), so no node padding is spent on training.

``OnlineBatches`` is a pure function of (algorithm, step): a run resumed from a checkpoint
sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nar.algorithms import ALGORITHMS, GraphKind, Graphs
from nar.algorithms.spec import AlgorithmSpec, Field, Location, Stage, Trajectory, Type
from nar.data.batching import Batch, collate


def er_graphs(
    rng: np.random.Generator,
    batch_size: int,
    n: int,
    kind: GraphKind | None = None,
    p_range: tuple[float, float] = (0.1, 0.9),
) -> Graphs:
    """B Erdős–Rényi graphs with n nodes, one edge probability per graph."""
    kind = kind or GraphKind()
    B = batch_size
    p = rng.uniform(*p_range, size=(B, 1, 1))
    coin = rng.random((B, n, n)) < p
    weights = rng.random((B, n, n))
    off = ~np.eye(n, dtype=bool)
    if kind.acyclic:
        upper = np.triu(coin, k=1)
        perm = np.argsort(rng.random((B, n)), axis=1)
        idx = np.arange(B)[:, None, None]
        adj = np.zeros_like(upper)
        adj[idx, perm[:, :, None], perm[:, None, :]] = upper
    elif kind.directed:
        adj = coin & off
    else:
        upper = np.triu(coin, k=1)
        adj = upper | upper.transpose(0, 2, 1)
        weights = np.triu(weights, k=1)
        weights = weights + weights.transpose(0, 2, 1)
    A = np.where(adj, weights if kind.weighted else 1.0, 0.0)
    pos = np.sort(rng.random((B, n)), axis=1)
    source = rng.integers(0, n, size=B)
    return Graphs(A=A, adj=adj, pos=pos, source=source.astype(np.int64))


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
        key = sum(ord(c) * 31**i for i, c in enumerate(algorithm)) % (2**31)
        rng = np.random.default_rng([self.seed, key, step])
        n = self.sizes[int(rng.integers(len(self.sizes)))]
        return make_batch(algorithm, rng, self.batch_size, n)


def fixed_batches(algorithm: str, count: int, n: int, batch_size: int = 32, seed: int = 0) -> list[Batch]:
    """``count`` graphs of size n, in batches: a validation or test set."""
    rng = np.random.default_rng([seed, n, count])
    out = []
    for start in range(0, count, batch_size):
        out.append(make_batch(algorithm, rng, min(batch_size, count - start), n))
    return out


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
