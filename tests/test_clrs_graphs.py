"""benchmarks/clrs_graphs.py draws graphs as CLRS-30's samplers do (the protocol benchmark's
like-for-like test set). Figures checked against the reference sampler (clrs 2.0,
``build_sampler("bellman_ford", length=64)``: edge density 0.251, weight quantiles
0.147 / 0.438 / 0.770 at 10 / 50 / 90 %)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from nar.algorithms import GraphKind

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def clrs() -> Iterator[ModuleType]:
    """benchmarks/clrs_graphs.py, imported as its scripts import it (benchmarks/ first on the path)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))
        import clrs_graphs

        yield clrs_graphs


def test_undirected_test_distribution_matches_clrs_reference(clrs: ModuleType) -> None:
    g = clrs.clrs_er_graphs(np.random.default_rng(0), 64, 64, GraphKind(weighted=True), clrs.TEST_P, random_pos=False)
    off = ~np.eye(64, dtype=bool)
    assert (g.adj == g.adj.transpose(0, 2, 1)).all() and not g.adj[:, ~off].any()
    assert np.array_equal(g.A, g.A.transpose(0, 2, 1))
    assert abs(g.adj[:, off].mean() - 0.25) < 0.005  # two coin flips of p = 0.5 per edge
    w = g.A[g.adj]
    assert w.min() >= np.sqrt(1e-3) and w.max() < np.sqrt(1 + 1e-3)
    q10, q50, q90 = np.quantile(w, [0.1, 0.5, 0.9])
    assert abs(q10 - 0.147) < 0.01 and abs(q50 - 0.438) < 0.01 and abs(q90 - 0.770) < 0.01
    assert np.array_equal(g.pos, np.broadcast_to(np.arange(64) / 64, (64, 64)))


def test_training_graphs_draw_p_per_graph_and_random_positions(clrs: ModuleType) -> None:
    g = clrs.clrs_er_graphs(np.random.default_rng(1), 400, 40, GraphKind(weighted=True), clrs.TRAIN_P, random_pos=True)
    off = ~np.eye(40, dtype=bool)
    density = g.adj[:, off].mean(axis=1)  # (B,)
    squares = np.array(clrs.TRAIN_P) ** 2
    nearest = np.abs(density[:, None] - squares[None, :]).min(axis=1)
    assert nearest.max() < 0.06  # every graph sits at one of the p² levels
    assert density.min() < 0.03 and density.max() > 0.7  # both ends of the range are drawn
    assert (np.diff(g.pos, axis=1) > 0).all() and g.pos.min() >= 0 and g.pos.max() < 1


@pytest.mark.parametrize("kind", [GraphKind(directed=True), GraphKind(directed=True, acyclic=True)])
def test_directed_kinds_are_refused(clrs: ModuleType, kind: GraphKind) -> None:
    with pytest.raises(ValueError, match="undirected graphs only"):
        clrs.clrs_er_graphs(np.random.default_rng(2), 8, 12, kind, clrs.TEST_P)


def test_streams_are_pure_functions_of_seed_and_step(clrs: ModuleType) -> None:
    a, b = clrs.clrs_stream(seed=3), clrs.clrs_stream(seed=3)
    x, y = a("bellman_ford", 17), b("bellman_ford", 17)
    assert torch.equal(x.inputs["A"], y.inputs["A"]) and x.max_nodes in (4, 7, 11, 13, 16)
    assert not torch.equal(a("bellman_ford", 18).inputs["pos"][:1, :4], x.inputs["pos"][:1, :4])
    t1 = clrs.clrs_set("bfs", 40, 16, clrs.TEST_P, random_pos=False, seed=5)
    t2 = clrs.clrs_set("bfs", 40, 16, clrs.TEST_P, random_pos=False, seed=5)
    assert [b.batch_size for b in t1] == [32, 8]
    assert all(torch.equal(u.inputs["adj"], v.inputs["adj"]) for u, v in zip(t1, t2, strict=True))
