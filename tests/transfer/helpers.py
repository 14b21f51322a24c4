"""Hand-made examples for exact tests."""

from __future__ import annotations

import numpy as np

from nar.natural.store import Example
from nar.natural.targets import shortest_path_targets


def make_example(n, edges, costs, source, target, pi=None, node_features=None, edge_features=None):
    """An Example of ``n`` nodes with directed ``edges`` (u, v) and hidden ``costs``.

    ``pi`` defaults to Bellman-Ford's on the costs; ``edge_optimal`` and ``dist`` always come
    from the costs.
    """
    ei = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    order = np.lexsort((ei[:, 1], ei[:, 0]))
    ei = ei[order]
    w = np.asarray(costs, dtype=np.float32)[order]
    t = shortest_path_targets(n, ei, w, source, target, "bellman_ford")
    if pi is None:
        pi = t["pi"]
    pi = np.asarray(pi, dtype=np.int64)
    inputs = {
        "node_features": np.zeros((n, 64), np.float32) if node_features is None else node_features,
        "edge_index": ei,
        "source": np.array(source),
        "target": np.array(target),
    }
    if edge_features is not None:
        inputs["edge_features"] = np.asarray(edge_features, dtype=np.float32)[order]
    return Example(
        num_nodes=n,
        num_edges=len(ei),
        inputs=inputs,
        targets={"pi": pi, "path": t["path"]},
        hidden={"edge_cost": w, "dist": t["dist"].astype(np.float32), "edge_optimal": t["edge_optimal"]},
        meta={},
    )


# 0 -> 1 -> 2 -> 3 with a tie 0 -> 2 (cost 2 = 1 + 1) and a detour 1 -> 3 (cost 5)
TIE_EDGES = [(0, 1), (1, 2), (0, 2), (2, 3), (1, 3)]
TIE_COSTS = [1.0, 1.0, 2.0, 1.0, 5.0]
TIE_PI = [0, 0, 1, 2]


def tie_example():
    return make_example(4, TIE_EDGES, TIE_COSTS, source=0, target=3, pi=TIE_PI)
