"""The ``natural:`` section of params.yaml and the registry of natural tasks.

``NATURAL_TASKS`` is built from the task modules listed below, one line each: a task lives in one module
(:mod:`nar.natural.task` says what it holds: its params section, its example drawer and its ``TASK``). Every
other list of tasks derives from it, and so does ``NaturalParams``: the common fields below plus one section
``natural.<name>`` per task, of the task's own params class. Both are frozen dataclasses with type hints and
``check(key)`` methods, built by :func:`nar.validation.build` like every section (``ConfigError`` naming the
dotted key); ``nar.config.Params`` gathers them.

Sizes are in each task's unit: the grid side k for ``digit_grid`` (n = k * k nodes), the node count for
``road`` and ``road_turns``. A split draws from the image pool / city region of the same name (``train``,
``val``, ``test``); ``ood`` draws from ``test``; any other split names its ``pool``.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from nar.natural import digit_grid, road, road_turns
from nar.natural.road import osm_network, osm_pools
from nar.natural.targets import SHORTEST_PATH_ALGORITHMS
from nar.natural.task import POOLS, NaturalSplitParams, NaturalTask, split_pool
from nar.validation import build, require

# The natural tasks, one module each (a new task: its module here): name -> its TASK.
NATURAL_TASKS: Mapping[str, NaturalTask] = types.MappingProxyType(
    {m.TASK.name: m.TASK for m in (digit_grid, road, road_turns)}
)
TASKS = tuple(NATURAL_TASKS)


@dataclass(frozen=True)
class NaturalCommonParams:
    """The fields of ``natural:`` shared by every task (``NaturalParams`` adds one section per task)."""

    tasks: ClassVar[Mapping[str, NaturalTask]] = {}  # the registry the class was made from

    seed: int = 0
    # the nar.algorithms entry whose output pi is the target (ties broken its way)
    algorithm: Literal["bellman_ford", "dijkstra"] = "bellman_ford"
    shard_size: int = 1000  # examples per shard file

    def check(self, key: str) -> None:
        require(self.seed >= 0, f"{key}.seed", self.seed, "an integer >= 0")
        require(self.shard_size >= 1, f"{key}.shard_size", self.shard_size, "an integer >= 1")
        require(self.algorithm in SHORTEST_PATH_ALGORITHMS, f"{key}.algorithm", self.algorithm, "a shortest path")
        # every OpenStreetMap task draws from the one network's regions; the section holding them checks its own
        network = osm_network(self)
        pools = osm_pools(network.regions if network is not None else {})
        for name, entry in self.tasks.items():
            section = getattr(self, name)
            if not entry.osm or section is network:
                continue
            for split_name, split in section.splits.items():
                pool = split_pool(split_name, split)
                require(
                    pool in pools,
                    f"{key}.{name}.splits.{split_name}",
                    pool,
                    f"a pool among natural.{road.NAME}.regions or the whole network: {pools}",
                )

    def task(self, name: str) -> Any:
        """The params section of task ``name`` (its module's params class)."""
        if name not in self.tasks:
            raise KeyError(f"unknown natural task {name!r}; available: {list(self.tasks)}")
        return getattr(self, name)


def natural_params_class(tasks: Mapping[str, NaturalTask]) -> type:
    """``NaturalParams`` for a registry: the common fields plus a section per task, defaulting to its params'
    defaults (a test registers a task of its own this way)."""
    sections = [(name, t.params, dataclasses.field(default_factory=t.params)) for name, t in tasks.items()]
    return dataclasses.make_dataclass(
        "NaturalParams",
        sections,
        bases=(NaturalCommonParams,),
        frozen=True,
        namespace={"tasks": types.MappingProxyType(dict(tasks)), "__module__": __name__},
    )


NaturalParams = natural_params_class(NATURAL_TASKS)


def parse_natural_params(data: Any, key: str = "natural") -> Any:
    """Validate the ``natural`` mapping of params.yaml (None: all defaults); a ``NaturalParams``."""
    return build(NaturalParams, data, key)


__all__ = [
    "NATURAL_TASKS",
    "POOLS",
    "TASKS",
    "NaturalCommonParams",
    "NaturalParams",
    "NaturalSplitParams",
    "NaturalTask",
    "natural_params_class",
    "parse_natural_params",
    "split_pool",
]
