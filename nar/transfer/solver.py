"""The exact shortest-path solver on a flat batch, and its blackbox differentiation.

``solve_tree(costs, b)``: Dijkstra (scipy) from every graph's source on the block-diagonal
graph of the batch with the given edge costs; returns the predecessor of every node (the
source points to itself) and the solution's encoding y (E,) below. With continuous predicted
costs ties have probability zero, so the solver's tie-breaking does not matter for the
bottleneck (the oracle uses the dataset's own algorithm,
:func:`nar.natural.targets.oracle_targets`, which reproduces the targets exactly).

Encoding. Blackbox differentiation needs the solver to be ``y(w) = argmin_y <w, y>``. The
0/1 indicator of tree edges does not qualify: the shortest-path tree is not the spanning
arborescence of least total weight (with per-cell costs every arborescence even has the
same total, so that gradient is identically zero). The right encoding is the edge *usage*
y_e = the number of nodes whose tree path from the source runs through e (= the size of the
subtree below e; 0 off the tree): <w, y> = sum_v dist(v), which the shortest-path tree
minimises, since it minimises every dist(v) at once. It is the sum of the s -> t path
indicators of Vlastelica et al.'s shortest-path experiments over all targets t.

Blackbox differentiation (Vlastelica et al., "Differentiation of Blackbox Combinatorial
Solvers", ICLR 2020). The solver's output is piecewise constant in w, so its true gradient
is zero almost everywhere. The backward pass returns the gradient of a piecewise-linear
interpolation instead::

    forward:   y = solver(w)
    backward:  w' = w + λ' · dL/dy;   y' = solver(w');   dL/dw = (y' - y) / λ'

Loss (documented choice): the L1 distance between predicted and true usages divided by the
number of nodes V in the batch, L = sum_e |y_e - y*_e| / V, the Hamming distance of the
path indicators summed over all targets. Its gradient is sign(y - y*) / V, so λ' = λ · V
makes the perturbation ±λ per edge: λ is in units of the predicted costs, as in the paper.
An edge the true tree uses more than the predicted one (dL/dy = -1/V) gets a lower cost in
w', the perturbed tree uses it more (y' > y), and its cost gets a positive gradient: gradient
descent lowers the cost of under-used true edges and raises the cost of over-used ones.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import dijkstra
from torch import Tensor

from nar.transfer.graphs import FlatBatch, depths, subtree_sizes


def solve_pointers(costs: np.ndarray, src: np.ndarray, dst: np.ndarray, sources: np.ndarray, size: int) -> np.ndarray:
    """(size,) predecessor of each node on shortest paths from ``sources`` (block-diagonal graph).

    Each node is reached only from its own graph's source (graphs share no edges), so one
    multi-source Dijkstra with ``min_only`` solves every graph at once. Unreached nodes and
    the sources point to themselves.
    """
    w = np.asarray(costs, dtype=np.float64)
    if w.size and not (np.isfinite(w).all() and w.min() > 0):
        raise ValueError("solver costs must be finite and > 0")
    graph = sp.csr_matrix((w, (src, dst)), shape=(size, size))
    _, pred, _ = dijkstra(graph, directed=True, indices=sources, return_predecessors=True, min_only=True)
    pi = np.where(pred < 0, np.arange(size), pred).astype(np.int64)
    pi[sources] = sources
    return pi


def usage(pi: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(E,) float32: for each edge u -> v, the size of v's subtree if pi[v] == u, else 0."""
    return np.where(pi[dst] == src, subtree_sizes(pi)[dst], 0).astype(np.float32)


def solve_tree(costs: Tensor, b: FlatBatch) -> tuple[Tensor, Tensor]:
    """(pi (V,), edge usage y (E,)) for edge costs (E,) on batch ``b`` (no gradient)."""
    src = b.edge_src.cpu().numpy()
    dst = b.edge_dst.cpu().numpy()
    pi = solve_pointers(costs.detach().cpu().numpy(), src, dst, b.source.cpu().numpy(), b.total_nodes)
    y = usage(pi, src, dst)
    return torch.from_numpy(pi).to(costs.device), torch.from_numpy(y).to(costs.device)


