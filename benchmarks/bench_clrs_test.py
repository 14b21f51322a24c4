"""Score trained models on our out-of-distribution test graphs and on CLRS-30's.

    python benchmarks/bench_clrs_test.py [models/pretrain/bellman_ford ...] [--out PATH]

With no arguments, every pretrain stage output under ``models/pretrain/`` (``model.json`` +
``model.safetensors``). Each model is scored (pointer accuracy of its output, the CLRS
score) on five sets at n = 64, all seed-fixed:

* ``stage_test``: the pretrain stage's own test split (``data/synthetic/<algorithm>/test``,
  what ``metrics/pretrain/<run>.json`` reports), when it is there;
* ``64`` / ``64x128``: the benchmarks' test graphs (``nar.data.samplers``: p ~ U(0.1, 0.9)
  per graph, edge density p, weights U[0, 1), random positions), 32 and 128 graphs;
* ``clrs64`` / ``clrs64x128``: CLRS-30's published test distribution (``clrs_graphs.py``:
  edge density 0.25, weights sqrt(w·w' + 1e-3), evenly spaced positions), 32 and 128 graphs.

The last four are ``clrs_graphs.ood_test_sets``, the sets ``bench_quality.py`` scores every
run on (reported there as ``ood_64``, ``ood_64x128``, ``clrs_64``, ``clrs_64x128``).
The issue's floors are the Triplet-GMPNN figures of Ibarz et al. 2022, measured on CLRS-30's
test set, so ``clrs64*`` is the like-for-like comparison. Writes one entry per model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench_pretrain_profiles import FLOORS  # beside this script: on the path of `python benchmarks/...`
from clrs_graphs import ood_test_sets

RESULTS = Path(__file__).resolve().parent / "results" / "clrs_test.json"


def score_model(model_dir: Path, data_root: Path) -> dict:
    import safetensors.torch

    from nar.data.dataset import load_dataset
    from nar.models import ModelConfig
    from nar.training.loop import build_model
    from nar.training.metrics import evaluate
    from nar.training.pretrain import fixed_batches as dataset_batches

    cfg = json.loads((model_dir / "model.json").read_text())
    model = build_model(ModelConfig.from_dict(cfg["model"]), cfg["algorithms"])
    model.load_state_dict(safetensors.torch.load_file(str(model_dir / "model.safetensors")))
    entry: dict = {"model": str(model_dir), "processor": cfg["model"]["processor"], "scores": {}}
    for algo in cfg["algorithms"]:
        stage_test = data_root / algo / "test"
        sets = {"stage_test": dataset_batches(load_dataset(stage_test), 32)} if stage_test.is_dir() else {}
        sets.update(ood_test_sets(algo))
        t0 = time.perf_counter()
        scores = {k: 100 * evaluate(model, v, model.specs[algo])["score"] for k, v in sets.items()}
        entry["scores"][algo] = {**scores, "floor": FLOORS.get(algo), "seconds": time.perf_counter() - t0}
    return entry


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", type=Path, help="model directories (default: models/pretrain/*)")
    p.add_argument("--data", type=Path, default=Path("data/synthetic"), help="the stage's generated datasets")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    dirs = args.models or sorted(d for d in Path("models/pretrain").iterdir() if (d / "model.json").exists())
    if not dirs:
        p.error("no model directories given and none under models/pretrain/ (run `dvc repro pretrain` first)")
    missing = [str(d) for d in dirs if not (d / "model.json").exists() or not (d / "model.safetensors").exists()]
    if missing:
        p.error(f"not a pretrain output (needs model.json and model.safetensors): {', '.join(missing)}")
    entries = []
    for d in dirs:
        entry = score_model(d, args.data)
        entries.append(entry)
        for algo, s in entry["scores"].items():
            cells = "  ".join(f"{k} {v:.2f}" for k, v in s.items() if k not in ("floor", "seconds"))
            print(f"{d.name} {algo}: {cells}  (floor {s['floor']})", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"torch_threads": args.threads, "entries": entries}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
