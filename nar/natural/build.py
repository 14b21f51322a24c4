"""Building the natural-task splits: ``build_natural(task, params, out_dir, ...)``.

For every split of the task: draw the examples (the task's raw inputs and hidden costs), add
the targets (``nar.natural.targets``: the shortest-path tree of ``params.algorithm`` on the
hidden costs, or the task's own ``targets(example, algorithm)`` where it has one, as
``road_turns``'s edge-based solver), and write ``out_dir/<split>/`` (``nar.natural.store``).

Tasks are registered in ``nar.natural.config.NATURAL_TASKS`` (one module each, :mod:`nar.natural.task`):
the drawer class, built by its ``from_params``, and its params section.

Randomness (what makes "same seed => byte-identical files" hold, whatever the shard size):
the split's seed is ``[seed, crc32("<task>/<split>")]``; the sizes are drawn with
``SeedSequence(split seed + [0])``, and example i with its own generator
``SeedSequence(split seed + [1, i])``. Fixed per task and seed (shared by its splits): the
digit image pools and the road network's static per-segment factors.
"""

from __future__ import annotations

import dataclasses
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nar.errors import NarError
from nar.natural.config import NATURAL_TASKS, NaturalParams, NaturalSplitParams, NaturalTask, split_pool
from nar.natural.road import osm_network
from nar.natural.store import NaturalManifest, new_manifest, write_split
from nar.natural.targets import shortest_path_targets
from nar.progress import progress_bar


class NaturalBuildError(NarError):
    """A natural split cannot be built as configured (sizes its pool cannot provide, ...)."""


def task_entry(task: str, params: NaturalParams | None = None) -> NaturalTask:
    """``task``'s entry in the registry ``params`` were made from (default ``NATURAL_TASKS``), or a
    ``NaturalBuildError`` naming the tasks there are."""
    tasks = type(params).tasks if params is not None else NATURAL_TASKS
    entry = tasks.get(task)
    if entry is None:
        raise NaturalBuildError(f"unknown natural task {task!r}; available: {list(tasks)}")
    return entry


def make_task(task: str, params: NaturalParams, pbf: str | None = None) -> Any:
    """The task's example drawer (``DigitGridTask``, ``RoadTask``, ...); ``pbf`` overrides ``road.pbf``."""
    return task_entry(task, params).drawer.from_params(params, pbf)


def split_seed(seed: int, task: str, split: str) -> list[int]:
    return [int(seed), zlib.crc32(f"{task}/{split}".encode())]


def draw_examples(
    drawer: Any, split: str, spec: NaturalSplitParams, seed: int, algorithm: str
) -> Iterator[dict[str, np.ndarray]]:
    """The split's examples in order, targets included (in memory, before the dtype casts)."""
    pool = split_pool(split, spec)
    base = split_seed(seed, drawer.name, split)
    sizes = np.random.default_rng(np.random.SeedSequence([*base, 0])).choice(np.asarray(spec.sizes), size=spec.count)
    own_targets = getattr(drawer, "targets", None)  # a task whose cost is not one weight per edge
    for i in range(spec.count):
        rng = np.random.default_rng(np.random.SeedSequence([*base, 1, i]))
        ex = drawer.example(pool, int(sizes[i]), rng)
        n = len(ex["node_features"])
        if own_targets is not None:
            ex.update(own_targets(ex, algorithm))
        else:
            ex.update(
                shortest_path_targets(
                    n, ex["edge_index"], ex["edge_cost"], int(ex["source"]), int(ex["target"]), algorithm
                )
            )
        ex["dist"] = ex["dist"].astype(np.float32)
        yield ex


def _size_of(entry: NaturalTask) -> Callable[[dict[str, np.ndarray]], int]:
    size_field = entry.size_field
    if size_field is not None:
        return lambda ex: int(ex[size_field])
    return lambda ex: len(ex["node_features"])


def build_natural(
    task: str,
    params: NaturalParams | None = None,
    out_dir: str | Path = "data/natural",
    seed: int | None = None,
    progress: bool = True,
    splits: Sequence[str] | None = None,
    pbf: str | None = None,
) -> dict[str, NaturalManifest]:
    """Build ``task``'s splits into ``out_dir/<task>/<split>/``; returns their manifests.

    ``params`` defaults to ``NaturalParams()``; ``seed`` overrides ``params.seed``; ``splits``
    selects some of the task's splits; ``pbf`` (road tasks only) replaces ``params.road.pbf``.
    Raises a ``NarError`` (``NaturalBuildError``, ``RoadDataError``) for a bad configuration
    or input file, before writing anything.
    """
    from dataclasses import replace

    params = params or NaturalParams()
    if seed is not None:
        if seed < 0:
            raise NaturalBuildError(f"seed must be >= 0, got {seed}")
        params = replace(params, seed=seed)
    entry = task_entry(task, params)
    task_params = params.task(task)
    chosen = dict(task_params.splits)
    if splits:
        unknown = [s for s in splits if s not in chosen]
        if unknown:
            raise NaturalBuildError(f"{task}: no split {unknown[0]!r} in params (splits: {sorted(chosen)})")
        chosen = {s: chosen[s] for s in splits}
    drawer = make_task(task, params, pbf)
    for name, spec in chosen.items():  # refuse impossible sizes before writing anything
        try:
            drawer.check(split_pool(name, spec), tuple(spec.sizes))
        except ValueError as exc:
            raise NaturalBuildError(f"{task}/{name}: {exc}") from None

    task_params_dict = _jsonable(task_params)
    if entry.osm:  # every OpenStreetMap task uses road's network and bands (natural.road)
        task_params_dict["pbf"] = drawer.net.name  # the file name only: manifests hold no paths
        task_params_dict.setdefault("regions", _jsonable(osm_network(params))["regions"])
    out_root = Path(out_dir) / task
    manifests = {}
    for name, spec in chosen.items():
        t0 = time.perf_counter()
        skeleton = new_manifest(
            task=task,
            split=name,
            seed=params.seed,
            algorithm=params.algorithm,
            params={**task_params_dict, "split": {**_jsonable(spec), "pool": split_pool(name, spec)}},
            schema=drawer.schema,
            feature_names=drawer.feature_names,
            info=drawer.info(),
            count=spec.count,
            sizes=tuple(spec.sizes),
            shard_size=params.shard_size,
        )
        # a bar in a terminal, a plain line every 30 s in a log (no carriage-return frames)
        bar = progress_bar(spec.count, desc=f"{task}/{name}", unit="graph", disable=not progress, file=sys.stderr)
        try:
            manifests[name] = write_split(
                out_root / name,
                skeleton,
                draw_examples(drawer, name, spec, params.seed, params.algorithm),
                _size_of(entry),
                progress=bar,
            )
        finally:
            bar.close()
        if progress:
            m = manifests[name]
            print(
                f"{task}/{name}: {m.count} graphs, sizes {m.sizes_histogram}, {m.total_bytes / 1e6:.1f} MB, "
                f"{time.perf_counter() - t0:.1f} s",
                file=sys.stderr,
            )
    return manifests


def _jsonable(obj: Any) -> dict[str, Any]:
    """A params dataclass as plain JSON values (without its ``splits``)."""

    def plain(x: Any) -> Any:
        if dataclasses.is_dataclass(x):
            return {f.name: plain(getattr(x, f.name)) for f in dataclasses.fields(x) if f.name != "splits"}
        if isinstance(x, Mapping):
            return {str(k): plain(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [plain(v) for v in x]
        return x

    return plain(obj)