class BlackboxShortestPathTree(torch.autograd.Function):
    """y = solver(w) forward; (solver(w + λ' g) - y) / λ' backward with λ' = λ · scale (module docstring)."""

    @staticmethod
    def forward(ctx, costs: Tensor, lam: float, scale: float, b: FlatBatch) -> Tensor:
        _, y = solve_tree(costs, b)
        ctx.save_for_backward(costs, y)
        ctx.lam_eff, ctx.batch = lam * scale, b
        return y

    @staticmethod
    def backward(ctx, grad_y: Tensor):
        costs, y = ctx.saved_tensors
        perturbed = (costs + ctx.lam_eff * grad_y).clamp_min(1e-6)
        _, y_lam = solve_tree(perturbed, ctx.batch)
        return (y_lam - y) / ctx.lam_eff, None, None, None


def blackbox_tree(costs: Tensor, b: FlatBatch, lam: float) -> Tensor:
    """The edge usage (E,) of the shortest-path trees under ``costs``, differentiable by blackbox
    interpolation; the loss gradient (±1/V per edge for :func:`usage_loss`) is rescaled by V."""
    return BlackboxShortestPathTree.apply(costs, lam, float(b.total_nodes), b)


def usage_loss(y: Tensor, y_true: Tensor, num_nodes: int) -> Tensor:
    """sum_e |y_e - y*_e| / V: the Hamming distance of the paths to every node, per node."""
    return (y - y_true).abs().sum() / num_nodes


def along_true_tree(pi: Tensor, step: Tensor) -> Tensor:
    """(V, ...) the sum of ``step`` (V, ...) over each node's pointer chain ``pi`` (V,), its own step included
    and the root's (pi[r] = r) left out, so ``step`` of a root must be 0. Linear in ``step`` (differentiable)."""
    total = torch.zeros_like(step)
    for _ in range(int(depths(pi.cpu().numpy()).max(initial=0))):  # after k rounds exact to depth k
        total = total[pi] + step
    return total


def tree_hinge_loss(costs: Tensor, b: FlatBatch, margin: float) -> Tensor:
    """Bellman's optimality conditions of the true tree under the predicted costs, as a hinge per edge.

    The true tree ``b.pi`` is a shortest-path tree of costs c exactly when no edge u -> v offers v a
    shorter path than its tree path: d*_v <= d*_u + c_uv for every edge, where d* (V,) sums c along the
    true tree's paths (linear in c). The loss charges each violation, with a margin (in the graph's mean
    cost, as costs are normalised) on the edges off the tree::

        L = sum over edges u -> v off the true tree, u reached, of ReLU(d*_v - d*_u - c_uv + margin) / V

    Convex in c, zero exactly when the true tree wins every comparison by the margin, and its gradient
    names the edges that break it (where blackbox differentiation only sees the solver's answer move).
    A structured hinge of inverse optimisation; the tree edges satisfy it with equality and are left out.
    """
    E, V = b.total_edges, b.total_nodes
    pi = b.pi  # (V,) global true predecessors; the source (and any unreached node) points to itself
    parent_edge = b.pi_pair  # (V,) the pair pi[v] -> v: an edge index < E, or a self-loop pair >= E
    on_edge = parent_edge < E
    c_in = torch.where(on_edge, costs[parent_edge.clamp_max(E - 1)], costs.new_zeros(()))  # (V,)
    d = along_true_tree(pi, c_in)
    src, dst = b.edge_src, b.edge_dst
    reached = on_edge | b.is_source  # (V,)
    off_tree = (pi[dst] != src) & reached[src]  # (E,)
    slack = d[dst] - d[src] - costs + margin  # (E,) > 0: the edge beats (or nearly beats) v's tree path
    return (slack.relu() * off_tree).sum() / V


# --------------------------------------------------------------------------- turn costs (bottleneck_turns)
#
# The same blackbox scheme on the exact edge-based solver (nar.natural.turns): costs w = (segment
# costs (E,), turn costs (T,) of the used slots e -> f), states = segments, one virtual start per
# graph. Encoding y (in w's space) from the node pointers pi: a node v whose pointer is the edge
# f = pi[v] -> v charges |subtree(v)| to f, and to the turn e -> f where e is pi[u]'s edge into
# u = pi[v] (u not the source), so <w, y> = sum_v (time of v's pointer chain), which the solver's
# tree minimises exactly whenever every fastest route is its pointer chain (targets: all but a few
# routes that pass a node twice). The loss and λ are the bottleneck's.


