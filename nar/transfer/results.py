"""Where a sweep's results go: the resume store (finished runs, kept outside the DVC outputs until the sweep
completes) and the stage's outputs, ``models/transfer/<task>/`` and ``metrics/transfer/<task>.json``.

Results are nested ``[variant]["n<size>"]["s<seed>"]``, the layout :mod:`nar.transfer.evaluate` reads."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nar.transfer.config import TransferParams
from nar.transfer.variants import FROZEN_TRAINED, UNTRAINED

if TYPE_CHECKING:  # annotations only: the outputs need the record's fields, not the registry it loads from
    from nar.transfer.record import ProcessorRecord

UNTRACKED_RUN_KEYS = ("metrics", "curve", "train_seconds", "eval_seconds")


def nested(results: Sequence[Any], field: Callable[[Any], Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in results:
        s = r.spec
        out.setdefault(s.variant, {}).setdefault(f"n{s.size}", {})[f"s{s.seed}"] = field(r)
    return out


def clean(x: Any) -> Any:
    """JSON-safe: numpy scalars to Python numbers."""
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [clean(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, str | bytes):
        return x.item()
    return x


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(clean(data), indent=1, sort_keys=False) + "\n")
    tmp.replace(path)


class ResumeStore:
    """Finished runs of one sweep, kept outside the DVC outputs until the sweep completes.

    ``<root>/<task>/<key>/<variant>-n<size>-s<seed>.json`` (the result, written last and
    atomically: its presence means the run finished) and ``.safetensors`` (its weights, when kept).
    """

    def __init__(
        self,
        root: Path,
        task: str,
        params: TransferParams,
        record: ProcessorRecord | None,
        versions: dict[str, str],
    ) -> None:
        identity = {
            "params": params_dict(params, task),
            "processor": None if record is None else record.sha256,
            "data": versions,
        }
        key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
        self.path = Path(root) / task / key

    def _stem(self, spec: Any) -> Path:
        return self.path / f"{spec.variant}-n{spec.size}-s{spec.seed}"

    def save(self, r: Any) -> None:
        from safetensors.torch import save_file

        stem = self._stem(r.spec)
        stem.parent.mkdir(parents=True, exist_ok=True)
        if r.state is not None:
            tmp = stem.with_suffix(".safetensors.tmp")
            save_file({k: v.contiguous() for k, v in r.state.items()}, str(tmp))
            tmp.replace(stem.with_suffix(".safetensors"))
        write_json(stem.with_suffix(".json"), {**r.to_json(), "predictions": r.predictions})

    def load(self, spec: Any) -> Any:
        """The finished run of ``spec``, or None (not run, or its files unreadable: run it again)."""
        from safetensors.torch import load_file

        from nar.transfer.train import RunResult

        stem = self._stem(spec)
        try:
            d = json.loads(stem.with_suffix(".json").read_text())
            weights = stem.with_suffix(".safetensors")
            state = load_file(str(weights)) if weights.is_file() else None
        except (OSError, ValueError):
            return None
        if d.get("variant") != spec.variant or d.get("size") != spec.size or d.get("seed") != spec.seed:
            return None
        return RunResult.from_json(spec, d, state)

    def clear(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        for parent in (self.path.parent, self.path.parent.parent):
            try:
                parent.rmdir()  # only when empty
            except OSError:
                break


def write_outputs(
    task: str,
    params: TransferParams,
    data: Any,
    record: ProcessorRecord | None,
    results: list[Any],
    versions: dict[str, str],
    base: Path,
    models_root: Path,
    metrics_root: Path,
    t0: float,
) -> tuple[dict[str, Any], Path, Path]:
    """models/transfer/<task>/ (weights, predictions.json, index.json), then the metrics file, last: a
    metrics file on disk means every other output is there."""
    from nar.tracking import run_record_path
    from nar.transfer.train import untrained_predictions

    first_seed = params.seeds[0]
    out_dir = Path(models_root) / task
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    saved = save_models(out_dir, results, record)
    predictions = {"task": task, "size": params.picture_size, "seed": first_seed, "variants": {}}
    for r in results:
        if r.predictions:
            predictions["variants"][r.spec.variant] = r.predictions
    for variant in UNTRAINED:
        if variant not in params.variants or not params.picture_examples:
            continue
        predictions["variants"][variant] = {
            name: [
                p.tolist()
                for p in untrained_predictions(
                    variant, data.splits[name], data.algorithm, params.picture_examples, processor=record
                )
            ]
            for name in ("test", "ood")
            if name in data.splits
        }
    write_json(out_dir / "predictions.json", predictions)

    wall = time.perf_counter() - t0
    metrics: dict[str, Any] = {
        "task": task,
        "algorithm": data.algorithm,
        "processor": None if record is None else record.info(),
        "data": {"root": str(base), "versions": versions, "sizes": {"train": len(data.train)}},
        "variants": list(params.variants),
        "sizes": list(params.sizes),
        "seeds": list(params.seeds),
        "splits": list(data.splits),
        "results": nested(results, lambda r: r.metrics),
        "curves": nested([r for r in results if r.curve], lambda r: r.curve),
        # timings depend on the machine: in the git-ignored run record (and MLflow), not this tracked file
        "runs": nested(results, lambda r: {k: v for k, v in r.to_json().items() if k not in UNTRACKED_RUN_KEYS}),
    }
    timing = {
        "wall_seconds": round(wall, 1),
        "train_seconds": round(sum(r.train_seconds for r in results), 1),
        "eval_seconds": round(sum(r.eval_seconds for r in results), 1),
        "workers": params.workers,
    }
    for key, split in (("val", "val"), ("test", "test"), ("ood", "ood")):
        metrics["data"]["sizes"][key] = len(data.splits[split]) if split in data.splits else 0
    metrics = clean(metrics)
    index = {
        "task": task,
        "processor": metrics["processor"],
        "params": params_dict(params, task),
        "models": saved,
        "data_versions": versions,
    }
    write_json(out_dir / "index.json", index)
    metrics_path = Path(metrics_root) / f"{task}.json"
    write_json(metrics_path, metrics)
    runs = nested(results, lambda r: {"train_seconds": r.train_seconds, "eval_seconds": r.eval_seconds})
    write_json(run_record_path(metrics_path), {"task": task, "timing": timing, "runs": runs})
    return {**metrics, "timing": timing}, metrics_path, out_dir


def params_dict(params: TransferParams, task: str) -> dict[str, Any]:
    d = {f.name: getattr(params, f.name) for f in dataclasses.fields(params) if f.name != "tasks"}
    d["task"] = dataclasses.asdict(params.task(task))
    return clean(d)


def save_models(out_dir: Path, results: Sequence[Any], record: ProcessorRecord | None) -> list[dict[str, Any]]:
    from safetensors.torch import save_file

    saved = []
    for r in results:
        if r.state is None:
            continue
        name = f"{r.spec.variant}-n{r.spec.size}-s{r.spec.seed}.safetensors"
        meta = {"variant": r.spec.variant, "size": str(r.spec.size), "seed": str(r.spec.seed)}
        if r.spec.variant in FROZEN_TRAINED and record is not None:
            meta["processor_sha256"] = record.sha256  # the frozen processor is not stored again
        # one metadata key: safetensors writes a metadata map in hash order, a different file (and
        # dvc.lock hash) on every run; one JSON string is the same bytes every time (nar.data.dataset does so too)
        save_file(
            {k: v.contiguous() for k, v in r.state.items()},
            str(out_dir / name),
            metadata={"nar": json.dumps(meta, sort_keys=True)},
        )
        saved.append({"file": name, **meta})
    return saved
