"""Graphs drawn as the CLRS-30 reference samplers draw them, for the protocol benchmark.

CLRS's Erdős–Rényi sampler (``clrs/_src/samplers.py``, ``_random_er_graph``) differs from the
library's (``nar.data.samplers``, kind ``er``) in three ways that matter for a like-for-like score:

* an undirected edge {i, j} needs two coin flips to succeed (``mat *= mat.T``), so a graph
  drawn with probability p has edge density p², not p;
* undirected weights are ``sqrt(w_ij · w_ji + 1e-3)`` with w ~ U[0, 1);
* p is one of a list per graph: training and validation draw it from {0.1, 0.2, ..., 0.9}
  (``run.py``: ``p = 0.1 + 0.1 i``); the published test set (the CLRS-30 dataset, n = 64)
  uses the samplers' default p = 0.5 (density 0.25, about 16 neighbours per node) and
  evenly spaced positions i / n; training and validation positions are random
  (``random_pos``).

Self-loops that CLRS's coin flips put on the diagonal are not drawn: the ``adj`` input field
has self-loops on every node anyway, and none of these algorithms reads a self-loop weight.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from graph_sets import Draw, Stream, fixed_set, sampler_draw

from nar.algorithms import GraphKind, Graphs
from nar.data.batching import Batch
from nar.data.samplers import GraphSamplerConfig

#: training and validation edge-coin probabilities of CLRS's run.py
TRAIN_P = tuple(round(0.1 + 0.1 * i, 1) for i in range(9))
#: the CLRS-30 test set's (sampler default)
TEST_P = (0.5,)
#: the extra seed word of CLRS-distribution graphs (the streams and sets of clrs_protocol.json)
CLRS_STREAM = (30,)


def clrs_er_graphs(
    rng: np.random.Generator,
    batch_size: int,
    n: int,
    kind: GraphKind | None = None,
    p_choices: Sequence[float] = TRAIN_P,
    random_pos: bool = True,
) -> Graphs:
    """B undirected graphs with n nodes from CLRS's Erdős–Rényi sampler (module docstring).

    Undirected only: the protocol's algorithms (BFS, Bellman-Ford, Dijkstra, MST-Prim,
    Floyd-Warshall) all draw undirected graphs in CLRS.
    """
    kind = kind or GraphKind()
    if kind.directed or kind.acyclic:
        raise ValueError(f"clrs_er_graphs draws undirected graphs only (the CLRS protocol's algorithms), got {kind}")
    B = batch_size
    p = rng.choice(np.asarray(p_choices, dtype=float), size=(B, 1, 1))
    coin = rng.random((B, n, n)) < p  # (B, n, n) one flip per ordered pair
    adj = coin & coin.transpose(0, 2, 1) & ~np.eye(n, dtype=bool)  # both flips: density p²
    weights = rng.random((B, n, n))
    weights = np.sqrt(weights * weights.transpose(0, 2, 1) + 1e-3)  # (B, n, n) symmetric
    A = np.where(adj, weights if kind.weighted else 1.0, 0.0)
    if random_pos:
        pos = np.sort(rng.random((B, n)), axis=1)
    else:
        pos = np.broadcast_to(np.arange(n) / n, (B, n)).copy()
    source = rng.integers(0, n, size=B).astype(np.int64)
    return Graphs(A=A, adj=adj, pos=pos, source=source)


def clrs_draw(p_choices: Sequence[float] = TRAIN_P, random_pos: bool = True) -> Draw:
    """A ``graph_sets.Draw`` of CLRS's sampler: training and validation (``TRAIN_P``, random positions) or
    its published test set (``TEST_P``, ``random_pos=False``)."""
    return lambda graph, n, batch, rng: clrs_er_graphs(rng, batch, n, graph, p_choices, random_pos)


def clrs_stream(batch_size: int = 32, seed: int = 0, sizes: Sequence[int] = (4, 7, 11, 13, 16)) -> Stream:
    """CLRS's training stream: one size per batch, n in ``sizes``, p from ``TRAIN_P``, random positions."""
    return Stream(clrs_draw(), sizes, batch_size, seed, stream=CLRS_STREAM)


def clrs_set(
    algorithm: str, count: int, n: int, p_choices: Sequence[float], random_pos: bool, seed: int = 0
) -> list[Batch]:
    """``count`` graphs of size n in batches of 32: CLRS-distribution validation or test graphs."""
    return fixed_set(algorithm, clrs_draw(p_choices, random_pos), count, n, seed, stream=CLRS_STREAM)


def ood_test_sets(algorithm: str, sampler: GraphSamplerConfig | None = None) -> dict[str, list[Batch]]:
    """The benchmarks' seed-fixed out-of-distribution test sets at n = 64, by label: ours (``64``: 32
    graphs, ``64x128``: 128 more, drawn by ``nar.data.samplers`` with ``sampler``, default: the pipeline's
    Erdős–Rényi p ~ U(0.1, 0.9)) and CLRS-30's (``clrs64``: 32 graphs, ``clrs64x128``: 128 more)."""
    ours = sampler_draw(sampler or GraphSamplerConfig())
    return {
        "64": fixed_set(algorithm, ours, 32, 64, seed=2),
        "64x128": fixed_set(algorithm, ours, 128, 64, seed=3),
        "clrs64": clrs_set(algorithm, 32, 64, TEST_P, random_pos=False, seed=3),
        "clrs64x128": clrs_set(algorithm, 128, 64, TEST_P, random_pos=False, seed=4),
    }
