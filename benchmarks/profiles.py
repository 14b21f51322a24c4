"""Params profiles for the benchmarks: a run of ``pretrain.runs`` in a params file, with ``-S`` overrides.

    --params params.yaml --run bellman_ford -S train.steps=500 -S model.processor.hidden=32

A benchmark names a profile instead of declaring model and training flags of its own: the run's
section is read from the params file (params.yaml, or ``benchmarks/profiles.yaml`` for reference
recipes such as the CLRS protocol), each ``-S key=value`` (a dotted key inside the run, a YAML value,
as ``dvc exp run -S`` takes them) replaces one value, and the result is validated by ``nar.config``
exactly as ``nar pretrain`` validates params.yaml (a bad key or value stops with the dotted key named).
The ``generate`` section of the same file says how the benchmarks' Erdős–Rényi graphs are drawn.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from nar.config import GenerateParams, PretrainRunParams, parse_params, read_params_file
from nar.data.samplers import GraphSamplerConfig


def add_profile_arguments(parser: argparse.ArgumentParser, params: str = "params.yaml", run: str | None = None) -> None:
    """``--params``, ``--run`` and repeatable ``-S key=value`` (a dotted key inside the run)."""
    parser.add_argument("--params", type=Path, default=Path(params), help=f"params file (default: {params})")
    parser.add_argument("--run", default=run, required=run is None, help="a key of pretrain.runs in --params")
    parser.add_argument(
        "-S", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a key of the run's section (dotted, YAML value, e.g. train.steps=500); repeat",
    )  # fmt: skip


def override(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``tree[a][b][c] = value`` for ``dotted`` = ``a.b.c``, making the parents it lacks."""
    *parents, last = dotted.split(".")
    for key in parents:
        tree = tree.setdefault(key, {})
    tree[last] = value


def profile_params(path: Path, run: str, overrides: Sequence[str]) -> dict[str, Any]:
    """The params file's mapping with ``pretrain.runs`` reduced to ``run``, its overrides applied."""
    raw = read_params_file(path)
    runs = (raw.get("pretrain") or {}).get("runs") or {}
    if run not in runs:
        raise SystemExit(f"--run {run!r} is not in pretrain.runs of {path}; available: {sorted(runs)}")
    section = copy.deepcopy(runs[run])
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"-S {item!r}: expected KEY=VALUE, a dotted key inside pretrain.runs.{run}")
        override(section, key, yaml.safe_load(value))
    return {**raw, "pretrain": {**raw["pretrain"], "runs": {run: section}}}


def load_profile(params: dict[str, Any], run: str) -> tuple[PretrainRunParams, GenerateParams]:
    """The validated run (model, train, batch size) and the file's ``generate`` section."""
    parsed = parse_params(params, ("pretrain", "generate"))
    return parsed.pretrain.runs[run], parsed.generate


def sampler_config(generate: GenerateParams) -> GraphSamplerConfig:
    """``generate.sampler`` as the library's sampler configuration (every knob the section sets)."""
    return GraphSamplerConfig(**dataclasses.asdict(generate.sampler))
