"""benchmarks/bench_transfer_stalls.py: each setting changes one documented field of the task's transfer
parameters, and bad settings or runs stop with one line before any training."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from nar.transfer.config import TaskTransferParams

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT / "benchmarks"))
        import bench_transfer_stalls

        yield bench_transfer_stalls


def test_settings_change_one_field_each(bench: ModuleType) -> None:
    base = TaskTransferParams()
    assert bench.setting_overrides("base") == {}
    for setting, field, value in [
        ("bfloat16", "precision", "bfloat16"),
        ("cosine", "lr_schedule", "cosine"),
        ("lr0.005", "learning_rate", 0.005),
    ]:
        changed = dataclasses.replace(base, **bench.setting_overrides(setting))
        assert getattr(changed, field) == value
        assert getattr(changed, field) != getattr(base, field)  # a setting that changes nothing tests nothing
        differ = [f.name for f in dataclasses.fields(base) if getattr(base, f.name) != getattr(changed, f.name)]
        assert differ == [field]


@pytest.mark.parametrize("setting", ["fp16", "lr", "lrfast", ""])
def test_unknown_setting_is_one_line(bench: ModuleType, setting: str) -> None:
    with pytest.raises(SystemExit, match="unknown setting .*allowed: base, float32, bfloat16, cosine, lr<float>"):
        bench.setting_overrides(setting)


@pytest.mark.parametrize("run", ["nar_frozen:200", "nar_frozen:n200:4", "nar_frozen:200:-1"])
def test_bad_run_is_one_line(bench: ModuleType, run: str) -> None:
    with pytest.raises(SystemExit, match="is not variant:size:seed"):
        bench.parse_run(run)


def test_untrained_variant_refused_before_training(bench: ModuleType) -> None:
    with pytest.raises(SystemExit, match="'oracle' is not a trained variant; allowed: .*nar_frozen"):
        bench.main(["--runs", "oracle:100:0", "--out", "/nonexistent/never_written.json"])
