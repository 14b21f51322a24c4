"""``terrain``: cheapest walks across a landscape seen only from the air (a worked example of a natural task).

The whole task is this file (docs/natural_task.md walks through it). To ship it, copy it to
``nar/natural/terrain.py`` and add ``terrain`` to the tuple ``NATURAL_TASKS`` is built from in
``nar/natural/config.py`` (and to its import line); then ``nar natural --task terrain`` builds it and
``evaluate.tasks: [terrain]`` runs its transfer sweep.

A k x k grid of cells, 4-neighbour moves. Each cell has a hidden terrain type (meadow, forest, marsh,
rock) and a hidden elevation (a smooth random field). The model sees only a 4 x 4 RGB "aerial photo" of
each cell: the terrain's colour with texture noise, shaded by the slope. Walking from cell u to cell v
costs ``TERRAIN_COST[type(v)] * (1 + uphill * max(0, elevation(v) - elevation(u)))``: the terrain of the
cell entered, and climbing. The climb makes the cost depend on the *pair* of cells, so no single
cost per cell is right, unlike ``digit_grid``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nar.natural.digit_grid import grid_edges
from nar.natural.store import FieldSpec, Schema
from nar.natural.targets import target_fields
from nar.natural.task import POOLS, NaturalSplitParams, NaturalTask, check_splits, default_splits
from nar.validation import require

NAME = "terrain"
TERRAINS = ("meadow", "forest", "marsh", "rock")
TERRAIN_COST = np.array([1.0, 2.5, 4.0, 6.0])  # walking effort per cell entered, by terrain
TERRAIN_RGB = np.array([[0.45, 0.75, 0.3], [0.1, 0.4, 0.15], [0.35, 0.45, 0.4], [0.55, 0.5, 0.45]])
PATCH = 4  # an aerial photo of PATCH x PATCH RGB pixels per cell
MAX_SIDE = 32

SCHEMA = Schema(
    (
        FieldSpec("node_features", "input", "node", "float32", (PATCH * PATCH * 3,), doc="aerial RGB patch"),
        FieldSpec("edge_index", "input", "edge", "int32", (2,), index=True, doc="4-neighbour moves u -> v"),
        *target_fields(
            pi_doc="cheapest-walk tree pointers (source: itself)",
            cost_doc="terrain cost of v times (1 + uphill * climb u -> v)",
            dist_doc="cheapest walking effort from the source",
        ),
        FieldSpec("terrain", "hidden", "node", "int32", doc="index into TERRAINS"),
        FieldSpec("elevation", "hidden", "node", "float32", doc="smooth random field, about [0, 1]"),
        FieldSpec("coords", "meta", "node", "float32", (2,), doc="(row, col)"),
        FieldSpec("grid_size", "meta", "graph", "int32", doc="k"),
    )
)
FEATURE_NAMES = {"node_features": [f"{c}_{i}" for i in range(PATCH * PATCH) for c in "rgb"]}


@dataclass(frozen=True)
class TerrainParams:
    """``natural.terrain``: how steep climbs cost, and the splits (grid sides k, n = k * k cells)."""

    uphill: float = 4.0
    splits: Mapping[str, NaturalSplitParams] = field(
        default_factory=lambda: default_splits(train=(200, (6,)), val=(50, (6,)), test=(50, (6,)), ood=(50, (10,)))
    )

    def check(self, key: str) -> None:
        require(self.uphill >= 0, f"{key}.uphill", self.uphill, "a number >= 0")
        check_splits(key, self.splits)


def smooth_field(k: int, rng: np.random.Generator) -> np.ndarray:
    """(k, k) a smooth random field in about [0, 1]: a few random bumps."""
    r, c = np.mgrid[0:k, 0:k] / max(k - 1, 1)
    out = np.zeros((k, k))
    for _ in range(3):
        y, x, w = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.2, 0.5)
        out += np.exp(-((r - y) ** 2 + (c - x) ** 2) / (2 * w * w))
    return out / out.max()


class TerrainTask:
    """Draws terrain examples: raw aerial patches, hidden terrain and elevation, the hidden move costs."""

    name = NAME
    size_unit = "grid side k (n = k * k cells)"
    schema = SCHEMA
    feature_names = FEATURE_NAMES

    def __init__(self, uphill: float = 4.0) -> None:
        self.uphill = float(uphill)

    @classmethod
    def from_params(cls, params: Any, pbf: str | None = None) -> TerrainTask:
        """The drawer of ``natural.terrain`` from a ``NaturalParams`` (``pbf``: not used)."""
        return cls(params.terrain.uphill)

    def check(self, pool: str, sizes: tuple[int, ...]) -> None:
        if pool not in POOLS:
            raise ValueError(f"terrain: pool {pool!r} is not one of {list(POOLS)}")
        for k in sizes:
            if not 2 <= k <= MAX_SIDE:
                raise ValueError(f"terrain: grid side {k} outside [2, {MAX_SIDE}]")

    def info(self) -> dict:
        return {
            "terrains": list(TERRAINS),
            "terrain_cost": TERRAIN_COST.tolist(),
            "uphill": self.uphill,
            "cost_rule": "terrain_cost[type(v)] * (1 + uphill * max(0, elevation(v) - elevation(u)))",
            "size_unit": self.size_unit,
        }

    def example(self, pool: str, k: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        n = k * k
        elevation = smooth_field(k, rng)
        terrain = rng.integers(len(TERRAINS), size=(k, k))
        # the photo: terrain colour, texture noise, darker on slopes (what a model can learn the costs from)
        slope = np.hypot(*np.gradient(elevation))
        shade = (1.0 - 2.0 * slope)[..., None, None]
        pixels = TERRAIN_RGB[terrain][:, :, None, :] * shade + rng.normal(0, 0.05, size=(k, k, PATCH * PATCH, 3))
        moves = grid_edges(k)  # the 4-neighbour moves, as digit_grid's cells
        elev, kind = elevation.ravel(), terrain.ravel()
        climb = np.maximum(0.0, elev[moves[:, 1]] - elev[moves[:, 0]])
        cost = TERRAIN_COST[kind[moves[:, 1]]] * (1.0 + self.uphill * climb)
        source = int(rng.integers(n))
        target = int((source + 1 + rng.integers(n - 1)) % n)  # any other cell
        r, c = np.divmod(np.arange(n), k)
        return {
            "node_features": pixels.reshape(n, -1).astype(np.float32),
            "edge_index": moves,
            "source": np.array(source),
            "target": np.array(target),
            "edge_cost": cost.astype(np.float32),
            "terrain": kind.astype(np.int32),
            "elevation": elev.astype(np.float32),
            "coords": np.stack([r, c], axis=1).astype(np.float32),
            "grid_size": np.array(k),
        }


TASK = NaturalTask(
    NAME,
    drawer=TerrainTask,
    params=TerrainParams,
    size_field="grid_size",
    picture="map",  # drawn at the cells' coords ("grid" draws 8 x 8 grey digit images)
    transfer={"interface": "latent", "batch_size": 8, "max_steps": 300, "patience": 6, "val_examples": 50},
)
