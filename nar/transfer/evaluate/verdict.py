"""The verdict of one task: does nar_frozen (and every other variant around the frozen processor, nar_costs)
beat e2e and bottleneck with few examples, which variant loses least out of distribution, how every trained
variant fares against the heuristic, and (turn tasks) issue 16's targets. Input: an aggregate of
:func:`nar.transfer.evaluate.stats.aggregate`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from nar.transfer.evaluate.stats import advantage, best, compare, size_of
from nar.transfer.variants import FROZEN_TRAINED, TRAINED


def verdict(agg: Mapping[str, Any], headline: str, low_data: int) -> dict[str, Any]:
    """Does nar_frozen beat e2e and bottleneck at sizes <= low_data (test split), and which trained
    variant loses least from test to ood (mean over sizes of test - ood on the headline metric)?
    The top-level comparisons, counts and turn targets are nar_frozen's (the headline of issue 16);
    ``other_processor_variants`` holds the same for every other variant trained around the frozen
    processor that the sweep ran (``nar_costs``)."""
    test = agg.get("test", {})
    out: dict[str, Any] = {"headline": headline, "low_data": low_data}
    out.update(low_data_comparisons(agg, headline, low_data, "nar_frozen"))
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
                diffs.append(advantage(a, b, headline))  # test ahead of ood: the drop
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
    out["turns"] = turn_targets(agg, headline, "nar_frozen")
    out["ceiling"] = processor_ceiling(agg, headline)
    out["other_processor_variants"] = {
        subject: {
            **low_data_comparisons(agg, headline, low_data, subject),
            "turns": turn_targets(agg, headline, subject),
        }
        for subject in FROZEN_TRAINED
        if subject != "nar_frozen" and subject in test
    }
    return out


def low_data_comparisons(agg: Mapping[str, Any], headline: str, low_data: int, subject: str) -> dict[str, Any]:
    """``subject`` (a variant around the frozen processor) against e2e and bottleneck at every size <=
    ``low_data`` on the test split: per comparison the means, the difference, its standard error and the
    outcome by the 2-s.e. rule (:func:`compare`), and the counts of wins (the better mean, by :func:`advantage`,
    however close), clear wins and clear losses."""
    test = agg.get("test", {})
    comparisons = []
    wins = clear_wins = 0
    mine_by_size = test.get(subject, {})
    for rival in ("e2e", "bottleneck"):
        for size, cell in sorted(mine_by_size.items(), key=lambda kv: size_of(kv[0])):
            if size_of(size) > low_data or rival not in test or size not in test[rival]:
                continue
            mine, theirs = cell.get(headline, {}), test[rival][size].get(headline, {})
            a, b = mine.get("mean"), theirs.get("mean")
            if a is None or b is None:
                continue
            won = advantage(a, b, headline) > 0
            wins += won
            c = compare(a, b, mine.get("stderr"), theirs.get("stderr"), mine.get("n", 0), theirs.get("n", 0), headline)
            clear_wins += c["outcome"] == "better"
            comparisons.append(
                {
                    "subject": subject,
                    "rival": rival,
                    "size": size_of(size),
                    subject: a,
                    rival: b,
                    f"{subject}_stderr": mine.get("stderr"),
                    f"{rival}_stderr": theirs.get("stderr"),
                    "wins": won,
                    **c,
                }
            )
    total = len(comparisons)
    return {
        "comparisons": comparisons,
        "low_data_wins": wins,
        "low_data_clear_wins": clear_wins,
        "low_data_clear_losses": sum(c["outcome"] == "worse" for c in comparisons),
        "low_data_comparisons": total,
        "beats_baselines_low_data": total > 0 and wins == total,
    }


def processor_ceiling(agg: Mapping[str, Any], headline: str) -> dict[str, Any] | None:
    """Per split, the frozen processor's own ``headline`` on the true costs (``ceiling``: one number, scored
    once) beside the best mean over sizes of each variant around the frozen processor (``best``, by variant):
    how much of their gap the processor leaves. None when the sweep has no ceiling."""
    out: dict[str, Any] = {}
    for split in ("test", "ood"):
        cells = agg.get(split, {}).get("ceiling")
        if not cells:
            continue
        level = next(iter(cells.values())).get(headline, {}).get("mean")
        best_means = {}
        for subject in FROZEN_TRAINED:
            means = [c.get(headline, {}).get("mean") for c in agg[split].get(subject, {}).values()]
            means = [x for x in means if x is not None]
            if means:
                best_means[subject] = best(means, headline)
        out[split] = {"ceiling": level, "best": best_means}
    return out or None


def turn_targets(
    agg: Mapping[str, Any], headline: str, subject: str = "nar_frozen", from_size: int = 100, at_size: int = 200
) -> dict | None:
    """Issue 16's road_turns targets, on the test split: ``subject`` (nar_frozen in the issue) against
    bottleneck at every size >= ``from_size`` (2-s.e. rule), and its gap to bottleneck_turns at ``at_size``
    (within 5 points holds). None when the sweep has no bottleneck_turns (a task without turns) or no subject."""
    test = agg.get("test", {})
    if "bottleneck_turns" not in test or subject not in test:
        return None
    out: dict[str, Any] = {"subject": subject, "vs_bottleneck": [], "gap_to_bottleneck_turns": None}
    frozen = test[subject]
    for size, cell in sorted(frozen.items(), key=lambda kv: size_of(kv[0])):
        other = test.get("bottleneck", {}).get(size, {}).get(headline, {})
        mine = cell.get(headline, {})
        if size_of(size) < from_size or mine.get("mean") is None or other.get("mean") is None:
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
        out["vs_bottleneck"].append({"size": size_of(size), subject: mine["mean"], "bottleneck": other["mean"], **c})
    out["beats_bottleneck_from"] = bool(out["vs_bottleneck"]) and all(
        c["outcome"] == "better" for c in out["vs_bottleneck"]
    )
    a = frozen.get(f"n{at_size}", {}).get(headline, {}).get("mean")
    b = test["bottleneck_turns"].get(f"n{at_size}", {}).get(headline, {}).get("mean")
    if a is not None and b is not None:
        gap = advantage(b, a, headline)  # how far bottleneck_turns is ahead
        out["gap_to_bottleneck_turns"] = {"size": at_size, subject: a, "bottleneck_turns": b, "gap": gap}
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
        out["heuristic"][str(size_of(size))] = cell.get(headline, {}).get("mean")
    for variant in TRAINED:
        for size, cell in sorted(test.get(variant, {}).items(), key=lambda kv: size_of(kv[0])):
            mine, theirs = cell.get(headline, {}), heur.get(size, {}).get(headline, {})
            a, b = mine.get("mean"), theirs.get("mean")
            if a is None or b is None:
                continue
            # the heuristic has no spread over seeds: it is one deterministic number
            c = compare(a, b, mine.get("stderr"), theirs.get("stderr"), mine.get("n", 0), theirs.get("n", 0), headline)
            out["comparisons"].append({"variant": variant, "size": size_of(size), variant: a, "heuristic": b, **c})
            if c["outcome"] == "better":
                out["better_at"].setdefault(variant, []).append(size_of(size))
    return out
