from __future__ import annotations

import numpy as np
import pytest

from nar.algorithms import execute
from nar.algorithms.bfs import SPEC
from nar.algorithms.spec import Field, Location, SpecError, Stage, Type, validate_trajectory


@pytest.fixture
def traj():
    return execute("bfs", np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=float))


def test_a_valid_trajectory_passes(traj):
    validate_trajectory(SPEC, traj)


@pytest.mark.parametrize(
    "group, name, value, message",
    [
        ("outputs", "pi", np.array([0, 0, 3]), "outside"),
        ("outputs", "pi", np.array([0.0, 0.0, 1.0]), "integer"),
        ("inputs", "s", np.array([1, 1, 0], dtype=np.uint8), "exactly one"),
        ("inputs", "pos", np.array([0.0, np.nan, 0.5]), "NaN"),
        ("hints", "reach_h", np.full((3, 3), 2, dtype=np.uint8), "0 or 1"),
        ("hints", "pi_h", np.zeros((2, 3), dtype=np.int64), "different lengths"),
        ("inputs", "adj", np.ones((3, 2), dtype=np.uint8), "shape"),
    ],
)
def test_broken_trajectories_are_rejected(traj, group, name, value, message):
    getattr(traj, group)[name] = value
    with pytest.raises(SpecError, match=message):
        validate_trajectory(SPEC, traj)


def test_missing_field_is_named(traj):
    del traj.hints["reach_h"]
    with pytest.raises(SpecError, match="reach_h"):
        validate_trajectory(SPEC, traj)


def test_field_rules():
    with pytest.raises(ValueError, match="num_categories"):
        Field("c", Stage.HINT, Location.NODE, Type.CATEGORICAL)
    with pytest.raises(ValueError, match="graph-level pointers"):
        Field("p", Stage.OUTPUT, Location.GRAPH, Type.POINTER)
    with pytest.raises(ValueError, match="mask_one"):
        Field("m", Stage.HINT, Location.EDGE, Type.MASK_ONE)
    assert Field("c", Stage.HINT, Location.EDGE, Type.CATEGORICAL, 3).shape(4) == (4, 4, 3)