def solve_turn_pointers(
    seg: np.ndarray,
    turn: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    turn_e: np.ndarray,
    turn_f: np.ndarray,
    sources: np.ndarray,
    size: int,
) -> np.ndarray:
    """(size,) predecessor of each node on its fastest route from its graph's source (turns priced).

    Per node, the arrival segment of least time (ties: the lowest segment index), pi = its tail,
    as :func:`nar.natural.turns.edge_based_tree`; unreached nodes and the sources point to themselves."""
    seg = np.asarray(seg, dtype=np.float64)
    turn = np.asarray(turn, dtype=np.float64)
    if seg.size and not (np.isfinite(seg).all() and seg.min() > 0):
        raise ValueError("segment costs must be finite and > 0")
    if turn.size and not (np.isfinite(turn).all() and turn.min() >= 0):
        raise ValueError("turn costs must be finite and >= 0")
    E, B = len(seg), len(sources)
    first = np.flatnonzero(np.isin(src, sources))  # segments leaving a source
    start = E + np.searchsorted(np.sort(sources), src[first])  # the virtual start of that graph
    order = np.argsort(sources)
    start = E + order[start - E]
    rows = np.concatenate([start, turn_e])
    cols = np.concatenate([first, turn_f])
    # the scipy graph drops explicit zeros: a free turn costs a hair (1e-12 of a mean segment) instead
    vals = np.concatenate([seg[first], np.maximum(turn, 1e-12) + seg[turn_f]])
    graph = sp.csr_matrix((vals, (rows, cols)), shape=(E + B, E + B))
    dist = dijkstra(graph, directed=True, indices=np.arange(E, E + B), min_only=True)[:E]
    pi = np.arange(size, dtype=np.int64)
    reached = np.isfinite(dist)
    idx = np.flatnonzero(reached)
    by_time = idx[np.lexsort((idx, dist[idx]))]
    nodes, at = np.unique(dst[by_time], return_index=True)
    pi[nodes] = src[by_time[at]]
    pi[sources] = sources
    return pi


