"""``reports/blueprint.md``: the verdict in words, the per-task tables (mean ± standard error over seeds)
and the figures, plus the investigation notes."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nar.transfer.config import EvaluateParams
from nar.transfer.evaluate.figures import COLORS
from nar.transfer.evaluate.stats import OUTCOMES, RATIOS, sizes_of
from nar.transfer.variants import TRAINED


@dataclass(frozen=True)
class NumberFormat:
    """How the verdict writes one metric's numbers: ``scale`` times the value with ``digits`` decimals, and
    differences in ``unit`` (a fraction in points of %, a ratio as it is)."""

    scale: float
    digits: int
    unit: str

    @classmethod
    def of(cls, metric: str) -> NumberFormat:
        return cls(1.0, 3, "ratio") if metric in RATIOS else cls(100.0, 1, "points")

    def num(self, x: float) -> str:
        return f"{self.scale * x:.{self.digits}f}"

    def signed(self, x: float) -> str:
        return f"{self.scale * x:+.{self.digits}f}"


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
    fmt = NumberFormat.of(h)
    others = v.get("other_processor_variants") or {}
    for subject, block in {"nar_frozen": v, **others}.items():
        lines += _low_data_lines(task, block, subject, h, v["low_data"], fmt)
    ah = v.get("against_heuristic")
    if ah and ah["comparisons"]:
        values = [x for x in ah["heuristic"].values() if x is not None]
        level = fmt.num(values[0]) if values else "–"
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
    for turns in [v.get("turns"), *[b.get("turns") for b in others.values()]]:
        if turns:
            lines.append(_turn_line(task, turns, fmt))
    ceiling = v.get("ceiling")
    if ceiling:
        parts = []
        for split, c in ceiling.items():
            if c["ceiling"] is None:
                continue
            bests = ", ".join(f"{subject} {fmt.num(b)}" for subject, b in c.get("best", {}).items())
            parts.append(f"{split} {fmt.num(c['ceiling'])}" + (f" (best mean over sizes: {bests})" if bests else ""))
        lines.append(
            f"- **{task}** processor ceiling (the whole pretrained network on the hidden true costs, nothing "
            f"learned: what nar_frozen and nar_costs could reach with a perfect encoder and decoder), {h}: "
            + "; ".join(parts)
            + "."
        )
    if v["ood_drop"]:
        drops = ", ".join(f"{k} {100 * d:+.1f}" for k, d in sorted(v["ood_drop"].items(), key=lambda kv: kv[1]))
        lines.append(
            f"- **{task}** out of distribution: drop of {h} from test to ood (points, mean over sizes): {drops}; "
            f"least drop: **{v['loses_least_ood']}**. Mean ood {h}: "
            + ", ".join(f"{k} {100 * m:.1f}" for k, m in sorted(v["ood_mean"].items(), key=lambda kv: -kv[1]))
            + "."
        )
    return lines


def _low_data_lines(
    task: str, block: Mapping[str, Any], subject: str, h: str, low_data: int, fmt: NumberFormat
) -> list[str]:
    """One variant around the frozen processor against e2e and bottleneck with few examples."""
    if not block.get("low_data_comparisons"):
        return []
    outcomes = [c.get("outcome") for c in block["comparisons"]]
    counts = ", ".join(f"{word} in {outcomes.count(word)}" for word in OUTCOMES if outcomes.count(word))
    lines = [
        f"- **{task}**: test {h} of {subject} against e2e and bottleneck at n ≤ {low_data} "
        f"({block['low_data_comparisons']} comparisons): {counts}. A difference counts as better or worse only "
        "beyond two standard errors of the difference (over the seeds); anything closer is not distinguishable."
    ]
    for c in block["comparisons"]:
        rival = c["rival"]
        lines.append(f"  - n={c['size']}, {subject} vs {rival}: " + _comparison_text(c, rival, fmt))
    return lines


def _turn_line(task: str, turns: Mapping[str, Any], fmt: NumberFormat) -> str:
    """Issue 16's road_turns targets for one variant around the frozen processor, in one line."""
    subject = turns.get("subject", "nar_frozen")
    parts = [
        f"n={c['size']} {fmt.num(c[subject])} vs {fmt.num(c['bottleneck'])}: **{c['outcome']}**"
        for c in turns["vs_bottleneck"]
    ]
    line = (
        f"- **{task}** turn targets: {subject} against bottleneck (one cost per segment) at n ≥ 100: "
        + ("; ".join(parts) or "no sizes")
        + f" (holds: {'yes' if turns.get('beats_bottleneck_from') else 'no'})."
    )
    g = turns.get("gap_to_bottleneck_turns")
    if g:
        line += (
            f" {subject} at n={g['size']} is {fmt.signed(g['gap'])} {fmt.unit} behind bottleneck_turns "
            f"({fmt.num(g[subject])} vs {fmt.num(g['bottleneck_turns'])}; within 5 "
            f"points: {'yes' if turns.get('within_5_points_of_bottleneck_turns') else 'no'})."
        )
    return line


