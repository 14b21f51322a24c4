"""The evaluate stage's pictures (PNG, matplotlib with the Agg backend): scores against training examples,
learning curves, and one test/ood example per task with the true and predicted paths drawn."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nar.errors import NarError
from nar.natural.config import NATURAL_TASKS
from nar.transfer.evaluate.stats import size_of
from nar.transfer.variants import TRANSFER_VARIANTS, UNTRAINED

# one colour per variant; its order is also the order of the variants in every table, CSV and figure
COLORS = {name: v.color for name, v in TRANSFER_VARIANTS.items()}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_scores(task: str, agg: Mapping[str, Any], path: Path, metrics: Sequence[str]) -> Path:
    plt = _plt()
    splits = [s for s in ("test", "ood") if s in agg]
    fig, axes = plt.subplots(len(metrics), len(splits), figsize=(5.2 * len(splits), 3.4 * len(metrics)), squeeze=False)
    for i, m in enumerate(metrics):
        for j, s in enumerate(splits):
            ax = axes[i][j]
            for v, color in COLORS.items():
                cells = agg[s].get(v)
                if not cells:
                    continue
                pts = sorted((size_of(k), c[m]["mean"], c[m]["stderr"]) for k, c in cells.items() if m in c)
                pts = [p for p in pts if p[1] is not None]
                if not pts:
                    continue
                x, y, e = zip(*pts, strict=True)
                style = "--" if v in UNTRAINED else "-"
                ax.errorbar(x, y, yerr=e, label=v, color=color, linestyle=style, marker="o", ms=3, capsize=2)
            ax.set_xscale("log")
            ax.set_xlabel("training examples")
            ax.set_ylabel(m)
            ax.set_title(f"{task}: {m} ({s})")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    return _save(plt, fig, path)


def _save(plt: Any, fig: Any, path: Path) -> Path:
    """Lay out, write and close a figure (PNG at 100 dpi)."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_curves(task: str, curves: Mapping[str, Any], path: Path) -> Path:
    plt = _plt()
    sizes = sorted({size_of(k) for by in curves.values() for k in by})
    show = [sizes[0], sizes[-1]] if len(sizes) > 1 else sizes
    fig, axes = plt.subplots(1, len(show), figsize=(5.2 * len(show), 3.4), squeeze=False)
    for ax, n in zip(axes[0], show, strict=True):
        for v, by in curves.items():
            rows = by.get(f"n{n}")
            if rows:
                ax.plot([r[0] for r in rows], [r[1] for r in rows], label=v, color=COLORS.get(v))
        ax.set_title(f"{task}: validation pointer accuracy, n = {n}")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    return _save(plt, fig, path)


def _path_nodes(pi: Sequence[int], source: int, target: int) -> list[int]:
    """Nodes from the target back along pointers until the source, a repeat, or a dead end."""
    walk, seen, x = [target], {target}, target
    while x != source:
        x = int(pi[x])
        if x in seen:
            break
        walk.append(x)
        seen.add(x)
    return walk[::-1]


def draw_examples(task: str, predictions: Mapping[str, Any], data_root: Path, path: Path, split: str = "test") -> Path:
    """One example of ``split``: a panel per variant with the true and predicted paths/trees."""
    from nar.natural import load_natural

    plt = _plt()
    variants = [v for v in COLORS if v in predictions.get("variants", {}) and predictions["variants"][v].get(split)]
    if not variants:
        raise NarError(f"{task}: no stored predictions for the {split} split")
    ds = load_natural(Path(data_root) / task / split)
    ex = ds[0]
    turns = is_turn_task(task)
    fig, axes = plt.subplots(1, len(variants), figsize=(4.2 * len(variants), 4.4), squeeze=False)
    for ax, v in zip(axes[0], variants, strict=True):
        pred = np.asarray(predictions["variants"][v][split][0])
        right = int((pred == ex.pi).sum())
        if NATURAL_TASKS[task].picture == "grid":
            _draw_digit(ax, ex, pred)
        else:
            _draw_road(ax, ex, pred, turns)
        ax.set_title(f"{v}: {right}/{ex.num_nodes} pointers right", fontsize=9)
    n, seed = predictions.get("size"), predictions.get("seed")
    fig.suptitle(
        f"{task} {split} example 0 (models trained on {n} examples, seed {seed}): true path green, "
        "predicted orange dashed, wrong pointers red"
        + ("; turns along each path marked L / R / U with their hidden delay" if turns else ""),
        fontsize=9,
    )
    return _save(plt, fig, path)


def is_turn_task(task: str) -> bool:
    """Whether ``task``'s routes pay turn delays: its registry entry (``NaturalTask.turn_costs``, what the
    sweep reads too); such a task's examples carry the turn index ``turn_next`` and the hidden ``turn_cost``."""
    return NATURAL_TASKS[task].turn_costs


