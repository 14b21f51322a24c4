"""The ``evaluate`` stage: aggregate the transfer sweeps, plot them, draw predictions, write the report.

Reads ``metrics/transfer/<task>.json`` (written by ``nar transfer``) and
``models/transfer/<task>/predictions.json``, and writes

* ``metrics/evaluate.json``: per task, split, variant and training size, the mean and the
  standard error (sample std / sqrt(number of seeds)) of every metric over the seeds, and the
  verdict (nar_frozen against e2e and bottleneck with few examples: per comparison the difference,
  its standard error and the outcome, "better", "worse" or "not distinguishable" (within two
  standard errors); which variant loses least out of distribution);
* ``plots/transfer/<task>_scores.csv`` (DVC plot: the headline metric against the number of
  training examples, one column per variant and split), ``<task>_curves.csv`` (DVC plot:
  validation pointer accuracy against step, mean over seeds, per variant and size) and
  ``<task>_table.csv`` (every aggregate, long format);
* ``plots/transfer/png/``: ``<task>_scores.png``, ``<task>_curves.png`` and ``<task>_examples.png``
  (a digit grid with the true and predicted paths over the pixels / a road subgraph on its
  coordinates with the true and predicted shortest-path trees; mistakes in red);
* ``reports/blueprint.md``: the tables, the plots and the verdict (plus ``evaluate.notes``
  when that file exists: the investigation notes);

and logs them to MLflow (experiment ``nar-transfer``, run ``evaluate``). No torch: this stage
only reads JSON and the datasets.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nar.errors import NarError
from nar.transfer.config import EvaluateParams
from nar.transfer.metrics import METRICS

TRAINED = ("nar_frozen", "nar_finetune", "e2e", "bottleneck", "bottleneck_turns")
COLORS = {
    "nar_frozen": "tab:blue",
    "nar_finetune": "tab:cyan",
    "e2e": "tab:orange",
    "bottleneck": "tab:green",
    "bottleneck_turns": "tab:olive",
    "heuristic": "tab:gray",
    "oracle": "black",
}
UNTRAINED = ("heuristic", "oracle")  # scored once, the same in every size x seed cell
LOWER_IS_BETTER = {"regret", "regret_all", "invalid_rate"}
RATIOS = {"regret", "regret_all"}  # shown as ratios; every other metric is a fraction shown in %


# --------------------------------------------------------------------------- aggregation


def mean_stderr(values: Iterable[float | None]) -> dict[str, float | int | None]:
    """Mean and standard error (sample std with ddof=1 over sqrt(n); 0 for one value) of the
    non-None values; None when there are none."""
    xs = np.array([v for v in values if v is not None], dtype=np.float64)
    if xs.size == 0:
        return {"mean": None, "stderr": None, "n": 0}
    se = float(xs.std(ddof=1) / math.sqrt(xs.size)) if xs.size > 1 else 0.0
    return {"mean": float(xs.mean()), "stderr": se, "n": int(xs.size)}


def aggregate(results: Mapping[str, Any]) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """``results[variant]["n<size>"]["s<seed>"][split][metric]`` -> ``[split][variant]["n<size>"][metric]``
    = mean/stderr/n over the seeds."""
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for variant, by_size in results.items():
        for size, by_seed in by_size.items():
            splits = sorted({s for per_seed in by_seed.values() for s in per_seed})
            for split in splits:
                metrics = sorted({m for per_seed in by_seed.values() for m in per_seed.get(split, {})})
                cell = {}
                for m in metrics:
                    vals = [per_seed.get(split, {}).get(m) for per_seed in by_seed.values()]
                    if all(v is None or isinstance(v, int | float) for v in vals):
                        cell[m] = mean_stderr(vals)
                out.setdefault(split, {}).setdefault(variant, {})[size] = cell
    return out


def _size(key: str) -> int:
    return int(key.lstrip("n"))


def sizes_of(agg: Mapping[str, Any]) -> list[int]:
    return sorted({_size(k) for by_variant in agg.values() for by_size in by_variant.values() for k in by_size})


def mean_curves(curves: Mapping[str, Any]) -> dict[str, dict[str, list[tuple[int, float, int]]]]:
    """Validation curves averaged over seeds: ``[variant]["n<size>"]`` -> [(step, mean, seeds)]."""
    out: dict[str, dict[str, list[tuple[int, float, int]]]] = {}
    for variant, by_size in curves.items():
        for size, by_seed in by_size.items():
            steps: dict[int, list[float]] = {}
            for rows in by_seed.values():
                for row in rows:
                    steps.setdefault(int(row["step"]), []).append(float(row["val_pointer_acc"]))
            out.setdefault(variant, {})[size] = [(s, float(np.mean(v)), len(v)) for s, v in sorted(steps.items())]
    return out


OUTCOMES = ("better", "worse", "not distinguishable")


def compare(
    a: float,
    b: float,
    se_a: float | None,
    se_b: float | None,
    n_a: int,
    n_b: int,
    metric: str,
) -> dict[str, Any]:
    """nar_frozen's mean ``a`` against a rival's ``b``: the difference ``a - b``, its standard error
    sqrt(se_a² + se_b²) (independent seeds), and the outcome for nar_frozen: ``better`` or ``worse`` when
    the difference exceeds two standard errors (in the metric's good direction), else ``not
    distinguishable``. With a single seed on either side there is no standard error: not distinguishable."""
    diff = a - b
    estimable = n_a >= 2 and n_b >= 2 and se_a is not None and se_b is not None
    se = math.hypot(se_a or 0.0, se_b or 0.0) if estimable else None
    beyond = se is not None and abs(diff) > 2 * se
    if not beyond:
        outcome = "not distinguishable"
    else:
        good = diff < 0 if metric in LOWER_IS_BETTER else diff > 0
        outcome = "better" if good else "worse"
    return {"difference": diff, "difference_stderr": se, "beyond_2se": beyond, "outcome": outcome}


def verdict(agg: Mapping[str, Any], headline: str, low_data: int) -> dict[str, Any]:
    """Does nar_frozen beat e2e and bottleneck at sizes <= low_data (test split), and which trained
    variant loses least from test to ood (mean over sizes of test - ood on the headline metric)?"""
    better = (lambda a, b: a < b) if headline in LOWER_IS_BETTER else (lambda a, b: a > b)
    test = agg.get("test", {})
    out: dict[str, Any] = {"headline": headline, "low_data": low_data, "comparisons": []}
    wins = total = clear_wins = 0
    frozen = test.get("nar_frozen", {})
    for rival in ("e2e", "bottleneck"):
        for size, cell in sorted(frozen.items(), key=lambda kv: _size(kv[0])):
            if _size(size) > low_data or rival not in test or size not in test[rival]:
                continue
            mine, theirs = cell.get(headline, {}), test[rival][size].get(headline, {})
            a, b = mine.get("mean"), theirs.get("mean")
            if a is None or b is None:
                continue
            won = better(a, b)
            wins += won
            total += 1
            c = compare(a, b, mine.get("stderr"), theirs.get("stderr"), mine.get("n", 0), theirs.get("n", 0), headline)
            clear_wins += c["outcome"] == "better"
            out["comparisons"].append(
                {
                    "rival": rival,
                    "size": _size(size),
                    "nar_frozen": a,
                    rival: b,
                    "nar_frozen_stderr": mine.get("stderr"),
                    f"{rival}_stderr": theirs.get("stderr"),
                    "wins": won,
                    **c,
                }
            )
    out["low_data_wins"] = wins
    out["low_data_clear_wins"] = clear_wins
    out["low_data_clear_losses"] = sum(c["outcome"] == "worse" for c in out["comparisons"])
    out["low_data_comparisons"] = total
    out["beats_baselines_low_data"] = total > 0 and wins == total
    gaps = {}
    ood = agg.get("ood", {})
    for variant in TRAINED:
        if variant not in test or variant not in ood:
            continue
        diffs = []
        for size, cell in test[variant].items():
            a = cell.get(headline, {}).get("mean")
            b = ood[variant].get(size, {}).get(headline, {}).get("mean")
            if a is not None and b is not None:
                diffs.append(a - b if headline not in LOWER_IS_BETTER else b - a)
        if diffs:
            gaps[variant] = float(np.mean(diffs))
    out["ood_drop"] = gaps
    out["loses_least_ood"] = min(gaps, key=gaps.get) if gaps else None
    best_ood = {}
    for variant in TRAINED:
        vals = [c.get(headline, {}).get("mean") for c in ood.get(variant, {}).values()]
        vals = [v for v in vals if v is not None]
        if vals:
            best_ood[variant] = float(np.mean(vals))
    out["ood_mean"] = best_ood
    out["against_heuristic"] = against_heuristic(agg, headline)
    out["turns"] = turn_targets(agg, headline)
    return out


def turn_targets(agg: Mapping[str, Any], headline: str, from_size: int = 100, at_size: int = 200) -> dict | None:
    """Issue 16's road_turns targets, on the test split: nar_frozen against bottleneck at every size >=
    ``from_size`` (2-s.e. rule), and nar_frozen's gap to bottleneck_turns at ``at_size`` (within 5 points
    holds). None when the sweep has no bottleneck_turns (a task without turns)."""
    test = agg.get("test", {})
    if "bottleneck_turns" not in test or "nar_frozen" not in test:
        return None
    out: dict[str, Any] = {"vs_bottleneck": [], "gap_to_bottleneck_turns": None}
    frozen = test["nar_frozen"]
    for size, cell in sorted(frozen.items(), key=lambda kv: _size(kv[0])):
        other = test.get("bottleneck", {}).get(size, {}).get(headline, {})
        mine = cell.get(headline, {})
        if _size(size) < from_size or mine.get("mean") is None or other.get("mean") is None:
            continue
        c = compare(
            mine["mean"],
            other["mean"],
            mine.get("stderr"),
            other.get("stderr"),
            mine.get("n", 0),
            other.get("n", 0),
            headline,
        )
        out["vs_bottleneck"].append({"size": _size(size), "nar_frozen": mine["mean"], "bottleneck": other["mean"], **c})
    out["beats_bottleneck_from"] = bool(out["vs_bottleneck"]) and all(
        c["outcome"] == "better" for c in out["vs_bottleneck"]
    )
    a = frozen.get(f"n{at_size}", {}).get(headline, {}).get("mean")
    b = test["bottleneck_turns"].get(f"n{at_size}", {}).get(headline, {}).get("mean")
    if a is not None and b is not None:
        gap = b - a if headline not in LOWER_IS_BETTER else a - b
        out["gap_to_bottleneck_turns"] = {"size": at_size, "nar_frozen": a, "bottleneck_turns": b, "gap": gap}
        out["within_5_points_of_bottleneck_turns"] = gap <= 0.05
    return out


def against_heuristic(agg: Mapping[str, Any], headline: str) -> dict[str, Any] | None:
    """Every trained variant against ``heuristic`` (the exact algorithm on the visible proxy, no learning)
    on the test split: per variant and size the comparison of :func:`compare`, and the sizes where the
    variant is better beyond two standard errors. None when the sweep has no heuristic."""
    test = agg.get("test", {})
    if "heuristic" not in test:
        return None
    heur = test["heuristic"]
    out: dict[str, Any] = {"heuristic": {}, "comparisons": [], "better_at": {}}
    for size, cell in heur.items():
        out["heuristic"][str(_size(size))] = cell.get(headline, {}).get("mean")
    for variant in TRAINED:
        for size, cell in sorted(test.get(variant, {}).items(), key=lambda kv: _size(kv[0])):
            mine, theirs = cell.get(headline, {}), heur.get(size, {}).get(headline, {})
            a, b = mine.get("mean"), theirs.get("mean")
            if a is None or b is None:
                continue
            # the heuristic has no spread over seeds: it is one deterministic number
            c = compare(a, b, mine.get("stderr"), theirs.get("stderr"), mine.get("n", 0), theirs.get("n", 0), headline)
            out["comparisons"].append({"variant": variant, "size": _size(size), variant: a, "heuristic": b, **c})
            if c["outcome"] == "better":
                out["better_at"].setdefault(variant, []).append(_size(size))
    return out


# --------------------------------------------------------------------------- files


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for row in rows:
            w.writerow(["" if v is None else (f"{v:.6g}" if isinstance(v, float) else v) for v in row])


def write_tables(task: str, agg: Mapping[str, Any], curves: Mapping[str, Any], headline: str, root: Path) -> list[Path]:
    """The DVC plot CSVs and the long table of one task."""
    sizes = sizes_of(agg)
    splits = [s for s in ("val", "test", "ood") if s in agg]
    variants = [v for v in COLORS if any(v in agg[s] for s in splits)]
    cols = [(v, s) for s in splits for v in variants if v in agg[s]]
    scores = root / f"{task}_scores.csv"
    _write_csv(
        scores,
        ["size", *[f"{v}_{s}" for v, s in cols]],
        ([n, *[agg[s][v].get(f"n{n}", {}).get(headline, {}).get("mean") for v, s in cols]] for n in sizes),
    )
    table = root / f"{task}_table.csv"
    rows = []
    for s in splits:
        for v in variants:
            for size, cell in sorted(agg[s].get(v, {}).items(), key=lambda kv: _size(kv[0])):
                for m, st in cell.items():
                    rows.append([task, s, v, _size(size), m, st["mean"], st["stderr"], st["n"]])
    _write_csv(table, ["task", "split", "variant", "size", "metric", "mean", "stderr", "seeds"], rows)
    curve_path = root / f"{task}_curves.csv"
    keys = [(v, k) for v in variants if v in curves for k in sorted(curves[v], key=_size)]
    steps = sorted({s for v, k in keys for s, _, _ in curves[v][k]})
    lookup = {(v, k): {s: m for s, m, _ in curves[v][k]} for v, k in keys}
    _write_csv(
        curve_path,
        ["step", *[f"{v}_{k}" for v, k in keys]],
        ([s, *[lookup[(v, k)].get(s) for v, k in keys]] for s in steps),
    )
    return [scores, table, curve_path]


# --------------------------------------------------------------------------- plots


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
                pts = sorted((_size(k), c[m]["mean"], c[m]["stderr"]) for k, c in cells.items() if m in c)
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
    sizes = sorted({_size(k) for by in curves.values() for k in by})
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
    fig, axes = plt.subplots(1, len(variants), figsize=(4.2 * len(variants), 4.4), squeeze=False)
    for ax, v in zip(axes[0], variants, strict=True):
        pred = np.asarray(predictions["variants"][v][split][0])
        right = int((pred == ex.pi).sum())
        if task == "digit_grid":
            _draw_digit(ax, ex, pred)
        else:
            _draw_road(ax, ex, pred)
        ax.set_title(f"{v}: {right}/{ex.num_nodes} pointers right", fontsize=9)
    n, seed = predictions.get("size"), predictions.get("seed")
    fig.suptitle(
        f"{task} {split} example 0 (models trained on {n} examples, seed {seed}): true path green, "
        "predicted orange dashed, wrong pointers red",
        fontsize=9,
    )
    return _save(plt, fig, path)


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


def _draw_road(ax, ex, pred: np.ndarray) -> None:
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
    for nodes, style in _paths(ex, pred):
        pts = xy[nodes]
        ax.plot(pts[:, 0], pts[:, 1], style, lw=2.2, zorder=6)
    ax.plot(*xy[ex.source], "bo", ms=8, zorder=7)
    ax.plot(*xy[ex.target], "b*", ms=12, zorder=7)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


# --------------------------------------------------------------------------- report


def _fmt(cell: Mapping[str, Any] | None, metric: str, pct: bool = True) -> str:
    if not cell or metric not in cell or cell[metric]["mean"] is None:
        return "–"
    m, se = cell[metric]["mean"], cell[metric]["stderr"] or 0.0
    if pct:
        return f"{100 * m:.1f} ± {100 * se:.1f}"
    return f"{m:.3f} ± {se:.3f}"


def _table(agg: Mapping[str, Any], split: str, metric: str, pct: bool = True) -> list[str]:
    sizes = sizes_of(agg)
    lines = ["| variant | " + " | ".join(f"n={n}" for n in sizes) + " |", "|---|" + "---|" * len(sizes)]
    for v in COLORS:
        if v not in agg.get(split, {}):
            continue
        cells = [_fmt(agg[split][v].get(f"n{n}"), metric, pct) for n in sizes]
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    return lines


def _verdict_lines(task: str, v: Mapping[str, Any]) -> list[str]:
    h = v["headline"]
    lines = []
    pct = h not in RATIOS
    unit = "points" if pct else "ratio"
    scale = 100.0 if pct else 1.0
    digits = 1 if pct else 3
    if v["low_data_comparisons"]:
        outcomes = [c.get("outcome") for c in v["comparisons"]]
        counts = ", ".join(f"{word} in {outcomes.count(word)}" for word in OUTCOMES if outcomes.count(word))
        lines.append(
            f"- **{task}**: test {h} of nar_frozen against e2e and bottleneck at n ≤ {v['low_data']} "
            f"({v['low_data_comparisons']} comparisons): {counts}. A difference counts as better or worse only "
            "beyond two standard errors of the difference (over the seeds); anything closer is not distinguishable."
        )
        for c in v["comparisons"]:
            rival = c["rival"]
            lines.append(
                f"  - n={c['size']}, nar_frozen vs {rival}: " + _comparison_text(c, rival, scale, digits, unit)
            )
    ah = v.get("against_heuristic")
    if ah and ah["comparisons"]:
        values = [x for x in ah["heuristic"].values() if x is not None]
        level = f"{scale * values[0]:.{digits}f}" if values else "–"
        sizes = sorted({c["size"] for c in ah["comparisons"]})
        beats = "; ".join(
            f"{variant} at n = {', '.join(str(n) for n in ah['better_at'].get(variant, [])) or 'none'}"
            for variant in TRAINED
            if any(c["variant"] == variant for c in ah["comparisons"])
        )
        lines.append(
            f"- **{task}** against the heuristic (the exact algorithm on the visible proxy cost, no learning; "
            f"test {h} {level}): better beyond 2 s.e. of sizes {', '.join(map(str, sizes))}: {beats}."
        )
    turns = v.get("turns")
    if turns:
        parts = [
            f"n={c['size']} {scale * c['nar_frozen']:.{digits}f} vs {scale * c['bottleneck']:.{digits}f}: "
            f"**{c['outcome']}**"
            for c in turns["vs_bottleneck"]
        ]
        line = (
            f"- **{task}** turn targets: nar_frozen against bottleneck (one cost per segment) at n ≥ 100: "
            + ("; ".join(parts) or "no sizes")
            + f" (holds: {'yes' if turns.get('beats_bottleneck_from') else 'no'})."
        )
        g = turns.get("gap_to_bottleneck_turns")
        if g:
            line += (
                f" nar_frozen at n={g['size']} is {scale * g['gap']:+.{digits}f} {unit} behind bottleneck_turns "
                f"({scale * g['nar_frozen']:.{digits}f} vs {scale * g['bottleneck_turns']:.{digits}f}; within 5 "
                f"points: {'yes' if turns.get('within_5_points_of_bottleneck_turns') else 'no'})."
            )
        lines.append(line)
    if v["ood_drop"]:
        drops = ", ".join(f"{k} {100 * d:+.1f}" for k, d in sorted(v["ood_drop"].items(), key=lambda kv: kv[1]))
        lines.append(
            f"- **{task}** out of distribution: drop of {h} from test to ood (points, mean over sizes): {drops}; "
            f"least drop: **{v['loses_least_ood']}**. Mean ood {h}: "
            + ", ".join(f"{k} {100 * m:.1f}" for k, m in sorted(v["ood_mean"].items(), key=lambda kv: -kv[1]))
            + "."
        )
    return lines


def _comparison_text(c: Mapping[str, Any], rival: str, scale: float, digits: int, unit: str) -> str:
    """``77.6 ± 8.5 vs 87.9 ± 0.5: difference -10.3 ± 8.5 points: **not distinguishable** (within 2 s.e.)``."""

    def value(mean: float, se: float | None) -> str:
        return f"{scale * mean:.{digits}f}" + ("" if se is None else f" ± {scale * se:.{digits}f}")

    a, b = c["nar_frozen"], c[rival]
    diff = c.get("difference", a - b)
    se = c.get("difference_stderr")
    outcome = c.get("outcome") or ("better" if c.get("wins") else "worse")
    why = {
        "better": "beyond 2 s.e.",
        "worse": "beyond 2 s.e.",
        "not distinguishable": "within 2 s.e." if se is not None else "one seed: no standard error",
    }[outcome]
    spread = "" if se is None else f" ± {scale * se:.{digits}f}"
    return (
        f"{value(a, c.get('nar_frozen_stderr'))} vs {value(b, c.get(f'{rival}_stderr'))}: "
        f"difference {scale * diff:+.{digits}f}{spread} {unit}: **{outcome}** ({why})"
    )


def write_report(
    path: Path,
    per_task: Mapping[str, Mapping[str, Any]],
    params: EvaluateParams,
    pngs: Mapping[str, Sequence[Path]],
    notes: str | None,
) -> Path:
    rel = lambda p: Path(_relpath(p, path.parent)).as_posix()  # noqa: E731
    h = params.headline
    lines = [
        "# Neural algorithmic reasoning on raw inputs: the blueprint, measured",
        "",
        "Generated by `nar evaluate` from `metrics/transfer/<task>.json` (written by `nar transfer`). "
        "Numbers are mean ± standard error over seeds, in % unless marked; n is the number of training examples.",
        "",
        "Variants: **nar_frozen** (new encoder f~ and pointer decoder g~ around the frozen pretrained processor), "
        "**nar_finetune** (same, processor trained too), **e2e** (same architecture, processor randomly initialised), "
        "**bottleneck** (predict one cost per cell/segment, run the exact shortest-path solver, trained from the "
        "targets by blackbox differentiation), **bottleneck_turns** (road_turns only: a cost per segment and per "
        "turn, the exact edge-based solver, trained as bottleneck: the engineered reference), "
        "**heuristic** (the exact algorithm on the most obvious visible proxy "
        "of the cost, no learning: segment length on roads, a uniform cost per cell on digit grids; turn delays "
        "ignored), **oracle** (the exact algorithm on the hidden true costs). heuristic and oracle need no "
        "training: each is scored once and shown at every n.",
        "",
        "## Verdict",
        "",
    ]
    for task, d in per_task.items():
        lines += _verdict_lines(task, d["verdict"])
    lines.append("")
    for task, d in per_task.items():
        agg, info = d["aggregate"], d["info"]
        proc = info.get("processor") or {}
        lines += [
            f"## {task}",
            "",
            f"Processor: `{proc.get('uri')}` version {proc.get('version')} "
            f"({(proc.get('config') or {}).get('kind')}, hidden {(proc.get('config') or {}).get('hidden')}), "
            f"sha256 `{str(proc.get('sha256'))[:16]}…` (unchanged by every nar_frozen run). "
            f"Data: {info['data']['sizes']} examples per split; target algorithm {info.get('algorithm')}. "
            "Timings: `runs/transfer/` and MLflow (not in this tracked report).",
            "",
        ]
        for split in ("test", "ood"):
            if split not in agg:
                continue
            lines += [f"### {split}: {h}", "", *_table(agg, split, h), ""]
            lines += [f"### {split}: path match (exact path to the target)", "", *_table(agg, split, "path_match"), ""]
            lines += [
                f"### {split}: path-cost regret over valid paths (ratio, lower is better)",
                "",
                *_table(agg, split, "regret", pct=False),
                "",
                f"### {split}: invalid paths (share of examples; not counted in the regret)",
                "",
                *_table(agg, split, "invalid_rate"),
                "",
            ]
            if h != "pointer_acc_tie":
                lines += [f"### {split}: pointer accuracy up to ties", "", *_table(agg, split, "pointer_acc_tie"), ""]
        for p in pngs.get(task, []):
            lines += [f"![{p.stem}]({rel(p)})", ""]
    if notes:
        lines += ["## Investigation notes", "", notes.strip(), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _relpath(p: Path, start: Path) -> str:
    import os

    return os.path.relpath(Path(p).resolve(), Path(start).resolve())


# --------------------------------------------------------------------------- the stage


HEADLINE_KEYS = ("low_data_wins", "low_data_clear_wins", "low_data_comparisons")


def write_headlines(summary: Mapping[str, Any], folder: Path) -> list[Path]:
    """``metrics/evaluate/<task>.json`` (DVC ``metrics:``): per task the verdict's low-data counts and
    nar_frozen's mean OOD score in %, the same keys in every file, so that ``dvc metrics show`` is one row
    per task and a few columns. The aggregates stay in ``metrics/evaluate.json`` (a plain output)."""
    import shutil

    shutil.rmtree(folder, ignore_errors=True)  # no stale row for a task no longer evaluated
    folder.mkdir(parents=True)
    written = []
    for task, d in summary.items():
        verdict = d.get("verdict") or {}
        head = {k: verdict[k] for k in HEADLINE_KEYS if isinstance(verdict.get(k), int | float)}
        ood = (verdict.get("ood_mean") or {}).get("nar_frozen")
        if isinstance(ood, int | float):  # in % like every score shown, unless the headline is a ratio
            head["nar_frozen_ood"] = round(ood, 4) if verdict.get("headline") in RATIOS else round(100.0 * ood, 2)
        path = folder / f"{task}.json"
        path.write_text(json.dumps(head, indent=1) + "\n")
        written.append(path)
    return written


def load_task_metrics(metrics_root: Path, task: str) -> dict[str, Any]:
    path = Path(metrics_root) / f"{task}.json"
    if not path.is_file():
        raise NarError(f"{path}: missing; run `nar transfer --task {task}` first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise NarError(f"{path}: not valid JSON ({exc})") from None


def run_evaluate(
    params: EvaluateParams,
    *,
    metrics_root: Path = Path("metrics/transfer"),
    models_root: Path = Path("models/transfer"),
    data_root: Path = Path("data/natural"),
    plots_root: Path = Path("plots/transfer"),
    out_metrics: Path = Path("metrics/evaluate.json"),
    track: bool = True,
) -> dict[str, Any]:
    per_task: dict[str, dict[str, Any]] = {}
    pngs: dict[str, list[Path]] = {}
    written: list[Path] = []
    png_root = Path(plots_root) / "png"
    for task in params.tasks:
        info = load_task_metrics(metrics_root, task)
        agg = aggregate(info["results"])
        curves = mean_curves(info.get("curves", {}))
        per_task[task] = {"aggregate": agg, "verdict": verdict(agg, params.headline, params.low_data), "info": info}
        written += write_tables(task, agg, curves, params.headline, Path(plots_root))
        metrics = [params.headline] + [m for m in ("path_match", "regret_all") if m != params.headline]
        pngs[task] = [plot_scores(task, agg, png_root / f"{task}_scores.png", metrics)]
        if curves:
            pngs[task].append(plot_curves(task, curves, png_root / f"{task}_curves.png"))
        pred_path = Path(models_root) / task / "predictions.json"
        if pred_path.is_file():
            preds = json.loads(pred_path.read_text())
            for split in ("test", "ood"):
                if any(split in p for p in preds.get("variants", {}).values()):
                    pngs[task].append(
                        draw_examples(task, preds, data_root, png_root / f"{task}_{split}_example.png", split)
                    )
        print(f"evaluate {task}: {len(pngs[task])} figures", file=sys.stderr)
    notes_path = Path(params.notes)
    notes = notes_path.read_text() if notes_path.is_file() else None
    report = write_report(Path(params.report), per_task, params, pngs, notes)
    summary = {task: {"verdict": d["verdict"], "aggregate": d["aggregate"]} for task, d in per_task.items()}
    out_metrics = Path(out_metrics)
    out_metrics.parent.mkdir(parents=True, exist_ok=True)
    out_metrics.write_text(json.dumps(summary, indent=1) + "\n")
    write_headlines(summary, out_metrics.with_suffix(""))
    if track:
        _log(params, per_task, [report, out_metrics, *written, *[p for ps in pngs.values() for p in ps]])
    print(f"evaluate: report -> {report}", file=sys.stderr)
    return summary


def _log(params: EvaluateParams, per_task: Mapping[str, Any], artifacts: Sequence[Path]) -> None:
    import time

    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from nar.tracking import configure_mlflow, git_commit
    from nar.transfer.sweep import EXPERIMENT

    mlflow = configure_mlflow(experiment=EXPERIMENT)
    client = MlflowClient()
    exp = mlflow.get_experiment_by_name(EXPERIMENT).experiment_id
    run = client.create_run(exp, run_name="evaluate", tags={"nar.stage": "evaluate", "git_commit": git_commit()})
    rid = run.info.run_id
    status = "FAILED"
    try:
        now = int(time.time() * 1000)
        ms = []
        for task, d in per_task.items():
            for split, by_variant in d["aggregate"].items():
                for variant, by_size in by_variant.items():
                    for size, cell in by_size.items():
                        st = cell.get(params.headline)
                        if st and st["mean"] is not None:
                            ms.append(Metric(f"{task}_{split}_{variant}_{size}_{params.headline}", st["mean"], now, 0))
            v = d["verdict"]
            ms.append(Metric(f"{task}_low_data_wins", v["low_data_wins"], now, 0))
            ms.append(Metric(f"{task}_low_data_clear_wins", v["low_data_clear_wins"], now, 0))
            ms.append(Metric(f"{task}_low_data_clear_losses", v["low_data_clear_losses"], now, 0))
        for i in range(0, len(ms), 900):
            client.log_batch(rid, metrics=ms[i : i + 900])
        client.log_batch(rid, params=[Param("headline", params.headline), Param("low_data", str(params.low_data))])
        for p in artifacts:
            if Path(p).is_file():
                client.log_artifact(rid, str(p), artifact_path="png" if str(p).endswith(".png") else None)
        status = "FINISHED"
    finally:
        client.set_terminated(rid, status=status)


__all__ = ["METRICS", "aggregate", "mean_stderr", "run_evaluate", "verdict"]
