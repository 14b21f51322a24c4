"""The ``pretrain`` stage: train encode-process-decode on the generated datasets, track it, write outputs.

Reads ``data/synthetic/<algorithm>/{train,val,<test splits>}`` and writes

* ``models/pretrain/<name>/processor.safetensors`` + ``processor.json`` (the processor alone,
  what ``nar register`` freezes) and ``model.safetensors`` + ``model.json`` (the whole model);
* ``metrics/pretrain/<name>.json`` (DVC ``metrics:``, the headline): ``ood_score`` (mean
  pointer/output accuracy in % at the largest test size, the figure the registry's gate compares),
  ``val_score`` and ``scale_score`` (%);
* ``metrics/pretrain/details/<name>.json`` (a plain output): best validation scores and
  out-of-distribution test scores per algorithm and test size, the scale suite's cells, dataset versions;
* ``plots/pretrain/<name>.csv`` (learning curves, a DVC plot) and ``plots/pretrain/<name>.png``.

Everything git tracks is a function of params, code, data and seed (a rerun leaves the tree clean);
what depends on the machine or the run's history (training seconds, per-row elapsed time, the step a
run resumed from) goes to MLflow and to ``runs/pretrain/<name>.json`` (git-ignored).

Checkpoints for resuming live in ``checkpoints/pretrain/<name>/<run key>/`` (not a DVC output,
since DVC deletes outputs before rerunning a stage). The run key hashes the resolved config and
the dataset manifests, so a run only ever resumes its own checkpoint; the directory is removed
after a successful run, so a later rerun (new code, same config) trains afresh. Directories of the
same run left by an earlier configuration can never be resumed by this one: they are named when
the run starts and removed (their MLflow runs marked KILLED) when it finishes.

SIGINT and SIGTERM stop a run cleanly: its MLflow run is marked KILLED (any other failure: FAILED)
instead of staying RUNNING, the checkpoint is kept, and :class:`PretrainInterrupted` says, in one
line, which checkpoint is kept and which command resumes it (in the same MLflow run).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nar.algorithms import ALGORITHMS
from nar.algorithms.spec import Trajectory
from nar.data.batching import Batch, collate
from nar.data.dataset import Dataset, load_dataset
from nar.errors import NarError
from nar.tracked_run import TrackedRun, flatten

log = logging.getLogger(__name__)

TRAIN, VAL = "train", "val"
DEFAULT_DATA_ROOT = Path("data/synthetic")


class PretrainInterrupted(NarError):
    """SIGINT or SIGTERM stopped a pretraining run; the message says what was kept and how to resume.

    ``exit_code`` is the shell's convention for a process ended by that signal (130, 143)."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class _Stop(BaseException):
    """Raised by the SIGTERM/SIGINT handler in the main thread. A BaseException, like KeyboardInterrupt,
    so that no ``except Exception`` on the way (MLflow, the loop) swallows it before the run is settled."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _signals_stop() -> Iterator[None]:
    """While inside: SIGINT and SIGTERM raise :class:`_Stop` (SIGTERM would otherwise end the process with
    no cleanup at all). Signals the parent told us to ignore stay ignored; outside the main thread
    (where Python cannot install handlers) nothing changes. The previous handlers come back on exit,
    so a second Ctrl-C during the cleanup still ends the process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise _Stop(signum)

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class DatasetBatches:
    """``(algorithm, step) -> Batch`` from on-disk training sets, one node count per batch.

    A pure function of (algorithm, step), so a resumed run sees exactly the batches an
    uninterrupted one would. The node count is drawn in proportion to how many graphs of that
    size the dataset holds (no padding is spent on nodes), then ``batch_size`` graphs of it.
    """

    def __init__(self, datasets: Mapping[str, Dataset], batch_size: int, seed: int) -> None:
        self.batch_size, self.seed = batch_size, seed
        self.order = sorted(datasets)
        self.trajectories = {a: d.trajectories() for a, d in datasets.items()}
        self.groups: dict[str, tuple[np.ndarray, list[np.ndarray]]] = {}
        for algo, data in datasets.items():
            sizes = np.asarray(data.num_nodes)
            values = np.unique(sizes)
            self.groups[algo] = (values, [np.flatnonzero(sizes == n) for n in values])

    def __call__(self, algorithm: str, step: int) -> Batch:
        rng = np.random.default_rng([self.seed, self.order.index(algorithm), step])
        values, members = self.groups[algorithm]
        weights = np.array([len(m) for m in members], dtype=np.float64)
        group = members[int(rng.choice(len(values), p=weights / weights.sum()))]
        picks = rng.choice(group, size=self.batch_size, replace=len(group) < self.batch_size)
        trajs = self.trajectories[algorithm]
        return collate(ALGORITHMS[algorithm].spec, [trajs[i] for i in picks])