def _comparison_text(c: Mapping[str, Any], rival: str, fmt: NumberFormat) -> str:
    """``77.6 ± 8.5 vs 87.9 ± 0.5: difference -10.3 ± 8.5 points: **not distinguishable** (within 2 s.e.)``."""

    def value(mean: float, se: float | None) -> str:
        return fmt.num(mean) + ("" if se is None else f" ± {fmt.num(se)}")

    subject = c.get("subject", "nar_frozen")
    a, b = c[subject], c[rival]
    diff = c.get("difference", a - b)
    se = c.get("difference_stderr")
    outcome = c.get("outcome") or ("better" if c.get("wins") else "worse")
    why = {
        "better": "beyond 2 s.e.",
        "worse": "beyond 2 s.e.",
        "not distinguishable": "within 2 s.e." if se is not None else "one seed: no standard error",
    }[outcome]
    spread = "" if se is None else f" ± {fmt.num(se)}"
    return (
        f"{value(a, c.get(f'{subject}_stderr'))} vs {value(b, c.get(f'{rival}_stderr'))}: "
        f"difference {fmt.signed(diff)}{spread} {fmt.unit}: **{outcome}** ({why})"
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
        "**nar_costs** (f~ predicts one cost per cell/segment, as the bottleneck's; the whole frozen pretrained "
        "network, its own input encoders, processor and hint loop, runs on those costs; a new pointer decoder g~ "
        "reads its encodings and last state), "
        "**nar_finetune** (same, processor trained too), **e2e** (same architecture, processor randomly initialised), "
        "**bottleneck** (predict one cost per cell/segment, run the exact shortest-path solver, trained from the "
        "targets by blackbox differentiation or, where the task's `bottleneck_loss` says tree_hinge (the road "
        "tasks), on the true tree's optimality conditions as a hinge), **bottleneck_turns** (road_turns only: a "
        "cost per segment and per turn, the exact edge-based solver, trained as bottleneck: the engineered "
        "reference), "
        "**heuristic** (the exact algorithm on the most obvious visible proxy "
        "of the cost, no learning: segment length on roads, a uniform cost per cell on digit grids; turn delays "
        "ignored), **oracle** (the exact algorithm on the hidden true costs), **ceiling** (the whole pretrained "
        "network, its own encoder and decoder around the frozen processor, run on the hidden true costs: how far "
        "the processor itself executes the algorithm on these graphs; on road_turns the segment times only). "
        "heuristic, oracle and ceiling need no training: each is scored once and shown at every n.",
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
            f"sha256 `{str(proc.get('sha256'))[:16]}…` (unchanged by every nar_frozen and nar_costs run). "
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
    return os.path.relpath(Path(p).resolve(), Path(start).resolve())
