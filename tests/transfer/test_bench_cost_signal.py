"""benchmarks/bench_cost_signal.py: the fixed trees score as they must (the hidden costs give the targets
exactly) and the regression diagnostic fits a cost network and scores it on every split."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from nar.natural import load_natural
from nar.transfer.graphs import FlatSplit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT / "benchmarks"))
        import bench_cost_signal

        yield bench_cost_signal


def test_reference_trees_and_the_regression_ceiling(bench: ModuleType, natural_root: Path) -> None:
    splits = {s: FlatSplit(load_natural(natural_root / "road" / s)) for s in ("val", "test")}
    ref = bench.reference(splits)
    for split in splits:
        assert ref[split]["true"] == 100.0  # the targets are the hidden costs' tree
        assert 0.0 <= ref[split]["length"] <= 100.0 and 0.0 <= ref[split]["uniform"] <= 100.0
    train = FlatSplit(load_natural(natural_root / "road" / "train"))
    row = bench.ceiling(train, splits, context=1, seed=0, steps=3)
    assert set(row) == {"val", "test"} and all(0.0 <= v <= 100.0 for v in row.values())
    summary = bench.summary(
        {
            "bottleneck": [{"signal": "blackbox", "size": 8, "val": v, "val_ood": v} for v in (90.0, 92.0)],
            "ceiling": [{"context": 0, "val": 95.0, "val_ood": 94.0}],
        }
    )
    assert summary["bottleneck"]["blackbox n=8"]["val"] == "91.00 ± 1.00"
    assert summary["ceiling"]["context 0"]["val"] == "95.00 ± nan"  # one seed: no standard error
