"""Mean over training seeds of several ``bench_scale.py`` results (one JSON per pretraining seed).

Usage:
    python benchmarks/merge_scale_seeds.py SEED0.json SEED1.json ... \
        --out benchmarks/results/scale_bellman_ford_seeds.json [--algorithm bellman_ford] [--steps exact] [--what "..."]

Per family and size: the mean of the seeds' accuracies (each already a mean over the suite's graphs), its
standard error over seeds (sample std, ddof 1, over sqrt(seeds)) and the seeds' values in the order given.
A cell missing from any file is left out (the seeds must have been scored on the same suite).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def seed_cells(result: Mapping[str, Any], algorithm: str, steps: str) -> dict[str, dict[str, float]]:
    """{family: {size: accuracy}} of one bench_scale.py result (the first model that ran ``algorithm``)."""
    for model in result["models"].values():
        if algorithm in model.get("results", {}):
            by_family = model["results"][algorithm][steps]
            return {fam: {size: cell["accuracy"] for size, cell in cells.items()} for fam, cells in by_family.items()}
    raise ValueError(f"no {algorithm!r} results in this file; it has {sorted(result['models'])}")


def mean_over_seeds(per_seed: Sequence[Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, dict[str, Any]]]:
    """{family: {size: {mean, stderr_over_seeds, seeds}}} over the cells every seed has."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for family, sizes in per_seed[0].items():
        for size in sizes:
            values = [s.get(family, {}).get(size) for s in per_seed]
            if any(v is None for v in values):
                continue
            mean = sum(values) / len(values)
            if len(values) > 1:
                var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
                se = math.sqrt(var / len(values))
            else:
                se = None
            out.setdefault(family, {})[size] = {
                "mean": round(mean, 2),
                "stderr_over_seeds": None if se is None else round(se, 2),
                "seeds": [round(v, 2) for v in values],
            }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", help="bench_scale.py JSON results, one per training seed, in seed order")
    p.add_argument("--out", required=True, help="the merged JSON")
    p.add_argument("--algorithm", default="bellman_ford")
    p.add_argument("--steps", default="exact", help="which step rule's results: exact (default) or default")
    p.add_argument("--what", default="", help="one line saying which runs these are (written into the JSON)")
    args = p.parse_args()
    per_seed = [seed_cells(json.loads(Path(f).read_text()), args.algorithm, args.steps) for f in args.files]
    merged = {"what": args.what, "files": args.files, "mean_over_seeds": mean_over_seeds(per_seed)}
    Path(args.out).write_text(json.dumps(merged, indent=1) + "\n")
    print(f"{args.out}: {len(merged['mean_over_seeds'])} families over {len(args.files)} seeds")


if __name__ == "__main__":
    main()
