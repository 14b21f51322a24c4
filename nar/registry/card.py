"""The Markdown model card of a registered processor, with the CLRS anchors its scores are held against."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from nar.registry.format import CONFIG_FILE, MODEL_DATA_DIR, WEIGHTS_FILE, ProcessorMeta, config_sha256
from nar.registry.gate import PERCENT, TAG_UNIT, ood_scores, version_ood_scores

#: out-of-distribution anchors (n = 64, % nodes with the correct predecessor), see DESIGN.md
CLRS_ANCHORS: dict[str, tuple[float, float]] = {
    # algorithm: (MPNN, CLRS-30 paper; Triplet-GMPNN, Ibarz et al. 2022 Table 2)
    "bfs": (99.89, 99.73),
    "bellman_ford": (92.01, 97.39),
    "dijkstra": (91.50, 96.05),
    "mst_prim": (69.08, 86.39),
    "floyd_warshall": (26.74, 48.52),
}


def model_card(
    *,
    name: str,
    version: str | None,
    meta: ProcessorMeta,
    metrics: Mapping[str, Any],
    lineage: Mapping[str, Any],
    gate_reason: str = "",
) -> str:
    """The Markdown card of a registered processor."""
    cfg = meta.config
    size, scores = ood_scores(metrics)
    title = f"{name} version {version}" if version else name
    uri = f"models:/{name}/{version}" if version else f"models:/{name}@champion"
    lines = [
        f"# {title}",
        "",
        f"Frozen **{cfg.kind}** processor (hidden {cfg.hidden}, layer norm {cfg.layer_norm}, gated {cfg.gated}, "
        f"message MLP layers {cfg.msg_mlp_layers}"
        + (f", triplet features {cfg.triplet_features}" if cfg.kind == "triplet_gmpnn" else "")
        + f"), pretrained as `{meta.name}` on: {', '.join(meta.algorithms) or 'unknown'}.",
        "",
        f"- weights sha256: `{meta.weights_sha256}`",
        f"- processor.json content sha256: `{config_sha256(meta)}`",
        f"- spec versions: {', '.join(f'{a} v{v}' for a, v in sorted(meta.spec_versions.items())) or 'unknown'}",
        f"- git commit: `{lineage.get('git_commit', 'unknown')}`, params hash: `{lineage.get('params_hash', '')}`",
    ]
    if "ood_score" in metrics:
        lines.append(f"- OOD score (mean over algorithms): **{float(metrics['ood_score']):.2f} %**")
    if gate_reason:
        lines.append(f"- champion gate: {gate_reason}")
    at = f"n = {size}" if size else "the largest test size"
    lines += [
        "",
        f"## Out-of-distribution scores ({at}; % nodes with the correct predecessor pointer)",
        "",
        "CLRS anchors: trained on n <= 16, tested on n = 64 (Veličković et al. 2022; Ibarz et al. 2022, Table 2).",
        "",
        "| algorithm | this processor | MPNN (CLRS-30) | Triplet-GMPNN (Ibarz et al.) |",
        "|---|---|---|---|",
    ]
    for algo in sorted(set(meta.algorithms) | set(scores)):
        mpnn, triplet = CLRS_ANCHORS.get(algo, (None, None))
        ours = f"{scores[algo]:.2f}" if algo in scores else "-"
        lines.append(
            f"| {algo} | {ours} | {'-' if mpnn is None else f'{mpnn:.2f}'} | "
            f"{'-' if triplet is None else f'{triplet:.2f}'} |"
        )
    datasets = lineage.get("datasets") or {}
    lines += ["", "## Trained on", ""]
    if datasets:
        for algo, splits in sorted(datasets.items()):
            lines.append(f"- {algo}: " + ", ".join(f"{split} `{v}`" for split, v in sorted(splits.items())))
    else:
        lines.append("- dataset manifests were not found in the workspace")
    for path, md5 in sorted((lineage.get("dvc") or {}).items()):
        lines.append(f"- DVC `{path}`: md5 `{md5}`")
    lines += [
        "",
        "## How to load",
        "",
        "```python",
        "from nar.registry import load_processor, check_fits",
        "",
        f'processor = load_processor("{uri}")  # frozen, eval mode, sha256 and config verified',
        f"check_fits(processor, {cfg.hidden})  # new encoders/decoders must use hidden={cfg.hidden}",
        "```",
        "",
        f"Command line: `nar registry verify {uri}`. The files are `{MODEL_DATA_DIR}/{WEIGHTS_FILE}` "
        f"(safetensors, no pickle) and `{MODEL_DATA_DIR}/{CONFIG_FILE}` in the model's artifacts.",
        "",
    ]
    return "\n".join(lines)


def card_in_percent(description: str, tags: Mapping[str, str]) -> str:
    """A version's model card with its per-algorithm scores in %: cards of versions registered before
    ``score_unit`` show them as fractions (``| bellman_ford | 0.98 | 92.01 | 97.39 |``); their rows get the
    tag's value in % instead, so old and new cards read the same. New cards are returned unchanged."""
    if tags.get(TAG_UNIT) == PERCENT:
        return description
    scores = version_ood_scores(tags)

    def row(match: re.Match) -> str:
        algo, value = match["algo"], float(match["value"])
        if algo not in scores or value > 1.0:
            return match[0]
        return f"| {algo} | {scores[algo]:.2f} |"

    return re.sub(r"^\| (?P<algo>[\w-]+) \| (?P<value>\d+(?:\.\d+)?) \|", row, description, flags=re.M)
