"""The scale suite: graphs users have (grids, meshes, road networks, long paths) at 64 to 1,024+ nodes,
their exact answers and the scoring of predicted pointers, built independently of ``nar.data`` and
``nar.algorithms`` (networkx and scipy only) so that it measures generalisation."""

from nar.scale.reference import (
    ALGORITHMS,
    Reference,
    applicable,
    exact,
    exact_match_fraction,
    pointer_accuracy,
    pointer_correct,
)
from nar.scale.suite import FAMILIES, FIXED_SIZE, SIZES, SuiteGraph, graph_rng, suite

__all__ = [
    "ALGORITHMS",
    "FAMILIES",
    "FIXED_SIZE",
    "SIZES",
    "Reference",
    "SuiteGraph",
    "applicable",
    "exact",
    "exact_match_fraction",
    "graph_rng",
    "pointer_accuracy",
    "pointer_correct",
    "suite",
]
