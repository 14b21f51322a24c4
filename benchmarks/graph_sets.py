"""Seeded training streams and fixed test sets of algorithm traces, for the benchmarks.

Graphs come from a ``draw(graph, n, batch, rng) -> Graphs`` function: :func:`sampler_draw` wraps
``nar.data.samplers.sample_graphs`` with a ``GraphSamplerConfig`` (the pipeline's sampler, e.g. the
``generate.sampler`` section of a params file); ``clrs_graphs.clrs_draw`` draws as CLRS-30 does.
Each batch has one node count (no padding spent on training).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from nar.algorithms import ALGORITHMS, GraphKind, Graphs
from nar.data.batching import Batch, collate
from nar.data.samplers import GraphSamplerConfig, sample_graphs

#: (the algorithm's graph kind, node count, batch size, generator) -> that many graphs
Draw = Callable[[GraphKind, int, int, np.random.Generator], Graphs]


def sampler_draw(config: GraphSamplerConfig) -> Draw:
    """Graphs drawn by the library's sampler with ``config``."""
    return lambda graph, n, batch, rng: sample_graphs(graph, config, n, batch, rng)


def traces(algorithm: str, draw: Draw, rng: np.random.Generator, batch_size: int, n: int) -> Batch:
    """``batch_size`` graphs of ``n`` nodes, run through the algorithm and collated."""
    algo = ALGORITHMS[algorithm]
    return collate(algo.spec, algo.run(draw(algo.spec.graph, n, batch_size, rng)).trajectories())


def algorithm_key(algorithm: str) -> int:
    """A stable number per algorithm name (the key the runs in benchmarks/results/ were drawn with)."""
    return sum(ord(c) * 31**i for i, c in enumerate(algorithm)) % (2**31)


class Stream:
    """``(algorithm, step) -> Batch``: fresh graphs every step, the node count uniform over ``sizes``.

    A pure function of (seed, algorithm, step, stream), so a resumed run sees the batches an
    uninterrupted one would; ``stream`` (extra seed words) keeps two streams of one seed apart.
    """

    def __init__(
        self, draw: Draw, sizes: Sequence[int], batch_size: int, seed: int, stream: tuple[int, ...] = ()
    ) -> None:
        self.draw, self.sizes, self.batch_size = draw, tuple(int(s) for s in sizes), batch_size
        self.seed, self.stream = seed, stream

    def __call__(self, algorithm: str, step: int) -> Batch:
        rng = np.random.default_rng([self.seed, algorithm_key(algorithm), step, *self.stream])
        n = self.sizes[int(rng.integers(len(self.sizes)))]
        return traces(algorithm, self.draw, rng, self.batch_size, n)


def fixed_set(
    algorithm: str, draw: Draw, count: int, n: int, seed: int, batch_size: int = 32, stream: tuple[int, ...] = ()
) -> list[Batch]:
    """``count`` graphs of ``n`` nodes in batches: a seed-fixed validation or test set."""
    rng = np.random.default_rng([seed, n, count, *stream])
    return [traces(algorithm, draw, rng, min(batch_size, count - start), n) for start in range(0, count, batch_size)]
