"""Scores of predicted pointers against a natural split's targets (and hidden costs).

Per split (micro-averaged over nodes, or averaged over examples):

``pointer_acc``
    fraction of nodes whose predicted predecessor is the target's (CLRS's pointer score;
    every node counts, the source included: it must point to itself).
``pointer_acc_tie``
    the same, but a predecessor u of v also counts when u -> v lies on *some* shortest path
    (the hidden ``edge_optimal``): digit grids have real ties.
``path_match``
    fraction of examples whose predicted path source -> target (followed back from the
    target along the predicted pointers) is exactly the target path.
``path_optimal``
    fraction whose predicted path is valid and costs no more than the optimum (relative
    tolerance 1e-6): path_match up to ties.
``regret``
    mean over the examples with a valid predicted path of cost(predicted) / cost(optimal) - 1
    on the hidden true costs; ``invalid`` counts the examples without a valid path (a cycle,
    a non-edge pointer, or a self-pointer before the source) and ``invalid_rate`` their share.
    ``regret_all`` charges every invalid path ``INVALID_REGRET`` (for a single number).

Turn tasks (``road_turns``: the split carries ``turn_next`` / ``turn_cost`` per example): a path's
cost is the time of driving it, its segments plus the turn delays between them
(:func:`nar.natural.turns.walk_time`), and the optimum is the fastest route's time
``dist[target]``. That route may pass a node twice (around the block), which no pointer chain can
spell, so even the oracle's path (the target's own pointer chain) has a small regret on a few
examples: ``path_match`` (the exact target path) is the oracle's 100 %, ``path_optimal`` not always.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nar.natural.targets import follow_pointers
from nar.natural.turns import walk_time

REGRET_RTOL = 1e-6
INVALID_REGRET = 1.0  # regret_all charges an invalid path as twice the optimal cost
METRICS = (
    "pointer_acc",
    "pointer_acc_tie",
    "path_match",
    "path_optimal",
    "regret",
    "regret_all",
    "invalid_rate",
)


@dataclass(frozen=True)
class PathOutcome:
    valid: bool
    match: bool
    regret: float | None  # None when invalid

    @property
    def optimal(self) -> bool:
        return self.valid and self.regret is not None and self.regret <= REGRET_RTOL


def path_outcome(
    pred_pi: np.ndarray,
    true_pi: np.ndarray,
    source: int,
    target: int,
    edge_index: np.ndarray,
    edge_cost: np.ndarray,
    *,
    turn_next: np.ndarray | None = None,
    turn_cost: np.ndarray | None = None,
    best: float | None = None,
) -> PathOutcome:
    """Validity, exact match and regret of the predicted path to ``target`` of one example.

    With ``turn_next`` and ``turn_cost`` (a turn task) the walk is timed with its turns and compared
    with ``best`` (the fastest route's time; default: the target path's own time)."""
    n = len(true_pi)
    adj = np.zeros((n, n), dtype=bool)
    adj[edge_index[:, 0], edge_index[:, 1]] = True
    w = np.zeros((n, n), dtype=np.float64)
    w[edge_index[:, 0], edge_index[:, 1]] = edge_cost
    walk = follow_pointers(np.asarray(pred_pi), source, target, adj)
    truth = follow_pointers(np.asarray(true_pi), source, target, adj)
    if truth is None:
        raise ValueError("the target pointers give no valid path")
    if walk is None:
        return PathOutcome(False, False, None)

    def cost(path: list[int]) -> float:
        if turn_next is not None and turn_cost is not None:
            return walk_time(edge_index, edge_cost, turn_next, turn_cost, path)
        return float(sum(w[path[i], path[i + 1]] for i in range(len(path) - 1)))

    truth_cost = cost(truth)
    # the target path's own time, exact in float64, unless the fastest route is faster than it (a
    # stored float32 ``best`` within rounding of it is the same route)
    if best is None or abs(truth_cost - best) <= REGRET_RTOL * max(abs(best), 1.0):
        best = truth_cost
    regret = 0.0 if best == 0 else cost(walk) / best - 1.0
    return PathOutcome(True, walk == truth, regret)


def node_scores(
    pred_pi: np.ndarray, true_pi: np.ndarray, source: int, edge_index: np.ndarray, edge_optimal: np.ndarray
) -> tuple[int, int]:
    """(exactly right, right up to ties) node counts of one example."""
    pred_pi, true_pi = np.asarray(pred_pi), np.asarray(true_pi)
    n = len(true_pi)
    exact = pred_pi == true_pi
    opt = np.zeros((n, n), dtype=bool)
    opt[edge_index[:, 0], edge_index[:, 1]] = np.asarray(edge_optimal) > 0
    v = np.arange(n)
    inside = (pred_pi >= 0) & (pred_pi < n)
    tie = inside & (v != source) & (pred_pi != v) & opt[np.clip(pred_pi, 0, n - 1), v]
    return int(exact.sum()), int((exact | tie).sum())


def score_split(pred: list[np.ndarray], split) -> dict[str, float | int | None]:
    """Every metric of the module docstring for per-example local predicted pointers ``pred``
    on a :class:`~nar.transfer.graphs.FlatSplit` (or anything with the same arrays)."""
    nodes = exact = tie = 0
    matches = optimal = invalid = 0
    regrets: list[float] = []
    for i, p in enumerate(pred):
        ns, ne = split.node_start[i], split.node_start[i + 1]
        es, ee = split.edge_start[i], split.edge_start[i + 1]
        true_pi = split.pi[ns:ne]
        ei = split.edge_index[es:ee]
        src, tgt = int(split.source[i]), int(split.target[i])
        a, b = node_scores(p, true_pi, src, ei, split.edge_optimal[es:ee])
        nodes += ne - ns
        exact += a
        tie += b
        turns = getattr(split, "turn_next", None)
        if turns is not None:
            out = path_outcome(
                p,
                true_pi,
                src,
                tgt,
                ei,
                split.edge_cost[es:ee],
                turn_next=turns[i],
                turn_cost=split.turn_cost[i],
                best=float(split.best_time[i]),
            )
        else:
            out = path_outcome(p, true_pi, src, tgt, ei, split.edge_cost[es:ee])
        if not out.valid:
            invalid += 1
            continue
        regrets.append(out.regret)
        matches += out.match
        optimal += out.optimal
    count = len(pred)
    charged = regrets + [INVALID_REGRET] * invalid
    return {
        "pointer_acc": exact / nodes,
        "pointer_acc_tie": tie / nodes,
        "path_match": matches / count,
        "path_optimal": optimal / count,
        "regret": float(np.mean(regrets)) if regrets else None,
        "regret_all": float(np.mean(charged)),
        "invalid": invalid,
        "invalid_rate": invalid / count,
        "examples": count,
        "nodes": nodes,
    }
