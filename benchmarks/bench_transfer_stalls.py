"""Stalled transfer runs: rerun chosen runs of a sweep under other optimiser settings, validation only.

    python benchmarks/bench_transfer_stalls.py --settings base,bfloat16,lr0.005 \\
        --runs nar_frozen:200:4 e2e:100:2 ... --out benchmarks/results/transfer_stalls.json

Issue 16: in the committed digit_grid sweep a few runs (5 seeds x 5 sizes x 4 variants) sat on the
hop-count plateau (about 50 % validation pointer accuracy) and their training loss *rose* late in the
run, so one such run moved a mean by 6-8 points. This reruns named runs (``variant:size:seed``: the
sweep's own subset, initialisation and batch order, :func:`nar.transfer.train.train_run`) with the
task's transfer parameters (``params.yaml`` ``transfer``) changed by one setting:

``base``     unchanged (checks that the rerun reproduces the sweep's run)
``float32``  ``precision: float32`` (no bfloat16 autocast in the pointer models; the default since session 20,
             so a change only for tasks set to bfloat16)
``bfloat16`` ``precision: bfloat16`` (the sweep's setting when the stalls were found, session 15)
``lrX``      ``learning_rate: X`` (e.g. ``lr0.005``)
``cosine``   ``lr_schedule: cosine``

Only the validation split is scored (the best validation pointer accuracy over the run, the step it
came at, and the training loss at every validation): settings are chosen here, never on test.
The processor is ``transfer.processor`` (the registered champion by default); its sha256 is recorded.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]


def setting_overrides(setting: str) -> dict[str, Any]:
    """The TaskTransferParams fields a setting changes (see the module docstring)."""
    if setting == "base":
        return {}
    if setting in ("float32", "bfloat16"):
        return {"precision": setting}
    if setting == "cosine":
        return {"lr_schedule": "cosine"}
    if setting.startswith("lr"):
        try:
            return {"learning_rate": float(setting[2:])}
        except ValueError:
            pass
    raise SystemExit(
        f"--settings: unknown setting {setting!r}; allowed: base, float32, bfloat16, cosine, lr<float> (e.g. lr0.005)"
    )


def parse_run(text: str) -> tuple[str, int, int]:
    parts = text.split(":")
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        raise SystemExit(f"--runs: {text!r} is not variant:size:seed (e.g. nar_frozen:200:4)")
    return parts[0], int(parts[1]), int(parts[2])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="digit_grid")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--settings", default="base,bfloat16,lr0.005", help="comma-separated (module docstring)")
    ap.add_argument("--runs", nargs="+", required=True, help="variant:size:seed, e.g. nar_frozen:200:4")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)

    from bench_train import cpu_model  # a sibling script: python puts benchmarks/ on sys.path

    from nar.config import load_params
    from nar.transfer.record import load_processor_record, processor_from_record
    from nar.transfer.results import write_json
    from nar.transfer.train import RunSpec, TaskData, train_run
    from nar.transfer.variants import TRAINED

    settings = [s for s in args.settings.split(",") if s]
    overrides = {s: setting_overrides(s) for s in settings}  # bad settings fail before any training
    runs = [parse_run(r) for r in args.runs]
    for variant, _, _ in runs:
        if variant not in TRAINED:
            raise SystemExit(f"--runs: {variant!r} is not a trained variant; allowed: {', '.join(TRAINED)}")

    torch.set_num_threads(1)  # as the sweep's workers
    params = load_params(args.params).transfer
    base = params.task(args.task)
    record = load_processor_record(params.processor, params.allow_unverified)
    data = TaskData.load(params.data, args.task, base, splits=("val",))
    val = {"val": data.splits["val"].batches(50, "cpu")}
    results = []
    t0 = time.perf_counter()
    for setting in settings:
        tp = dataclasses.replace(base, **overrides[setting])
        for variant, size, seed in runs:
            start = time.perf_counter()
            spec = RunSpec(args.task, variant, size, seed)
            r = train_run(spec, tp, data, processor_from_record(record), eval_batches=val)
            row = {
                "setting": setting,
                "run": f"{variant}:{size}:{seed}",
                "best_val_pointer_acc": round(100 * max(p["val_pointer_acc"] for p in r.curve), 2),
                "last_val_pointer_acc": round(100 * r.curve[-1]["val_pointer_acc"], 2),
                "val_pointer_acc": round(100 * r.metrics["val"]["pointer_acc"], 2),  # the best weights, whole split
                "best_step": r.best_step,
                "steps": r.steps,
                "train_loss": [round(p["train_loss"], 3) for p in r.curve],
                "seconds": round(time.perf_counter() - start, 1),
            }
            results.append(row)
            print(
                f"{setting} {row['run']}: best val {row['best_val_pointer_acc']} % at step {row['best_step']}",
                file=sys.stderr,
            )

    out = {
        "benchmark": "transfer_stalls",
        "command": "python benchmarks/bench_transfer_stalls.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "task": args.task,
        "processor": {"uri": record.uri, "sha256": record.sha256},
        "settings": {s: overrides[s] for s in settings},
        "machine": {
            "cpu": cpu_model(),
            "torch": torch.__version__,
            "threads": 1,
            "load_average_at_end": list(os.getloadavg()),
        },
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "results": results,
    }
    write_json(args.out, out)  # atomic: a killed run leaves no half-written file
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
