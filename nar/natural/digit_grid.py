"""``digit_grid``: shortest paths over k x k grids of real handwritten digits.

Data: the 1,797 8x8 handwritten digits bundled with scikit-learn (``load_digits``; UCI
"Optical Recognition of Handwritten Digits", 16 grey levels), no download.

Images are split first, stratified by digit and deterministically from the seed, into
disjoint pools (default 60 / 20 / 20 %: train / val / test). A grid of split s fills its k·k
cells with images drawn uniformly, with replacement, from s's pool; the ``ood`` split uses
the test pool with larger grids (default k = 16 against k = 8).

Graph: node ``r * k + c`` is cell (r, c); directed edges u -> v between 4-neighbours (both
directions), sorted by (u, v).

Hidden cost (the model never sees it): entering a cell costs ``CELL_COST[digit] = 1 + digit``
(1 for a 0 ... 10 for a 9), so edge u -> v costs ``1 + digit(v)``; the source's own cell is
free. A 10:1 range makes detours worth it: paths bend around the high digits.

Endpoints: the source is a uniform cell; the target is uniform among the cells at Manhattan
distance >= k - 1 from it (never empty), so paths are long.

Model inputs: per cell the 64 pixels scaled to [0, 1] (``node_features``), the edge list, the
source and the target. Hidden: ``cell_cost``, ``digit``, ``edge_cost``, ``dist``,
``edge_optimal``. Meta (plots, checks): ``coords`` (row, col), ``image_id`` (index into
``load_digits()``), ``grid_size``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from nar.natural.store import FieldSpec, Schema
from nar.natural.targets import target_fields
from nar.natural.task import POOLS, NaturalSplitParams, NaturalTask, check_splits, default_splits, split_pool
from nar.validation import require

NAME = "digit_grid"
CELL_COST = 1.0 + np.arange(10, dtype=np.float64)  # cost of entering a cell showing digit d
COST_RULE = "entering a cell costs 1 + its digit (0 -> 1, ..., 9 -> 10); edge u -> v costs 1 + digit(v)"
PIXELS = 64
MAX_GRID = 64

SCHEMA = Schema(
    (
        FieldSpec("node_features", "input", "node", "float32", (PIXELS,), doc="8x8 pixels, row-major, grey / 16"),
        FieldSpec("edge_index", "input", "edge", "int32", (2,), index=True, doc="directed 4-neighbour edges u -> v"),
        *target_fields(
            pi_doc="shortest-path tree pointers (source: itself)",
            cost_doc="1 + digit of the entered cell",
            dist_doc="true shortest distance from the source",
        ),
        FieldSpec("cell_cost", "hidden", "node", "float32", doc="cost of entering the cell"),
        FieldSpec("digit", "hidden", "node", "int32", doc="the image's digit label"),
        FieldSpec("coords", "meta", "node", "float32", (2,), doc="(row, col)"),
        FieldSpec("image_id", "meta", "node", "int32", doc="index into sklearn load_digits()"),
        FieldSpec("grid_size", "meta", "graph", "int32", doc="k"),
    )
)
FEATURE_NAMES = {"node_features": [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]}


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray, str]:
    """(images (1797, 64) float32 in [0, 1], labels (1797,) int64, sha256 of the raw data)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    raw = np.ascontiguousarray(d.data.astype(np.uint8))  # grey levels 0..16
    labels = np.asarray(d.target, dtype=np.int64)
    digest = hashlib.sha256(raw.tobytes() + labels.astype(np.uint8).tobytes()).hexdigest()
    return (raw.astype(np.float32) / 16.0), labels, digest


