"""Numerical faults: an infinite loss, a learning rate that blows training up at once, one that makes the loss
explode without overflowing. Training must stop with a message, keep the last good checkpoint, and the stage
must not record a result."""

from __future__ import annotations

import json
import sqlite3

import pytest
import torch

from .helpers import TINY, files, nar, one_line_error, tiny, write_params

ALGO = "bellman_ford"


def _setup():
    from random_batches import OnlineBatches, fixed_batches

    from nar.models import ModelConfig, ProcessorConfig
    from nar.training import TrainConfig

    model = ModelConfig(processor=ProcessorConfig(kind="mpnn", hidden=16))

    def config(**kw):
        base = dict(algorithms=(ALGO,), steps=8, eval_every=4, checkpoint_every=2, learning_rate=3e-3, progress=False)
        return TrainConfig(**{**base, **kw})

    return model, config, OnlineBatches(sizes=(4, 5), batch_size=4, seed=0), {ALGO: fixed_batches(ALGO, 8, 5, seed=1)}


@pytest.mark.fault(
    category="numeric",
    fault="an infinite input value at step 5 makes the loss non-finite",
    expected="TrainingDiverged naming the step and loss terms; last.pt stays the last good (finite) step",
    lossless=True,
)
def test_inf_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    from nar.training import TrainingDiverged, load_checkpoint, train

    model, config, data, val = _setup()

    def poisoned(algo, step):
        batch = data(algo, step)
        if step == 5:
            batch.inputs["A"][:] = float("inf")
        return batch

    with pytest.raises(TrainingDiverged, match=r"loss is (inf|nan) at step 6.*last good checkpoint"):
        train(model, config(), poisoned, val, None, tmp_path)
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["step"] == 4
    assert all(torch.isfinite(v).all() for v in last["model"].values())


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("numeric")
    write_params(root, TINY)
    proc = nar(["generate", "--algorithm", ALGO, "--no-progress"], root)
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.mark.fault(
    category="numeric",
    fault="pretrain with learning_rate 1000 (the loss overflows to NaN within a few steps)",
    expected="the pretrain stage exits 2 with 'training stopped: the loss is nan'; no model or metrics written; "
    "the MLflow run is marked FAILED with the reason and holds no score",
    lossless=True,
)
def test_diverging_learning_rate_fails_the_stage_and_records_no_result(generated):
    params = tiny(**{"pretrain.runs.tiny.train.learning_rate": 1000.0, "pretrain.runs.tiny.train.steps": 12})
    write_params(generated, params)
    before = set(files(generated))
    proc = nar(["pretrain", "--run", "tiny", "--no-progress"], generated)
    message = one_line_error(proc, "pretrain")
    assert "training stopped" in message and "is nan" in message, message
    assert not (generated / "models").exists() and not (generated / "metrics").exists()
    new = {f for f in set(files(generated)) - before if not f.startswith(("mlflow.db", "mlruns/", "checkpoints/"))}
    assert not new, new
    with sqlite3.connect(generated / "mlflow.db") as db:
        statuses = [s for (s,) in db.execute("select status from runs")]
        metrics = {k for (k,) in db.execute("select key from metrics")}
        failure = [v for (v,) in db.execute("select value from tags where key = 'failure'")]
    # a failed run and no score: nothing a reader could take for a result
    assert statuses == ["FAILED"], statuses
    assert len(failure) == 1 and "training stopped" in failure[0], failure
    assert "ood_score" not in metrics and not any(k.startswith("test.") for k in metrics), metrics


@pytest.mark.fault(
    category="numeric",
    fault="learning_rate 10: the training loss explodes to ~1e18 but stays finite",
    expected="reported as diverged (TrainingDiverged), not recorded as a finished run",
)
def test_exploding_but_finite_loss_is_reported(tmp_path):
    from nar.training import TrainingDiverged, train

    model, config, data, val = _setup()
    with pytest.raises(TrainingDiverged, match="diverging"):
        result = train(model, config(learning_rate=10.0, steps=10, eval_every=5), data, val, None, tmp_path)
        print(json.dumps(result.history))
    assert not (tmp_path / "best.pt").exists()  # nothing that reads as a result
