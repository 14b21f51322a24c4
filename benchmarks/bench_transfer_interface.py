"""Does scaling f~'s edge inputs as pretraining scaled the weights close nar_frozen's ood gap? Validation only.

The registered processor was pretrained with ``weight_scale: eccentricity`` (weights divided per graph by
hop eccentricity x mean weight, so distances are O(1) at any size), but f~ feeds it unscaled inputs, so on
the larger ood graphs the processor may see distances beyond its training range. This trains nar_frozen
(and e2e) with the encoder interfaces ``latent`` / ``scalar`` with and without
``TaskTransferParams.weight_scale: eccentricity`` and scores them on ``val`` and on ``val_ood``: the val
image pool / road band drawn at larger sizes (digit_grid 16x16, road 32-36 nodes; the val band has no
40-48-node subgraphs), built here with ``build_natural`` into a scratch directory. Test and ood are not read.

    python benchmarks/bench_transfer_interface.py --task digit_grid --configs latent,latent_ecc \\
        --processor models/pretrain/bellman_ford --out /tmp/interface_digit.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

CONFIGS = {
    "latent": {"interface": "latent"},
    "latent_ecc": {"interface": "latent", "weight_scale": "eccentricity"},
    "scalar": {"interface": "scalar"},
    "scalar_ecc": {"interface": "scalar", "weight_scale": "eccentricity"},
}
VAL_OOD = {
    "digit_grid": {"count": 100, "sizes": [16], "pool": "val"},
    "road": {"count": 100, "sizes": [32, 36], "pool": "val"},
}


def build_val_ood(task: str, params_path: str, data: Path, root: Path) -> None:
    """root/<task>/{train,val} linked to the built splits, val_ood built from the val pool."""
    from nar.config import parse_params, read_params_file
    from nar.natural.build import build_natural

    raw = read_params_file(params_path)
    raw["natural"][task]["splits"]["val_ood"] = VAL_OOD[task]
    build_natural(task, parse_params(raw, ("natural",)).natural, out_dir=root, splits=["val_ood"], progress=False)
    for split in ("train", "val"):
        (root / task / split).symlink_to((data / task / split).resolve())


def one(job: tuple) -> dict:
    params_path, root, processor, task, config, variant, size, seed, budget = job
    import torch

    torch.set_num_threads(1)
    from nar.config import load_params
    from nar.transfer.record import load_processor_record, processor_from_record
    from nar.transfer.train import RunSpec, TaskData, train_run

    params = load_params(params_path, "transfer").transfer.task(task)
    params = dataclasses.replace(params, **budget, **CONFIGS[config])
    data = TaskData.load(root, task, params, splits=("val", "val_ood"))
    proc = processor_from_record(load_processor_record(processor))
    started = time.perf_counter()
    r = train_run(RunSpec(task, variant, size, seed), params, data, proc)
    return {
        "config": config,
        "variant": variant,
        "size": size,
        "seed": seed,
        "val": round(100 * r.metrics["val"]["pointer_acc"], 2),
        "val_ood": round(100 * r.metrics["val_ood"]["pointer_acc"], 2),
        "best_step": r.best_step,
        "steps": r.steps,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", choices=sorted(VAL_OOD), required=True)
    ap.add_argument("--configs", default="latent,latent_ecc,scalar,scalar_ecc")
    ap.add_argument("--variants", default="nar_frozen")
    ap.add_argument("--sizes", default="100,200")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--budget", default="{}", help='JSON overrides, e.g. {"max_steps": 1000, "patience": 20}')
    ap.add_argument("--processor", default="models/pretrain/bellman_ford", help="a local directory or registry URI")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", type=Path, default=Path("data/natural"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    configs = args.configs.split(",")
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise SystemExit(f"--configs: unknown {unknown[0]!r}; allowed: {sorted(CONFIGS)}")
    budget = json.loads(args.budget)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_val_ood(args.task, args.params, args.data, root)
        jobs = [
            (args.params, str(root), args.processor, args.task, c, v, int(n), int(s), budget)
            for s in args.seeds.split(",")
            for n in args.sizes.split(",")
            for v in args.variants.split(",")
            for c in configs
        ]
        rows = []
        with ProcessPoolExecutor(args.workers) as pool:
            for row in pool.map(one, jobs):
                print(json.dumps(row), flush=True)
                rows.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"task": args.task, "budget": budget, "val_ood": VAL_OOD[args.task], "runs": rows}, indent=1)
    )


if __name__ == "__main__":
    main()
