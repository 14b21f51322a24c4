"""params.yaml validation: every bad value stops with one message naming key, value and what is allowed."""

from pathlib import Path

import pytest
import yaml

from nar.config import ConfigError, load_params, parse_params

ROOT = Path(__file__).resolve().parents[1]


def test_repository_params_are_valid():
    params = load_params(ROOT / "params.yaml")
    assert "bellman_ford" in params.generate.algorithms
    assert params.generate.splits["test"].sizes == (64,)


def test_params_yaml_and_the_tasks_agree_on_the_transfer_settings_both_write():
    """A task's ``TASK.transfer`` fills the transfer fields params.yaml leaves null (tests, a task registered without
    a params.yaml entry); params.yaml writes some of them out too (digit_grid's budget: max_steps 600, patience 12),
    where users read them. Both stay, so they must not drift: every value written in both places is equal."""
    from nar.natural.config import NATURAL_TASKS

    written = yaml.safe_load((ROOT / "params.yaml").read_text())["transfer"]["tasks"]
    assert {k: written["digit_grid"][k] for k in ("max_steps", "patience")} == {"max_steps": 600, "patience": 12}
    for task, entry in written.items():
        for key, default in NATURAL_TASKS[task].transfer.items():
            if entry.get(key) is not None:
                assert entry[key] == default, f"params.yaml transfer.tasks.{task}.{key}: {entry[key]} != {default}"
    loaded = load_params(ROOT / "params.yaml", "transfer").transfer
    for key in ("max_steps", "patience"):
        assert getattr(loaded.task("digit_grid"), key) == NATURAL_TASKS["digit_grid"].transfer[key]


def test_defaults_fill_missing_sections():
    params = parse_params({})
    assert params.generate.seed == 42


def test_params_are_frozen():
    params = parse_params({})
    with pytest.raises(AttributeError):
        params.generate.seed = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        params.generate.splits["train"] = None  # type: ignore[index]


@pytest.mark.parametrize(
    ("data", "key", "allowed"),
    [
        ({"generate": {"seed": -1}}, "generate.seed", ">= 0"),
        ({"generate": {"seed": "a"}}, "generate.seed", "an integer"),
        ({"generate": {"seed": 1.5}}, "generate.seed", "an integer"),
        ({"generate": {"seed": True}}, "generate.seed", "an integer"),
        ({"generate": {"colour": 1}}, "generate.colour", "one of the keys"),
        ({"generat": {}}, "generat", "one of the sections"),
        ({"generate": {"algorithms": ["quicksort"]}}, "generate.algorithms[0]", "bellman_ford"),
        ({"generate": {"algorithms": []}}, "generate.algorithms", "non-empty"),
        ({"generate": {"algorithms": "bfs"}}, "generate.algorithms", "a list"),
        ({"generate": {"algorithms": ["bellman_ford", "bellman_ford"]}}, "generate.algorithms", "no repeats"),
        ({"generate": {"sampler": {"p_range": [0, 0.5]}}}, "generate.sampler.p_range", "0 < low"),
        ({"generate": {"sampler": {"p_range": [0.5, 1.5]}}}, "generate.sampler.p_range", "<= 1"),
        ({"generate": {"sampler": {"p_range": [0.5]}}}, "generate.sampler.p_range", "exactly 2"),
        ({"generate": {"sampler": {"kind": "torus"}}}, "generate.sampler.kind", "'er'"),
        ({"generate": {"splits": {"train": {"count": 0, "sizes": [4]}}}}, "generate.splits.train.count", ">= 1"),
        ({"generate": {"splits": {"train": {"count": 5, "sizes": [-4]}}}}, "generate.splits.train.sizes[0]", "1 to"),
        ({"generate": {"splits": {"train": {"count": 5}}}}, "generate.splits.train.sizes", "missing"),
        ({"generate": {"splits": {}}}, "generate.splits", "non-empty"),
        ({"generate": {"shard_size": 0}}, "generate.shard_size", ">= 1"),
    ],
)
@pytest.mark.fault(
    category="config",
    fault="generate section: bad value (library validation)",
    expected="ConfigError naming key, value and what is allowed",
)
def test_bad_values_name_key_value_and_allowed(data, key, allowed):
    with pytest.raises(ConfigError) as info:
        parse_params(data)
    message = str(info.value)
    assert message.startswith(f"{key}:"), message
    assert allowed in message, message


@pytest.mark.fault(
    category="config", fault="params.yaml missing, or not valid YAML", expected="ConfigError naming the file", inputs=2
)
def test_unparsable_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="params.yaml"):
        load_params(tmp_path / "params.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("generate: [unclosed\n")
    with pytest.raises(ConfigError, match="valid YAML"):
        load_params(bad)


def test_load_round_trip(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"generate": {"seed": 7, "algorithms": ["bellman_ford"]}}))
    assert load_params(path).generate.seed == 7


def test_every_sampler_knob_is_a_generate_sampler_key():
    """generate.sampler has each field of the sampler, with the sampler's own default, and builds that sampler."""
    import dataclasses

    from nar.config import SamplerParams
    from nar.data.samplers import GraphSamplerConfig

    knobs = {f.name: f.default for f in dataclasses.fields(GraphSamplerConfig)}
    assert {f.name: f.default for f in dataclasses.fields(SamplerParams)} == knobs
    sampler = {"kind": "geometric", "mean_degree": 3.0, "knn": 1, "connect": False, "weight_noise": 0.1}
    params = parse_params({"generate": {"sampler": sampler}}, ("generate",)).generate
    assert params.sampler.sampler() == GraphSamplerConfig(**sampler)
    with pytest.raises(ConfigError, match=r"^generate\.sampler\.knn: got -1; allowed: an integer >= 0"):
        parse_params({"generate": {"sampler": {"knn": -1}}}, ("generate",))
    chains = {"kind": "delaunay", "oneway": 0.3, "oneway_chain": 4}
    built = parse_params({"generate": {"sampler": chains}}, ("generate",)).generate.sampler
    assert built.sampler() == GraphSamplerConfig(**chains)
    with pytest.raises(ConfigError, match=r"^generate\.sampler\.oneway_chain: got 4; allowed: 1 for kind 'grid'"):
        parse_params({"generate": {"sampler": {"kind": "grid", "oneway": 0.3, "oneway_chain": 4}}}, ("generate",))
