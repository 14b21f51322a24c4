"""What a natural task is to the pipeline: the contract every task module fulfils (docs/natural_task.md).

A task module (``nar/natural/<name>.py``) holds, in one file:

- its params section ``natural.<name>``: a frozen dataclass with a ``splits`` field (default splits in the
  task's size unit) and a ``check(key)`` for its own knobs (``check_splits`` does the splits' part);
- its example drawer, a class with ``name``, ``schema``, ``feature_names``, ``size_unit``,
  ``from_params(params: NaturalParams, pbf: str | None)``, ``check(pool, sizes)`` (ValueError for sizes its
  pool cannot give), ``info()`` (a JSON dict for the manifest) and ``example(pool, size, rng)`` (one example's
  arrays: the raw inputs, ``edge_index`` (E, 2), the hidden ``edge_cost`` (E,), ``source``, ``target``);
- ``TASK = NaturalTask(...)``, naming both and saying what the build, the transfer sweep and the figures
  need to know.

It is registered by adding the module to the tuple ``NATURAL_TASKS`` is built from (``nar/natural/config.py``).
This module imports nothing of nar's but the validation helpers, so task modules and the config can use it.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from nar.validation import require

POOLS = ("train", "val", "test")
# The pool of an OpenStreetMap task's split that draws from the whole network, every band together
# (issue 16 item 6: ood on the whole network of the extract); a task without a network rejects it.
WHOLE_NETWORK = "network"


@dataclass(frozen=True)
class NaturalSplitParams:
    count: int
    sizes: tuple[int, ...]
    # default: the split's name; ood -> test; "network" (WHOLE_NETWORK): OpenStreetMap tasks' whole network
    pool: Literal["train", "val", "test", "network"] | None = None

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


def default_splits(**d: tuple[int, tuple[int, ...]]) -> Mapping[str, NaturalSplitParams]:
    """A task's default splits: ``default_splits(train=(count, sizes), val=..., ...)``."""
    return types.MappingProxyType({k: NaturalSplitParams(count=c, sizes=s) for k, (c, s) in d.items()})


def check_splits(key: str, splits: Mapping[str, NaturalSplitParams]) -> None:
    """The rules every task's ``splits`` follow: names of letters, digits and _, each with a pool."""
    for name, split in splits.items():
        require(name.replace("_", "").isalnum(), f"{key}.splits", name, "split names of letters, digits and _")
        require(
            split_pool(name, split) is not None,
            f"{key}.splits.{name}.pool",
            None,
            f"one of {list(POOLS)} (only train/val/test/ood have a default pool)",
        )


@dataclass(frozen=True)
class NaturalTask:
    """What the pipeline knows about one natural task (its module's ``TASK``).

    name: the task's name, also its params section ``natural.<name>`` and its data folder.
    drawer: its example drawer class (module docstring).
    params: its params section's dataclass.
    osm: built from an OpenStreetMap file: ``natural.road``'s network (``pbf``, ``nar natural --pbf``) and
        regions, which its splits draw from.
    size_field: the example field holding its size (None: the node count); sizes are in this unit.
    turn_costs: routes pay turn delays, so the transfer sweep also runs the variants that price turns.
    picture: how the figures draw an example: ``grid`` (square image cells) or ``map`` (node positions).
    transfer: the values of the transfer fields left null in params.yaml (``TaskTransferParams``).
    """

    name: str
    drawer: type
    params: type
    osm: bool = False
    size_field: str | None = None
    turn_costs: bool = False
    picture: Literal["grid", "map"] = "map"
    transfer: Mapping[str, Any] = field(default_factory=dict)
