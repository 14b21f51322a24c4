"""benchmarks/merge_scale_seeds.py: the mean and standard error over training seeds of bench_scale results,
on hand-made numbers; cells a seed lacks are left out."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _result(cells: dict[str, dict[str, float]]) -> dict:
    by_family = {f: {n: {"accuracy": a, "graphs": 3} for n, a in sizes.items()} for f, sizes in cells.items()}
    return {"models": {"m": {"results": {"bellman_ford": {"exact": by_family, "default": {}}}}}}


def test_mean_and_standard_error_over_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from merge_scale_seeds import mean_over_seeds, seed_cells

    seeds = [
        seed_cells(_result({"grid": {"256": 90.0, "1024": 80.0}, "path": {"256": 50.0}}), "bellman_ford", "exact"),
        seed_cells(_result({"grid": {"256": 92.0, "1024": 82.0}}), "bellman_ford", "exact"),
        seed_cells(_result({"grid": {"256": 94.0, "1024": 84.0}}), "bellman_ford", "exact"),
    ]
    out = mean_over_seeds(seeds)
    se = round(2.0 / math.sqrt(3), 2)  # sample std 2 over sqrt(3 seeds)
    assert out["grid"]["256"] == {"mean": 92.0, "stderr_over_seeds": se, "seeds": [90, 92, 94]}
    assert out["grid"]["1024"]["mean"] == 82.0
    assert "path" not in out  # scored for one seed only
    with pytest.raises(ValueError, match="no 'bfs' results"):
        seed_cells(_result({}), "bfs", "exact")
