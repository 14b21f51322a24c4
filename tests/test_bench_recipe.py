"""benchmarks/bench_recipe.py: overrides change the named keys of the stage's run, the validation graphs are
the project's samplers' (one-way streets when asked), and a bad override stops with one line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT / "benchmarks"))
        import bench_recipe

        yield bench_recipe


def test_overrides_set_dotted_keys_as_yaml_values(bench: ModuleType) -> None:
    run = {"mix": {"sizes": [8, 16], "oneway": 0.3}, "train": {"steps": 4000}}
    out = bench.override(run, ["mix.sizes=[8,16,128]", "train.steps=6000", "model.hidden=128"])
    assert out == {"mix": {"sizes": [8, 16, 128], "oneway": 0.3}, "train": {"steps": 6000}, "model": {"hidden": 128}}
    with pytest.raises(SystemExit, match="expected dotted.key=value"):
        bench.override(run, ["train.steps"])


def test_validation_graphs_follow_the_item(bench: ModuleType) -> None:
    two_way = bench.draw_val("bellman_ford", "grid:25", np.random.default_rng(0), count=2)
    one_way = bench.draw_val("bellman_ford", "grid:25:0.5", np.random.default_rng(0), count=2)
    assert two_way.num_nodes.tolist() == [25, 25]
    adj = lambda b: b.inputs["A"][0].numpy() > 0  # noqa: E731  the first graph's weights (n, n)
    assert (adj(two_way) == adj(two_way).T).all()
    assert not (adj(one_way) == adj(one_way).T).all()


def test_a_saved_network_loads_as_a_pretraining_run(bench: ModuleType, tmp_path: Path) -> None:
    from types import SimpleNamespace

    from nar.algorithms import ALGORITHMS
    from nar.execute import load_pretrained
    from nar.models import EncodeProcessDecode, ModelConfig
    from nar.models.processors import ProcessorConfig
    from nar.registry import load_registered, weights_sha256

    config = ModelConfig(processor=ProcessorConfig(kind="mpnn", hidden=8), messages="sparse")
    model = EncodeProcessDecode([ALGORITHMS["bellman_ford"].spec], config)
    run = SimpleNamespace(model=config, train=SimpleNamespace(algorithms=["bellman_ford"]))
    bench.save_network(model, run, tmp_path / "net", "bellman_ford-recipe")
    executor = load_pretrained(tmp_path / "net")
    assert executor.algorithms == ["bellman_ford"]
    assert weights_sha256(executor.model) == weights_sha256(model)
    assert load_registered(str(tmp_path / "net"), allow_unverified=True).sha256 == weights_sha256(model.processor)