def _draw_digit(ax, ex, pred: np.ndarray) -> None:
    k = int(ex.meta["grid_size"])
    pix = ex.inputs["node_features"].reshape(k, k, 8, 8)
    img = pix.transpose(0, 2, 1, 3).reshape(8 * k, 8 * k)
    ax.imshow(img, cmap="gray_r", vmin=0, vmax=1)
    rc = ex.meta["coords"]  # (row, col)
    xy = np.stack([rc[:, 1] * 8 + 3.5, rc[:, 0] * 8 + 3.5], axis=1)
    wrong = np.flatnonzero(pred != ex.pi)
    for v in wrong:
        r, c = rc[v]
        ax.add_patch(_rect(c * 8 - 0.5, r * 8 - 0.5, 8, "red"))
    for nodes, style in _paths(ex, pred):
        pts = xy[nodes]
        ax.plot(pts[:, 0], pts[:, 1], style, lw=2.2)
    ax.plot(*xy[ex.source], "bo", ms=7)
    ax.plot(*xy[ex.target], "b*", ms=11)
    ax.set_xticks([])
    ax.set_yticks([])


def _paths(ex, pred: np.ndarray) -> list[tuple[list[int], str]]:
    """(nodes, line style) of the true path (green) and the predicted one (orange, dashed)."""
    return [(_path_nodes(ex.pi, ex.source, ex.target), "g-"), (_path_nodes(pred, ex.source, ex.target), "C1--")]


def _rect(x: float, y: float, size: float, color: str):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), size, size, fill=False, edgecolor=color, lw=1.5)


def _draw_road(ax, ex, pred: np.ndarray, turns: bool) -> None:
    """Segments, true tree and both paths on the node positions; ``turns`` (a turn task, :func:`is_turn_task`):
    each path's turns marked too."""
    xy = ex.meta["coords"]
    for u, v in ex.edge_index:
        ax.plot(*xy[[u, v]].T, color="0.85", lw=1, zorder=1)
    for v in range(ex.num_nodes):
        u = int(ex.pi[v])
        if u != v:
            ax.plot(*xy[[u, v]].T, color="tab:green", lw=3, alpha=0.5, zorder=2)
        p = int(pred[v])
        if p != v or v != ex.source:
            ok = p == u
            ax.annotate(
                "",
                xy=xy[v],
                xytext=xy[p],
                arrowprops={"arrowstyle": "->", "color": "0.2" if ok else "red", "lw": 1 if ok else 1.8},
                zorder=3,
            )
    wrong = np.flatnonzero(pred != ex.pi)
    ax.scatter(*xy.T, s=12, color="0.3", zorder=4)
    ax.scatter(*xy[wrong].T, s=40, facecolors="none", edgecolors="red", zorder=5)
    for (nodes, style), below in zip(_paths(ex, pred), (False, True), strict=True):
        pts = xy[nodes]
        ax.plot(pts[:, 0], pts[:, 1], style, lw=2.2, zorder=6)
        if turns:  # say where each route turns and what the turn costs
            _mark_turns(ax, ex, nodes, "tab:green" if not below else "C1", below)
    ax.plot(*xy[ex.source], "bo", ms=8, zorder=7)
    ax.plot(*xy[ex.target], "b*", ms=12, zorder=7)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


TURN_LETTERS = {2: "R", 3: "L", 4: "U"}  # the road_turns movement codes (1 straight: not marked)


def turn_marks(ex, nodes: Sequence[int]) -> list[tuple[int, str, float]]:
    """(node, movement letter, true delay in seconds) of every turn along ``nodes`` (a route of a turn
    task: ``turn_next`` input, ``turn_movement`` meta, ``turn_cost`` hidden); straight through is not a mark."""
    seg = {(int(u), int(v)): e for e, (u, v) in enumerate(ex.edge_index.tolist())}
    marks = []
    for a, b, c in zip(nodes, nodes[1:], nodes[2:], strict=False):
        e, f = seg.get((a, b)), seg.get((b, c))
        if e is None or f is None:
            continue
        slots = np.flatnonzero(ex.inputs["turn_next"][e] == f)
        if not len(slots):
            continue
        slot = int(slots[0])
        letter = TURN_LETTERS.get(int(ex.meta["turn_movement"][e, slot]))
        if letter:
            marks.append((b, letter, float(ex.hidden["turn_cost"][e, slot])))
    return marks


def _mark_turns(ax, ex, nodes: Sequence[int], color: str, below: bool) -> None:
    """Label each turn of a route at its node: movement (L, R, U) and its hidden delay in seconds."""
    xy = ex.meta["coords"]
    for v, letter, delay in turn_marks(ex, nodes):
        ax.annotate(
            f"{letter} {delay:.0f}s",
            xy=xy[v],
            xytext=(4, -11 if below else 5),
            textcoords="offset points",
            fontsize=7,
            color=color,
            fontweight="bold",
            zorder=8,
        )
