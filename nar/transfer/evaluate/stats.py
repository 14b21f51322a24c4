"""Statistics over seeds: mean and standard error per cell, mean learning curves, and the 2-s.e. comparison.

A sweep's results are nested ``results[variant]["n<size>"]["s<seed>"][split][metric]`` (one number per
seed); everything here reduces the seed level and keeps the rest of the nesting.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

LOWER_IS_BETTER = {"regret", "regret_all", "invalid_rate"}
RATIOS = {"regret", "regret_all"}  # shown as ratios; every other metric is a fraction shown in %
OUTCOMES = ("better", "worse", "not distinguishable")


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


def size_of(key: str) -> int:
    """``"n200"`` -> 200 (the training-set size of a results key)."""
    return int(key.lstrip("n"))


def sizes_of(agg: Mapping[str, Any]) -> list[int]:
    """Every training-set size of an aggregate, ascending."""
    return sorted({size_of(k) for by_variant in agg.values() for by_size in by_variant.values() for k in by_size})


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


def advantage(a: float, b: float, metric: str) -> float:
    """How far ``a`` is ahead of ``b`` in the metric's good direction: ``a - b``, or ``b - a`` for a metric in
    LOWER_IS_BETTER; positive when ``a`` is the better one, whatever the spread over seeds."""
    return b - a if metric in LOWER_IS_BETTER else a - b


def best(values: Iterable[float], metric: str) -> float:
    """The best of ``values`` in the metric's good direction (the lowest for a metric in LOWER_IS_BETTER)."""
    return (min if metric in LOWER_IS_BETTER else max)(values)


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
        outcome = "better" if advantage(a, b, metric) > 0 else "worse"
    return {"difference": diff, "difference_stderr": se, "beyond_2se": beyond, "outcome": outcome}