class SampledBatches:
    """``(algorithm, step) -> Batch`` of fresh graphs drawn like the training split's (online sampling).

    The graphs come from the sampler and node counts recorded in each training split's manifest,
    so "online" trains on the same distribution as the split, without ever repeating a graph
    (Ibarz et al. 2022 sample training data on-line). A pure function of (algorithm, step) like
    :class:`DatasetBatches`; the node count is uniform over the split's sizes. About 1 ms per
    batch of 32 graphs at n <= 16 (a training step takes 30-100 ms).
    """

    def __init__(self, datasets: Mapping[str, Dataset], batch_size: int, seed: int) -> None:
        from nar.data.samplers import GraphSamplerConfig

        self.batch_size, self.seed = batch_size, seed
        self.order = sorted(datasets)
        self.sampler = {a: GraphSamplerConfig.from_dict(d.manifest.sampler) for a, d in datasets.items()}
        self.sizes = {a: tuple(int(n) for n in d.manifest.sizes) for a, d in datasets.items()}

    def __call__(self, algorithm: str, step: int) -> Batch:
        from nar.data.samplers import sample_graphs

        # stream 1: never the same numbers as DatasetBatches' (seed, algorithm, step) picks
        rng = np.random.default_rng([self.seed, self.order.index(algorithm), step, 1])
        sizes = self.sizes[algorithm]
        n = sizes[int(rng.integers(len(sizes)))]
        algo = ALGORITHMS[algorithm]
        trace = algo.run(sample_graphs(algo.spec.graph, self.sampler[algorithm], n, self.batch_size, rng))
        return collate(algo.spec, trace.trajectories())