def turn_usage(
    pi: np.ndarray, src: np.ndarray, dst: np.ndarray, turn_e: np.ndarray, turn_f: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """((E,), (T,)) float32 usage of each segment and turn slot by the pointer chains of ``pi``."""
    pi = np.asarray(pi, dtype=np.int64)
    sizes = subtree_sizes(pi)
    tree = pi[dst] == src  # (E,) f = pi[v] -> v
    edge_into = np.full(size, -1, dtype=np.int64)
    edge_into[dst[tree]] = np.flatnonzero(tree)
    y_seg = np.where(tree, sizes[dst], 0).astype(np.float32)
    used = tree[turn_f] & (edge_into[src[turn_f]] == turn_e)
    y_turn = np.where(used, sizes[dst[turn_f]], 0).astype(np.float32)
    return y_seg, y_turn


def solve_turn_tree(seg: Tensor, turn: Tensor, b: FlatBatch) -> tuple[Tensor, Tensor]:
    """(pi (V,), usage y (E + T,)) for segment and turn costs on batch ``b`` (no gradient)."""
    src, dst = b.edge_src.cpu().numpy(), b.edge_dst.cpu().numpy()
    te, tf = b.turn_e.cpu().numpy(), b.turn_f.cpu().numpy()
    pi = solve_turn_pointers(
        seg.detach().cpu().numpy(), turn.detach().cpu().numpy(), src, dst, te, tf, b.source.cpu().numpy(), b.total_nodes
    )
    y = np.concatenate(turn_usage(pi, src, dst, te, tf, b.total_nodes))
    return torch.from_numpy(pi).to(seg.device), torch.from_numpy(y).to(seg.device)


def true_turn_usage(b: FlatBatch) -> Tensor:
    """(E + T,) the usage encoding of the target pointers ``b.pi`` (the bottleneck_turns loss's y*)."""
    src, dst = b.edge_src.cpu().numpy(), b.edge_dst.cpu().numpy()
    y = turn_usage(b.pi.cpu().numpy(), src, dst, b.turn_e.cpu().numpy(), b.turn_f.cpu().numpy(), b.total_nodes)
    return torch.from_numpy(np.concatenate(y)).to(b.pi.device)


class BlackboxTurnTree(torch.autograd.Function):
    """:class:`BlackboxShortestPathTree` on the edge-based solver; w = (segment costs, turn costs)."""

    @staticmethod
    def forward(ctx, seg: Tensor, turn: Tensor, lam: float, scale: float, b: FlatBatch) -> Tensor:
        _, y = solve_turn_tree(seg, turn, b)
        ctx.save_for_backward(seg, turn, y)
        ctx.lam_eff, ctx.batch = lam * scale, b
        return y

    @staticmethod
    def backward(ctx, grad_y: Tensor):
        seg, turn, y = ctx.saved_tensors
        E = len(seg)
        seg_p = (seg + ctx.lam_eff * grad_y[:E]).clamp_min(1e-6)
        turn_p = (turn + ctx.lam_eff * grad_y[E:]).clamp_min(0.0)
        _, y_lam = solve_turn_tree(seg_p, turn_p, ctx.batch)
        g = (y_lam - y) / ctx.lam_eff
        return g[:E], g[E:], None, None, None


def blackbox_turn_tree(seg: Tensor, turn: Tensor, b: FlatBatch, lam: float) -> Tensor:
    """The usage (E + T,) of the edge-based trees under (seg, turn), differentiable by blackbox interpolation."""
    return BlackboxTurnTree.apply(seg, turn, lam, float(b.total_nodes), b)


def turn_tree_hinge_loss(seg: Tensor, turn: Tensor, b: FlatBatch, margin: float) -> Tensor:
    """:func:`tree_hinge_loss` for the edge-based solver: the true pointer chains under (seg, turn) costs.

    D (V,) is the time of v's true pointer chain: its segments and the turns between consecutive ones
    (none after the source). Every route that follows w's chain and then takes a segment g = w -> v off the
    tree (turning from w's tree segment into g) reaches v too, so the true chain must be no slower::

        L = sum over used turn slots e -> g, e = w's tree segment, g = w -> v off the tree
                 (and over segments g leaving a source off the tree) of ReLU(D_v - D_w - turn_eg - c_g + margin) / V

    A necessary condition of the fastest routes (it compares each chain with its one-segment detours
    only), zero when every true chain wins them by the margin. Nodes whose chain takes a turn with no slot
    (a forbidden turn: a target route that passes a node twice) are left out.
    """
    E, V = b.total_edges, b.total_nodes
    pi, f = b.pi, b.pi_pair  # (V,) true predecessor; its segment pi[v] -> v (< E) or a self-loop pair (>= E)
    on_edge = f < E
    f_in = f.clamp_max(E - 1)
    chain_turn = on_edge & on_edge[pi]  # (V,) v's chain turns at pi[v] (no turn after the source)
    found = torch.zeros_like(chain_turn)  # (V,) that turn has a slot
    turn_in = seg.new_zeros(V)  # (V,) its cost
    if len(b.turn_e):
        key, order = (b.turn_e * E + b.turn_f).sort()  # (T,) slot keys e -> f, sorted
        want = f_in[pi] * E + f_in  # (V,) key of v's turn
        pos = torch.searchsorted(key, want).clamp_max(len(key) - 1)
        found = chain_turn & (key[pos] == want)
        turn_in = torch.where(found, turn[order[pos]], turn_in)
    step = torch.where(on_edge, seg[f_in] + turn_in, seg.new_zeros(()))  # (V,)
    # (V, 2): the chain's time, and how many of its turns have no slot (a chain with one is left out)
    sums = along_true_tree(pi, torch.stack([step, (chain_turn & ~found).to(step.dtype)], dim=1))
    d, good = sums[:, 0], sums[:, 1] == 0
    reached = on_edge | b.is_source
    # detours through a turn slot e -> g: e is w's tree segment, g = w -> v is off the tree
    w, v = b.edge_src[b.turn_f], b.edge_dst[b.turn_f]  # (T,)
    detour = (f[w] == b.turn_e) & on_edge[w] & (pi[v] != w) & good[w] & good[v] & reached[v]
    slack = d[v] - d[w] - turn - seg[b.turn_f] + margin
    loss = (slack.relu() * detour).sum()
    # detours straight from a source: g = s -> v off the tree, no turn before it
    src, dst = b.edge_src, b.edge_dst
    first = b.is_source[src] & (pi[dst] != src) & good[dst] & reached[dst]
    loss = loss + ((d[dst] - seg + margin).relu() * first).sum()
    return loss / V
