"""The champion gate: when a new version becomes ``champion``, and the scores (in %) it compares.

A new version passes when its gate metric reaches the champion's plus the margin, and it does not lose on
the scale suite (when the champion has a score there). Without a champion the first version passes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nar.registry.format import RegistryError


@dataclass(frozen=True)
class Gate:
    """When a new version becomes ``champion``.

    metric: a dotted path into the pretrain metrics JSON (default ``ood_score``).
    margin: the new score must reach the champion's plus ``margin`` (minus, when lower is better);
        a negative margin tolerates small regressions.
    """

    metric: str = "ood_score"
    margin: float = 0.0
    higher_is_better: bool = True

    @property
    def tag(self) -> str:
        return "ood_score" if self.metric == "ood_score" else f"metric.{self.metric}"

    def decide(self, new: float, champion: float | None, champion_version: str | None) -> tuple[bool, str]:
        if champion_version is None:
            return True, f"no champion yet; {self.metric} {new:.4g}"
        if champion is None:
            return False, (
                f"champion version {champion_version} has no {self.metric} to compare with; "
                "kept it (promote by hand with `nar registry promote`)"
            )
        sign = 1.0 if self.higher_is_better else -1.0
        needed = champion + sign * self.margin
        ok = sign * (new - needed) >= 0
        rel = (">=" if ok else "<") if self.higher_is_better else ("<=" if ok else ">")
        cmp = (
            f"{self.metric} {new:.4g} {rel} champion version {champion_version}'s {champion:.4g} "
            f"{'+' if self.higher_is_better else '-'} margin {self.margin:g}"
        )
        return ok, (f"promoted: {cmp}" if ok else f"kept champion version {champion_version}: {cmp}")


TAG_SCALE = "scale_score"  # mean pointer accuracy (%) on the n = 256 scale suite (nar.execute.suite_scores)
#: every score a version is tagged with (ood_score, ood_score.<algorithm>, scale*) is in %; versions
#: registered before this tag had their per-algorithm scores as fractions (see version_ood_scores)
TAG_UNIT, PERCENT = "score_unit", "percent"


def scale_score(metrics: Mapping[str, Any]) -> float | None:
    """The pretrain metrics' scale-suite score (%), or None when the run has none (dense-only processor)."""
    value = (metrics.get("scale") or {}).get("score") if isinstance(metrics.get("scale"), Mapping) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def scale_gate(reason: str, new: float | None, champion_raw: str | None, champion_version: str) -> tuple[bool, str]:
    """A version that passed the metric gate must also not lose on the scale suite (when the champion has a
    score there): a processor that executes worse on large graphs does not become champion."""
    if champion_raw in (None, ""):
        return True, reason
    champion = float(champion_raw)
    if new is None:
        return False, f"kept champion version {champion_version}: it has {TAG_SCALE} {champion:.4g}, the new one none"
    if new < champion:
        return False, f"kept champion version {champion_version}: {TAG_SCALE} {new:.4g} < its {champion:.4g}"
    return True, f"{reason}; {TAG_SCALE} {new:.4g} >= {champion:.4g}"


def metric_value(metrics: Mapping[str, Any], path: str) -> float:
    obj: Any = metrics
    for part in path.split("."):
        if not isinstance(obj, Mapping) or part not in obj:
            raise RegistryError(f"metrics have no {path!r} (missing {part!r}); the gate needs it")
        obj = obj[part]
    if isinstance(obj, bool) or not isinstance(obj, int | float) or not math.isfinite(obj):
        raise RegistryError(f"metrics {path!r} is {obj!r}, not a finite number")
    return float(obj)


def as_percent(value: float) -> float:
    """A score in %: values in [0, 1] are fractions (what ``nar.training.metrics`` computes), larger ones are %.

    Only the fallback of :func:`ood_scores` (metrics written before per-algorithm scores in %) and versions
    registered before ``score_unit`` need it; the one reading it gets wrong is a score of at most 1 %
    written by hand in %, a processor that learned nothing either way."""
    return 100.0 * value if 0.0 <= value <= 1.0 else value


def ood_scores(metrics: Mapping[str, Any]) -> tuple[int | None, dict[str, float]]:
    """(largest test size, {algorithm: score in % at that size}) from the pretrain metrics.

    Per algorithm: its own ``ood_score`` (in %, as ``nar pretrain`` writes it) if given, else the test
    entry at the largest size (fractions, as the training metrics compute them): its ``score``, else its
    ``pi`` (predecessor pointers), else the mean of its numbers, in % (:func:`as_percent`).
    """
    sizes: set[int] = set()
    scores: dict[str, float] = {}
    for algo, entry in (metrics.get("algorithms") or {}).items():
        if not isinstance(entry, Mapping):
            continue
        test = entry.get("test") or {}
        sized = {int(k): v for k, v in test.items() if str(k).isdigit() and isinstance(v, Mapping)}
        own = entry.get("ood_score")
        if isinstance(own, int | float) and not isinstance(own, bool):
            scores[algo] = float(own)
        elif sized:
            at = sized[max(sized)]
            nums = {k: float(v) for k, v in at.items() if isinstance(v, int | float) and not isinstance(v, bool)}
            if "score" in nums:
                scores[algo] = as_percent(nums["score"])
            elif "pi" in nums:
                scores[algo] = as_percent(nums["pi"])
            elif nums:
                scores[algo] = as_percent(sum(nums.values()) / len(nums))
        sizes.update(sized)
    return (max(sizes) if sizes else None), scores


def version_ood_scores(tags: Mapping[str, str]) -> dict[str, float]:
    """A version's per-algorithm ``ood_score.<algorithm>`` tags in %; versions registered before
    ``score_unit`` tagged them as fractions."""
    percent = tags.get(TAG_UNIT) == PERCENT
    scores = {}
    for key, raw in tags.items():
        if key.startswith("ood_score.") and key.count(".") == 1:
            try:
                value = float(raw)
            except ValueError:
                continue
            scores[key.split(".", 1)[1]] = value if percent else as_percent(value)
    return scores
