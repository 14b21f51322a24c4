"""Random graph batches for the algorithm tests, independent of ``nar.data``'s samplers.

``random_graphs(rng, n, batch, kind)`` draws ``batch`` graphs of ``n`` nodes that honour a
:class:`GraphKind`, each with its own edge probability (empty, sparse or dense, so many are
disconnected) and weight law (uniform in [0, 1), or tied values from {0.25, 0.5, 1.0}, or
{0, 0.5, 1.0} with zero-weight edges). ``graph_suite(seed, kind)`` covers n = 1 .. 64.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from scipy.sparse.csgraph import csgraph_from_dense, shortest_path

from nar.algorithms.base import Graphs
from nar.algorithms.spec import GraphKind

MAX_NODES = 64
PER_SIZE = 16  # graphs per size: 64 sizes x 16 = 1,024 graphs per suite

TIE_WEIGHTS = np.array([0.25, 0.5, 1.0])
ZERO_TIE_WEIGHTS = np.array([0.0, 0.5, 1.0])


def random_graphs(rng: np.random.Generator, n: int, batch: int, kind: GraphKind) -> Graphs:
    # Edge probability per graph: a quarter empty-ish/sparse around 1/n, a quarter ~2/n, the rest dense-ish.
    scale = rng.choice([0.5 / max(n, 1), 2.0 / max(n, 1), 0.3, 0.8], size=batch)
    p = np.clip(scale * rng.uniform(0.5, 1.5, size=batch), 0.0, 1.0)[:, None, None]
    draw = rng.random((batch, n, n)) < p  # (B, n, n)
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    if kind.acyclic:
        # Orient edges forward along a random order of the nodes, so node index is no hint.
        rank = np.argsort(rng.random((batch, n)), axis=1)
        adj = draw & (rank[:, :, None] < rank[:, None, :])
    elif kind.directed:
        adj = draw & ~np.eye(n, dtype=bool)
    else:
        adj = draw & upper
        adj = adj | adj.transpose(0, 2, 1)

    if kind.weighted:
        law = rng.integers(0, 3, size=batch)[:, None, None]  # 0 uniform, 1 ties, 2 ties with zeros
        W = np.where(
            law == 0,
            rng.random((batch, n, n)),
            np.where(law == 1, rng.choice(TIE_WEIGHTS, (batch, n, n)), rng.choice(ZERO_TIE_WEIGHTS, (batch, n, n))),
        )
        if not kind.directed:
            W = np.where(upper, W, W.transpose(0, 2, 1))  # one weight per undirected edge
        A = np.where(adj, W, 0.0)
    else:
        A = adj.astype(np.float64)
    pos = np.sort(rng.random((batch, n)), axis=1)
    source = rng.integers(0, n, size=batch)
    return Graphs(A=A, adj=adj, pos=pos, source=source)


def graph_suite(seed: int, kind: GraphKind, max_nodes: int = MAX_NODES, per_size: int = PER_SIZE) -> Iterator[Graphs]:
    """One batch of ``per_size`` graphs for every n in 1 .. max_nodes."""
    rng = np.random.default_rng(seed)
    for n in range(1, max_nodes + 1):
        yield random_graphs(rng, n, per_size, kind)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# --- independent references and checks shared by the per-algorithm tests -------------------


def csgraph(A: np.ndarray, adj: np.ndarray):
    """One graph as a scipy sparse graph; explicit zeros keep zero-weight edges."""
    return csgraph_from_dense(np.where(adj, A, np.inf), null_value=np.inf)


def distances(A: np.ndarray, adj: np.ndarray, source: int | None = None, unweighted: bool = False) -> np.ndarray:
    """scipy shortest-path distances (inf where unreachable), from ``source`` or all pairs."""
    return shortest_path(csgraph(A, adj), directed=True, unweighted=unweighted, indices=source)


def assert_rooted_tree(pi: np.ndarray, root: int, members: np.ndarray) -> None:
    """Following ``pi`` from every member reaches ``root``; every other node points to itself."""
    n = len(pi)
    assert pi[root] == root
    assert np.array_equal(pi[~members], np.flatnonzero(~members))
    x = np.flatnonzero(members)
    for _ in range(max(n, 1).bit_length()):
        x = pi[x]
        pi = pi[pi]  # pointer doubling: pi now jumps twice as far
    assert np.all(x == root), "a pointer chain does not lead to the root"


def assert_shortest_path_pointers(
    pi: np.ndarray, dist: np.ndarray, A: np.ndarray, adj: np.ndarray, source: int
) -> None:
    """``pi`` is a shortest-path tree from ``source`` for the true distances ``dist``."""
    reach = np.isfinite(dist)
    assert_rooted_tree(pi, source, reach)
    v = np.flatnonzero(reach)
    v = v[v != source]
    u = pi[v]
    assert adj[u, v].all(), "a predecessor pointer is not an edge"
    np.testing.assert_allclose(dist[u] + A[u, v], dist[v], rtol=0, atol=1e-9)


def assert_padding_repeats_final_state(trace) -> None:
    for name, h in trace.hints.items():
        for b, t in enumerate(trace.lengths):
            assert (h[b, t - 1 :] == h[b, t - 1]).all(), f"{name}: padding of graph {b} changes"
