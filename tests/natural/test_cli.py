"""`nar natural` and its params."""

import pytest
import yaml

from nar.cli import main
from nar.config import ConfigError
from nar.natural.config import NaturalParams, parse_natural_params
from nar.natural.store import load_natural

from .conftest import SMALL


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"natural": SMALL}))
    return tmp_path


def test_builds_from_params(workspace):
    assert main(["natural", "--task", "digit_grid", "--split", "val", "--split", "ood", "--no-progress"]) == 0
    assert sorted(p.name for p in (workspace / "data/natural/digit_grid").iterdir()) == ["ood", "val"]
    assert len(load_natural(workspace / "data/natural/digit_grid/ood")) == 6


@pytest.mark.fault(category="data", fault="a text file given as --pbf", expected="exit 2, one line naming the file")
def test_bad_pbf_is_one_line_error(workspace, capsys):
    (workspace / "bad.osm.pbf").write_text("nope")
    assert main(["natural", "--task", "road", "--pbf", "bad.osm.pbf", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[-1].startswith("nar natural: error: bad.osm.pbf")


@pytest.mark.fault(
    category="config",
    fault="`nar natural`: --pbf without --task road, unknown split, --out outside",
    expected="exit 2, one line each",
    inputs=3,
)
def test_user_errors(workspace, capsys):
    assert main(["natural", "--pbf", "x.osm.pbf"]) == 2
    assert "--pbf applies to the OpenStreetMap tasks only (road, road_turns)" in capsys.readouterr().err
    assert main(["natural", "--task", "road", "--split", "nope"]) == 2
    assert "no split 'nope'" in capsys.readouterr().err
    assert main(["natural", "--task", "road", "--out", "/elsewhere"]) == 2
    assert "outside the workspace" in capsys.readouterr().err


@pytest.mark.fault(
    category="config",
    fault="natural section: bad algorithm, split without pool, count 0, bad region, seed -1, unknown key, "
    "the whole-network pool on a task without a network",
    expected="ConfigError naming the key",
    inputs=8,
)
def test_params_defaults_and_errors():
    p = parse_natural_params(None)
    assert p == NaturalParams() and list(p.road.regions) == ["train", "test", "val"]
    assert p.digit_grid.splits["ood"].sizes == (16,) and p.road.splits["ood"].sizes == (150,)
    assert p.road.splits["ood"].pool == "network" and p.road_turns.splits["ood"].pool == "network"
    bad = [
        ({"algorithm": "dfs"}, "natural.algorithm"),
        ({"digit_grid": {"splits": {"extra": {"count": 3, "sizes": [4]}}}}, "natural.digit_grid.splits.extra.pool"),
        ({"digit_grid": {"splits": {"train": {"count": 0, "sizes": [4]}}}}, "natural.digit_grid.splits.train.count"),
        ({"road": {"regions": {"train": 0.5, "north": 0.5}}}, "natural.road.regions"),
        (
            {"road": {"splits": {"val": {"count": 3, "sizes": [12]}}, "regions": {"train": 1.0}}},
            "natural.road.splits.val",
        ),
        (
            {"digit_grid": {"splits": {"ood": {"count": 3, "sizes": [16], "pool": "network"}}}},
            "natural.digit_grid.splits.ood.pool",
        ),
        ({"seed": -1}, "natural.seed"),
        ({"colour": 1}, "natural.colour"),
    ]
    for data, key in bad:
        with pytest.raises(ConfigError) as exc:
            parse_natural_params(data)
        assert exc.value.key == key, (data, exc.value)