def split_images(labels: np.ndarray, fractions: tuple[float, float, float], seed: int) -> dict[str, np.ndarray]:
    """Disjoint, stratified image pools {train, val, test} (sorted indices), fixed by ``seed``."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xD1_61_75]))
    f = np.asarray(fractions, dtype=np.float64) / float(np.sum(fractions))
    pools: dict[str, list[np.ndarray]] = {p: [] for p in POOLS}
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        cuts = np.round(np.cumsum(f)[:-1] * len(idx)).astype(int)
        for p, part in zip(POOLS, np.split(idx, cuts), strict=True):
            pools[p].append(part)
    return {p: np.sort(np.concatenate(parts)) for p, parts in pools.items()}


@lru_cache(maxsize=16)
def grid_edges(k: int) -> np.ndarray:
    """(E, 2) int64 directed 4-neighbour edges of a k x k grid, sorted by (u, v)."""
    r, c = np.divmod(np.arange(k * k), k)
    edges = []
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        rr, cc = r + dr, c + dc
        ok = (rr >= 0) & (rr < k) & (cc >= 0) & (cc < k)
        edges.append(np.stack([np.flatnonzero(ok), (rr * k + cc)[ok]], axis=1))
    e = np.concatenate(edges)
    return e[np.lexsort((e[:, 1], e[:, 0]))]


@dataclass(frozen=True)
class DigitGridParams:
    image_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)  # train / val / test image pools
    splits: Mapping[str, NaturalSplitParams] = field(
        default_factory=lambda: default_splits(train=(1000, (8,)), val=(200, (8,)), test=(200, (8,)), ood=(100, (16,)))
    )

    def check(self, key: str) -> None:
        for i, f in enumerate(self.image_fractions):
            require(f > 0, f"{key}.image_fractions[{i}]", f, "a fraction > 0")
        check_splits(key, self.splits)
        for name, split in self.splits.items():
            pool = split_pool(name, split)
            require(pool in POOLS, f"{key}.splits.{name}.pool", pool, f"an image pool among {list(POOLS)}")
            for i, k in enumerate(split.sizes):
                require(k <= 64, f"{key}.splits.{name}.sizes[{i}]", k, "grid sides from 2 to 64")


class DigitGridTask:
    """Draws digit-grid examples (inputs, hidden costs, meta; targets are added by the builder)."""

    name = NAME
    size_unit = "grid side k (n = k * k nodes)"
    schema = SCHEMA
    feature_names = FEATURE_NAMES

    def __init__(self, image_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2), seed: int = 0) -> None:
        self.images, self.labels, self.data_sha256 = _digits()
        self.pools = split_images(self.labels, image_fractions, seed)
        self.image_fractions = tuple(float(x) for x in image_fractions)

    @classmethod
    def from_params(cls, params: Any, pbf: str | None = None) -> DigitGridTask:
        """The drawer of ``natural.digit_grid`` from a ``NaturalParams`` (``pbf``: not used)."""
        return cls(params.digit_grid.image_fractions, seed=params.seed)

    def check(self, pool: str, sizes: tuple[int, ...]) -> None:
        if pool not in self.pools:
            raise ValueError(f"digit_grid: pool {pool!r} is not one of {list(self.pools)}")
        for k in sizes:
            if not 2 <= k <= MAX_GRID:
                raise ValueError(f"digit_grid: grid side {k} outside [2, {MAX_GRID}]")
        if len(self.pools[pool]) == 0:
            raise ValueError(f"digit_grid: the {pool} image pool is empty")

    def info(self) -> dict:
        return {
            "data": "scikit-learn load_digits() (UCI optical recognition of handwritten digits), 1,797 8x8 images",
            "data_sha256": self.data_sha256,
            "cost_rule": COST_RULE,
            "cell_cost_by_digit": CELL_COST.tolist(),
            "image_fractions": list(self.image_fractions),
            "pool_sizes": {p: int(len(v)) for p, v in self.pools.items()},
            "endpoints": "source uniform; target uniform among cells at Manhattan distance >= k - 1 from it",
            "size_unit": self.size_unit,
        }

    def example(self, pool: str, k: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        n = k * k
        ids = rng.choice(self.pools[pool], size=n, replace=True)
        digit = self.labels[ids]
        cell_cost = CELL_COST[digit]
        edges = grid_edges(k)
        source = int(rng.integers(n))
        r, c = np.divmod(np.arange(n), k)
        far = np.flatnonzero(np.abs(r - r[source]) + np.abs(c - c[source]) >= k - 1)
        target = int(far[rng.integers(len(far))])
        return {
            "node_features": self.images[ids],
            "edge_index": edges,
            "source": np.array(source),
            "target": np.array(target),
            "edge_cost": cell_cost[edges[:, 1]].astype(np.float32),
            "cell_cost": cell_cost.astype(np.float32),
            "digit": digit.astype(np.int32),
            "coords": np.stack([r, c], axis=1).astype(np.float32),
            "image_id": ids.astype(np.int32),
            "grid_size": np.array(k),
        }


# the 64-node digit grids want short runs and the latent interface (reports/transfer_notes.md)
TASK = NaturalTask(
    NAME,
    drawer=DigitGridTask,
    params=DigitGridParams,
    size_field="grid_size",
    picture="grid",
    # max_steps 600 / patience 12, not 300 / 6: validation pointer accuracy higher in 35 of 36 runs (notes §3)
    transfer={"interface": "latent", "batch_size": 8, "max_steps": 600, "patience": 12, "val_examples": 64},
)
