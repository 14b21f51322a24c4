"""Classical algorithms that record their intermediate steps (hints), one module each.

``ALGORITHMS`` maps a name to its :class:`~nar.algorithms.base.Algorithm` (spec + pure
numpy implementation). ``execute`` runs one on a single graph.
"""

from __future__ import annotations

import numpy as np

from nar.algorithms import bellman_ford, bfs, dfs, dijkstra, floyd_warshall, mst_prim, topological_sort
from nar.algorithms.base import Algorithm, BatchTrace, Graphs
from nar.algorithms.spec import (
    AlgorithmSpec,
    Field,
    GraphKind,
    Location,
    SpecError,
    Stage,
    Trajectory,
    Type,
    validate_trajectory,
)

ALGORITHMS: dict[str, Algorithm] = {
    m.SPEC.name: Algorithm(spec=m.SPEC, run=m.run)
    for m in (bfs, dfs, topological_sort, bellman_ford, dijkstra, mst_prim, floyd_warshall)
}


def get_algorithm(name: str) -> Algorithm:
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise KeyError(f"unknown algorithm {name!r}; available: {sorted(ALGORITHMS)}") from None


def execute(name: str, A: np.ndarray, adj: np.ndarray | None = None, source: int = 0) -> Trajectory:
    """Run algorithm ``name`` on one graph given by its weight matrix (and adjacency)."""
    return get_algorithm(name).run(Graphs.single(A, adj, source)).trajectory(0)


__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "AlgorithmSpec",
    "BatchTrace",
    "Field",
    "GraphKind",
    "Graphs",
    "Location",
    "SpecError",
    "Stage",
    "Trajectory",
    "Type",
    "execute",
    "get_algorithm",
    "validate_trajectory",
]
