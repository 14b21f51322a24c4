"""The evaluate stage's CSVs, one file per task in one folder per kind (DVC plots: the folders are declared
once in dvc.yaml, whatever ``evaluate.tasks`` lists)::

    <root>/scores/<task>.csv   headline metric against training examples: size, <variant>_<split>...
    <root>/curves/<task>.csv   validation pointer accuracy against step, mean over seeds: step, <variant>_n<size>...
    <root>/tables/<task>.csv   every aggregate, long format: task, split, variant, size, metric, mean, stderr, seeds
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nar.transfer.evaluate.figures import COLORS
from nar.transfer.evaluate.stats import size_of, sizes_of

KINDS = ("scores", "curves", "tables")


def clear_tables(root: Path) -> None:
    """Remove the CSVs of every task from ``root``'s kind folders, so that a task no longer evaluated
    leaves no stale file for ``dvc plots show`` to draw (under ``dvc repro`` DVC has removed them already)."""
    for kind in KINDS:
        for path in sorted((Path(root) / kind).glob("*.csv")):
            path.unlink()


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
    scores = root / "scores" / f"{task}.csv"
    _write_csv(
        scores,
        ["size", *[f"{v}_{s}" for v, s in cols]],
        ([n, *[agg[s][v].get(f"n{n}", {}).get(headline, {}).get("mean") for v, s in cols]] for n in sizes),
    )
    table = root / "tables" / f"{task}.csv"
    rows = []
    for s in splits:
        for v in variants:
            for size, cell in sorted(agg[s].get(v, {}).items(), key=lambda kv: size_of(kv[0])):
                for m, st in cell.items():
                    rows.append([task, s, v, size_of(size), m, st["mean"], st["stderr"], st["n"]])
    _write_csv(table, ["task", "split", "variant", "size", "metric", "mean", "stderr", "seeds"], rows)
    curve_path = root / "curves" / f"{task}.csv"
    keys = [(v, k) for v in variants if v in curves for k in sorted(curves[v], key=size_of)]
    steps = sorted({s for v, k in keys for s, _, _ in curves[v][k]})
    lookup = {(v, k): {s: m for s, m, _ in curves[v][k]} for v, k in keys}
    _write_csv(
        curve_path,
        ["step", *[f"{v}_{k}" for v, k in keys]],
        ([s, *[lookup[(v, k)].get(s) for v, k in keys]] for s in steps),
    )
    return [scores, table, curve_path]