class MixedBatches:
    """``(algorithm, step) -> Batch`` of fresh graphs from a mix of families and sizes (online).

    For processors that must execute on the graphs users have (grids, road-like geometric
    graphs, sparse random graphs, hundreds to thousands of nodes): each step draws a family
    from ``mix.kinds`` and a node count from ``mix.sizes``, then ``max(4, nodes_per_batch // n)``
    graphs, so every batch costs about the same. Erdős–Rényi graphs keep CLRS's p ~ U(0.1, 0.9)
    up to n = 16 and use the sparse p = 3 ln(n) / n above (dense ER at n = 64 has ~2,000 edges a
    graph and long-path structure only in the other families). With ``mix.oneway`` > 0, half the
    batches have that fraction of their edges one-way (road-like; the graph's direction then matters).
    With ``mix.hold`` > 0 each trajectory of T steps gets ceil(hold x (T - 1)) more steps with its
    final hints repeated (``held``). A pure function of (algorithm, step).
    """

    def __init__(self, mix: Any, seed: int) -> None:
        self.mix, self.seed = mix, seed

    def __call__(self, algorithm: str, step: int) -> Batch:
        from nar.data.samplers import GraphSamplerConfig, sample_graphs

        key = sum(ord(c) * 31**i for i, c in enumerate(algorithm)) % (2**31)
        rng = np.random.default_rng([self.seed, key, step, 2])
        kind = self.mix.kinds[int(rng.integers(len(self.mix.kinds)))]
        n = int(self.mix.sizes[int(rng.integers(len(self.mix.sizes)))])
        p = (0.1, 0.9) if n <= 16 else (min(1.0, 3 * math.log(n) / n),) * 2
        oneway = self.mix.oneway if rng.random() < 0.5 else 0.0
        config = GraphSamplerConfig(kind=kind, p_range=p, oneway=oneway)
        algo = ALGORITHMS[algorithm]
        graphs = sample_graphs(algo.spec.graph, config, n, self.batch_for(n), rng)
        return collate(algo.spec, [held(t, self.mix.hold) for t in algo.run(graphs).trajectories()])

    def batch_for(self, n: int) -> int:
        return max(4, self.mix.nodes_per_batch // n)


def held(traj: Trajectory, hold: float) -> Trajectory:
    """``traj`` with ceil(hold x (T - 1)) extra steps repeating its final hints (T, ...) -> (T + k, ...).

    Why: in a graph of depth D a node settled at step t must keep its state for D - t steps; trained on
    depths up to ~60, a BFS processor set pointers right on 1,024-node paths and then lost them after
    100-200 steps (README "Scale"). Held steps train that keeping directly.
    """
    extra = math.ceil(hold * (traj.length - 1))
    if extra <= 0:
        return traj
    hints = {k: np.concatenate([h, np.repeat(h[-1:], extra, axis=0)]) for k, h in traj.hints.items()}
    return dataclasses.replace(traj, hints=hints)


#: ``train_data`` -> a builder of the training batches from (train datasets, batch size, seed, mix)
TRAIN_DATA = {
    "dataset": lambda train, batch_size, seed, mix: DatasetBatches(train, batch_size, seed),
    "online": lambda train, batch_size, seed, mix: SampledBatches(train, batch_size, seed),
    "mixed": lambda train, batch_size, seed, mix: MixedBatches(mix, seed),
}


def fixed_batches(dataset: Dataset, batch_size: int) -> list[Batch]:
    """A validation/test set as batches of graphs of equal size (in file order within a size)."""
    trajs = dataset.trajectories()
    sizes = np.asarray(dataset.num_nodes)
    batches = []
    for n in np.unique(sizes):
        idx = np.flatnonzero(sizes == n)
        for start in range(0, len(idx), batch_size):
            batches.append(collate(dataset.spec, [trajs[i] for i in idx[start : start + batch_size]]))
    return batches


@dataclass(frozen=True)
class PretrainData:
    train: dict[str, Dataset]
    val: dict[str, Dataset]
    test: dict[str, dict[str, Dataset]]  # algorithm -> label (node count, e.g. "64") -> dataset
    versions: dict[str, str]  # "<algorithm>/<split>" -> manifest sha256 (short)


def load_pretrain_data(root: Path, algorithms: Sequence[str]) -> PretrainData:
    """Load train, val and every other split (the OOD tests) of each algorithm under ``root``."""
    from nar.tracking import dataset_version

    train, val, test, versions = {}, {}, {}, {}
    for algo in algorithms:
        base = Path(root) / algo
        if not base.is_dir():
            raise NarError(f"no dataset for {algo!r} at {base}: run `nar generate --algorithm {algo}` first")
        for split in (TRAIN, VAL):
            if not (base / split).is_dir():
                raise NarError(
                    f"dataset {base} has no {split!r} split (found: {sorted(p.name for p in base.iterdir())})"
                )
        # each split must be the one its directory names: a copied-in split would be trained or scored silently
        train[algo] = load_dataset(base / TRAIN, algorithm=algo, split=TRAIN)
        val[algo] = load_dataset(base / VAL, algorithm=algo, split=VAL)
        test[algo] = {}
        for split_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            versions[f"{algo}/{split_dir.name}"] = dataset_version(split_dir)
            if split_dir.name in (TRAIN, VAL):
                continue
            data = load_dataset(split_dir, algorithm=algo, split=split_dir.name)
            label = "_".join(str(n) for n in sorted(set(np.asarray(data.num_nodes).tolist())))
            test[algo][label if label not in test[algo] else split_dir.name] = data
    return PretrainData(train, val, test, versions)


def run_key(resolved: Mapping[str, Any], versions: Mapping[str, str]) -> str:
    blob = json.dumps({"config": resolved, "data": versions}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def ood_scores(test: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict[str, float]:
    """Each algorithm's output score in % at its largest test size (the test sets hold fractions)."""
    scores = {}
    for algo, sets in test.items():
        if sets:
            largest = max(sets, key=lambda label: int(label.split("_")[-1]) if label.split("_")[-1].isdigit() else 0)
            scores[algo] = 100.0 * sets[largest]["score"]
    return scores


def ood_score(test: Mapping[str, Mapping[str, Mapping[str, float]]]) -> float:
    """Mean over algorithms of the output score (in %) at each algorithm's largest test size."""
    scores = list(ood_scores(test).values())
    return float(np.mean(scores)) if scores else float("nan")


def scale_metrics(
    model: Any, algorithms: Sequence[str], sizes: Sequence[int] = (256,), graphs_per_cell: int = 2
) -> dict[str, Any]:
    """Pointer accuracy on the scale suite at ``sizes`` (default its n = 256 part; ``nar.execute.suite_scores``).

    Only processors with a sparse step run there (a dense (N, N) step at 256 nodes is what the
    suite exists to avoid); others get ``{"skipped": reason}``.
    """
    from nar.execute import INITIAL_HINTS, Executor, suite_scores

    if not model.processor.supports_sparse:
        return {"skipped": f"processor {model.processor.config.kind} (full_adjacency) has no sparse step"}
    known = [a for a in algorithms if a in INITIAL_HINTS]
    if not known:
        return {"skipped": f"none of {list(algorithms)} runs on user graphs"}
    was = model.training
    try:
        return suite_scores(Executor(model.cpu()), known, sizes=tuple(sizes), graphs_per_cell=graphs_per_cell)
    finally:
        model.train(was)


def write_curves(history: Sequence[Mapping[str, float]], csv_path: Path, png_path: Path, title: str) -> None:
    """Learning curves as a DVC plot (CSV) and a PNG a person can look at."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    # elapsed_s depends on the machine: MLflow has it (and runs/pretrain/), the tracked CSV does not
    frame = pd.DataFrame([{k: v for k, v in row.items() if k not in UNTRACKED_COLUMNS} for row in history])
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(csv_path, index=False)
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 3.6))
    if not frame.empty:
        ax_loss.plot(frame["step"], frame["train_loss"], color="tab:blue")
        ax_loss.set_yscale("log")
        for col in [c for c in frame.columns if c.startswith("val/") and c.endswith("/score")]:
            ax_val.plot(frame["step"], 100 * frame[col], label=col.split("/")[1])
        ax_val.legend(loc="lower right")
    ax_loss.set(xlabel="step", ylabel="training loss", title=f"{title}: loss")
    ax_val.set(xlabel="step", ylabel="validation score (%)", title=f"{title}: validation (n = 16)")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)


UNTRACKED_COLUMNS = ("elapsed_s",)


def headline_metrics(metrics: Mapping[str, Any], best_val_score: float) -> dict[str, float]:
    """``metrics/pretrain/<name>.json``, all in %: ``ood_score`` (what the registry's gate compares),
    ``val_score`` (the best checkpoint's mean validation score) and ``scale_score`` (the scale suite's
    mean, absent when the suite was skipped). Everything else: ``metrics/pretrain/details/<name>.json``."""
    out = {"ood_score": float(metrics["ood_score"]), "val_score": 100.0 * float(best_val_score)}
    scale = metrics.get("scale")
    if isinstance(scale, Mapping) and isinstance(scale.get("score"), int | float):
        out["scale_score"] = float(scale["score"])
    return out


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=float) + "\n")
    os.replace(tmp, path)


def run_pretrain(
    name: str,
    model_config: Any,
    train_config: Any,
    *,
    batch_size: int,
    train_data: str = "dataset",
    mix: Any = None,
    scale_suite: Any = None,
    data_root: Path = Path("data/synthetic"),
    models_root: Path = Path("models/pretrain"),
    metrics_root: Path = Path("metrics/pretrain"),
    plots_root: Path = Path("plots/pretrain"),
    checkpoints_root: Path = Path("checkpoints/pretrain"),
    track: bool = True,
) -> dict[str, Any]:
    """Train one processor configuration end to end; returns the metrics written.

    ``train_data``: "dataset" draws training batches from the generated train split, "online"
    draws fresh graphs like it at every step, "mixed" fresh graphs from ``mix`` (``MixParams``:
    families, sizes, nodes per batch; :class:`MixedBatches`).
    """
    from nar.training.loop import TrainingDiverged, train

    if train_data not in TRAIN_DATA:
        raise NarError(f"train_data {train_data!r} is not one of {sorted(TRAIN_DATA)}")
    data = load_pretrain_data(data_root, train_config.algorithms)
    if train_data == "mixed" and mix is None:
        raise NarError("train_data 'mixed' needs a mix (kinds, sizes, nodes_per_batch)")
    train_batches = TRAIN_DATA[train_data](data.train, batch_size, train_config.seed, mix)
    val = {a: fixed_batches(d, batch_size) for a, d in data.val.items()}
    test = {a: {label: fixed_batches(d, batch_size) for label, d in sets.items()} for a, sets in data.test.items()}
    extra = {"batch_size": batch_size, "train_data": train_data, "name": name}
    if train_data == "mixed":
        extra["mix"] = dataclasses.asdict(mix)
    resolved = {"model": model_config.to_dict(), "train": train_config.to_dict(), **extra}
    ckpt_dir = Path(checkpoints_root) / name / run_key(resolved, data.versions)
    for stale in superseded_checkpoints(ckpt_dir):
        log.warning(
            "%s holds a checkpoint of an earlier configuration of run %r: not resumed; removed when this run finishes",
            stale,
            name,
        )

    run: _Tracker | None = None
    try:
        with _signals_stop():
            run = _Tracker.open(name, ckpt_dir, resolved, data.versions) if track else None
            result = train(
                model_config,
                train_config,
                train_batches,
                val,
                test,
                out_dir=ckpt_dir,
                extra_config=extra,
                on_log=run.log_row if run else None,
            )
            metrics = _write_outputs(
                name,
                result,
                resolved,
                train_config,
                data,
                scale_suite,
                Path(models_root),
                Path(metrics_root),
                Path(plots_root),
                run,
            )
    except (_Stop, KeyboardInterrupt) as exc:
        signum = exc.signum if isinstance(exc, _Stop) else int(signal.SIGINT)
        stopped = f"stopped by {signal.Signals(signum).name}; resumable"
        marked = run.run_id if run is not None and run.kill(stopped) else None
        raise PretrainInterrupted(
            _resume_message(name, ckpt_dir, signum, train_config.steps, Path(data_root), marked), signum
        ) from None
    except TrainingDiverged as exc:
        if run is not None:  # a reader of MLflow sees a failed run, not one that looks still in progress
            run.fail(str(exc))
        raise
    except BaseException as exc:
        if run is not None:  # any other failure: FAILED with the reason, never RUNNING forever
            run.fail(f"{type(exc).__name__}: {exc}")
        raise
    shutil.rmtree(ckpt_dir, ignore_errors=True)  # finished: nothing left to resume
    _remove_superseded(ckpt_dir, run)
    return metrics


def write_network(
    model: Any, out_dir: Path, *, name: str, algorithms: Sequence[str], config: Mapping[str, Any]
) -> list[Path]:
    """Write a trained network into ``out_dir`` as the pretrain stage lays it out, so it loads by path.

    The files, returned in this order:

    * ``processor.json`` + ``processor.safetensors``: the processor alone, with its sha256 and the spec
      versions of ``algorithms`` (what ``nar register`` freezes and the transfer stage loads);
    * ``model.json``: ``name``, ``algorithms`` and the entries of ``config``, which must hold ``model``
      (``ModelConfig.to_dict()``: what ``nar execute`` and ``ceiling`` rebuild the network from);
      the pretrain stage passes its whole resolved run configuration;
    * ``model.safetensors``: the whole model's weights (encoders and decoders too).
    """
    import safetensors.torch

    from nar.registry import save_processor

    spec_versions = {a: ALGORITHMS[a].spec.version for a in algorithms}
    save_processor(model.processor, out_dir, name=name, algorithms=algorithms, spec_versions=spec_versions)
    # plain contiguous CPU tensors (safetensors refuses non-contiguous ones): the same file whichever device trained it
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    safetensors.torch.save_file(state, str(out_dir / "model.safetensors"))
    _write_json(out_dir / "model.json", {"name": name, "algorithms": list(algorithms), **config})
    return [out_dir / f for f in ("processor.json", "processor.safetensors", "model.json", "model.safetensors")]


def _write_outputs(
    name: str,
    result: Any,
    resolved: Mapping[str, Any],
    train_config: Any,
    data: PretrainData,
    scale_suite: Any,
    models_root: Path,
    metrics_root: Path,
    plots_root: Path,
    run: _Tracker | None,
) -> dict[str, Any]:
    """The stage's outputs from a finished training run (model, metrics, curves), and the MLflow run finished."""
    from nar.tracking import details_path, run_record_path

    model = result.model
    assert model is not None
    network_files = write_network(
        model, models_root / name, name=name, algorithms=train_config.algorithms, config=resolved
    )

    per_algorithm = ood_scores(result.test)
    metrics = {
        "name": name,
        "ood_score": ood_score(result.test),
        "best_step": result.best_step,
        "steps": result.steps,
        "algorithms": {
            a: {
                "val": result.best_val.get(a, {}),
                "test": result.test.get(a, {}),  # fractions, as the training metrics compute them
                # in %, like the run's ood_score: what the registry tags and the model card show
                **({"ood_score": per_algorithm[a]} if a in per_algorithm else {}),
            }
            for a in train_config.algorithms
        },
        "dataset_versions": data.versions,
    }
    sizes, per_cell = (scale_suite.sizes, scale_suite.graphs_per_cell) if scale_suite else ((256,), 2)
    metrics["scale"] = scale_metrics(model, train_config.algorithms, sizes, per_cell)
    metrics_path = metrics_root / f"{name}.json"
    # the details (per algorithm, per test size, the scale suite's cells, dataset versions) in a plain
    # output, the headline in the metrics file: `dvc metrics show` stays a table a person reads
    _write_json(details_path(metrics_path), metrics)
    _write_json(metrics_path, headline_metrics(metrics, result.best_score))
    csv_path, png_path = plots_root / f"{name}.csv", plots_root / f"{name}.png"
    write_curves(result.history, csv_path, png_path, name)
    record = {
        "name": name,
        "train_seconds": result.train_seconds,
        "resumed_from": result.resumed_from,
        "elapsed_s": {int(r["step"]): r["elapsed_s"] for r in result.history if "elapsed_s" in r},
        "mlflow_run_id": run.run_id if run is not None else None,
    }
    _write_json(run_record_path(metrics_root / f"{name}.json"), record)
    if run is not None:
        run.finish(
            metrics,
            record,
            [
                *network_files,
                png_path,
                csv_path,
            ],
        )
    # the caller (nar pretrain's summary, benchmarks) also gets the run record's figures the files leave out
    return {**metrics, "train_seconds": result.train_seconds, "resumed_from": result.resumed_from}


def superseded_checkpoints(ckpt_dir: Path) -> list[Path]:
    """Checkpoint directories of the same run name but another run key (an earlier configuration or dataset):
    this run never resumes them."""
    parent = Path(ckpt_dir).parent
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir() if p.is_dir() and p.name != Path(ckpt_dir).name)


def _remove_superseded(ckpt_dir: Path, run: _Tracker | None) -> None:
    """After a successful run: the earlier configurations' checkpoints are dead weight (DVC restores an
    earlier configuration's outputs from its cache, it does not retrain them). Their MLflow runs, if still
    RUNNING (a SIGKILL leaves no chance to mark them), are marked KILLED."""
    for stale in superseded_checkpoints(ckpt_dir):
        id_file = stale / RUN_ID_FILE
        if run is not None and id_file.is_file():
            run.supersede(id_file.read_text().strip(), stale)
        shutil.rmtree(stale, ignore_errors=True)
        log.warning("removed %s: a checkpoint of an earlier configuration of this run", stale)


def _resume_message(name: str, ckpt_dir: Path, signum: int, steps: int, data_root: Path, marked: str | None) -> str:
    """One line: what the signal stopped, what was kept, and the command that resumes it."""
    from nar.training.checkpoint import checkpoint_step

    command = f"nar pretrain --run {name}" + ("" if data_root == DEFAULT_DATA_ROOT else f" --data {data_root}")
    step = checkpoint_step(ckpt_dir / "last.pt")
    mlflow = f"; MLflow run {marked} marked KILLED" if marked else ""
    if step is None:
        return (
            f"{signal.Signals(signum).name}: pretraining {name!r} stopped before its first checkpoint{mlflow}; "
            f"nothing to resume: `{command}` (or `dvc repro pretrain@{name}`) starts it again"
        )
    return (
        f"{signal.Signals(signum).name}: pretraining {name!r} stopped; checkpoint {ckpt_dir} kept at step {step} of "
        f"{steps}{mlflow}; resume with `{command}` (or `dvc repro pretrain@{name}`) and the same params.yaml: "
        "it continues from that step in the same MLflow run"
    )


RUN_ID_FILE = "mlflow_run_id"
# the stage's git-tracked outputs (dvc.yaml, cache: false), as (folder, suffix)
TRACKED_OUTPUTS = (("metrics/pretrain", ".json"), ("metrics/pretrain/details", ".json"), ("plots/pretrain", ".csv"))


class _Tracker(TrackedRun):
    """One MLflow run per pretraining run (every call retried, what still fails is one line); a resumed run
    continues the MLflow run whose id its checkpoint directory keeps."""

    @classmethod
    def open(cls, name: str, ckpt_dir: Path, resolved: Mapping[str, Any], versions: Mapping[str, str]) -> _Tracker:
        from nar.tracked_run import open_experiment
        from nar.tracking import EXPERIMENT, dvc_locked_hashes, git_commit, params_hash

        def tags() -> dict[str, str]:
            return {
                # this stage's git-tracked outputs, deleted by DVC before it runs, do not make it dirty
                "git_commit": git_commit(outputs=[f"{d}/{name}{x}" for d, x in TRACKED_OUTPUTS]),
                "params_hash": params_hash(resolved),
                "checkpoint_dir": str(ckpt_dir),
                **{f"dataset.{k}": v for k, v in versions.items()},
                **{f"dvc.{k}": v for k, v in dvc_locked_hashes("generate").items()},
            }

        client, experiment_id = open_experiment(EXPERIMENT)
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        # resumed: the run a SIGINT/SIGTERM marked KILLED (or a crash FAILED) is running again
        return cls.resume_or_start(client, experiment_id, name, ckpt_dir / RUN_ID_FILE, tags, resolved)

    def log_row(self, row: Mapping[str, float]) -> None:
        self.log_metrics({k.replace("/", "."): v for k, v in row.items() if k != "step"}, step=int(row["step"]))

    def supersede(self, run_id: str, stale: Path) -> None:
        """A run of an earlier configuration whose checkpoint ``stale`` is removed: KILLED if still RUNNING."""
        why = f"checkpoint {stale} removed: superseded by {self.run_id}"
        TrackedRun(self.client, run_id).end_if_running("KILLED", "superseded", why)

    def finish(self, metrics: Mapping[str, Any], record: Mapping[str, Any], artifacts: Sequence[Path]) -> None:
        scores = {"ood_score": metrics["ood_score"], "train_seconds": record["train_seconds"]}
        for algo, algo_scores in metrics["algorithms"].items():
            if "ood_score" in algo_scores:  # % like ood_score, beside the raw test fractions below
                scores[f"ood_score.{algo}"] = algo_scores["ood_score"]
            scores.update(flatten(algo_scores["test"], f"test.{algo}"))
        self.log_metrics(scores)
        if record.get("resumed_from") is not None:
            self.set_tags({"resumed_from": str(record["resumed_from"])})
        self.log_artifacts(artifacts)
        self.end()
