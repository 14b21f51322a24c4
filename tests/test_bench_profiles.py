"""benchmarks/profiles.py: a benchmark's model and training come from a params profile with -S overrides,
validated by nar.config; and the documented bench_quality command runs end to end on a tiny profile."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from nar.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


@pytest.fixture(scope="module")
def profiles() -> Iterator[ModuleType]:
    """benchmarks/profiles.py, imported as its scripts import it (benchmarks/ first on the path)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))
        import profiles

        yield profiles


def test_overrides_change_one_key_and_are_validated(profiles: ModuleType) -> None:
    params = profiles.profile_params(ROOT / "params.yaml", "bfs", ["train.steps=7", "model.processor.hidden=16"])
    run, generate = profiles.load_profile(params, "bfs")
    assert run.train.steps == 7 and run.model.processor.hidden == 16
    assert run.model.processor.kind == "mpnn"  # the rest is the profile's
    assert profiles.sampler_config(generate).p_range == (0.1, 0.9)
    bad = profiles.profile_params(ROOT / "params.yaml", "bfs", ["train.stepz=7"])
    with pytest.raises(ConfigError, match=r"pretrain\.runs\.bfs\.train\.stepz"):
        profiles.load_profile(bad, "bfs")
    with pytest.raises(SystemExit, match="not in pretrain.runs"):
        profiles.profile_params(ROOT / "params.yaml", "nope", [])


def test_bench_quality_runs_a_tiny_profile(tmp_path: Path) -> None:
    out = tmp_path / "quality.json"
    tiny = ["-S", "train.steps=2", "-S", "train.eval_every=1", "-S", "model.processor.kind=mpnn"]
    tiny += ["-S", "model.processor.hidden=8", "-S", "model.processor.full_adjacency=false"]
    cmd = [sys.executable, str(BENCHMARKS / "bench_quality.py"), *tiny, "--graphs", "clrs", "--out", str(out)]
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
    (run,) = json.loads(out.read_text())["runs"]
    assert run["algorithm"] == "bellman_ford" and run["model"]["processor"]["hidden"] == 8
    assert set(run["test_scores"]) == {"64", "64x128", "clrs64", "clrs64x128"}
