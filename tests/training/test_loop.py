"""The training loop: it learns, resumes exactly, stops on NaN, keeps its checkpoints honest."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from random_batches import OnlineBatches, fixed_batches

from nar.models import ModelConfig, ProcessorConfig
from nar.training import TrainConfig, TrainingDiverged, load_checkpoint, load_model, train
from nar.training.checkpoint import capture_rng, restore_rng

ALGO = "bellman_ford"
MODEL = ModelConfig(processor=ProcessorConfig(kind="triplet_gmpnn", hidden=16))


def small_data(seed=0):
    return OnlineBatches(sizes=(4, 5), batch_size=4, seed=seed)


def val_data():
    return {ALGO: fixed_batches(ALGO, 8, 5, batch_size=8, seed=1)}


def config(**kw) -> TrainConfig:
    base = dict(algorithms=(ALGO,), steps=6, eval_every=3, checkpoint_every=2, learning_rate=3e-3, progress=False)
    base.update(kw)
    return TrainConfig(**base)


def test_loss_falls_when_overfitting_one_batch():
    batch = small_data()(ALGO, 0)
    losses = []
    result = train(
        MODEL,
        config(steps=40, eval_every=40, learning_rate=1e-2, lr_schedule="cosine"),
        lambda algo, step: batch,
        {ALGO: [batch]},
        on_log=losses.append,
    )
    first = result.history[0]["train_loss"]
    from nar.training.losses import total_loss

    model = result.model.eval()
    with torch.no_grad():
        final, _ = total_loss(model.specs[ALGO], model(batch, 0.0), batch)
    assert float(final) < 0.5 * first
    assert result.best_val[ALGO]["score"] > 0.5


def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.fault(
    category="interrupt",
    fault="training stopped mid-run, then resumed (and resumed with a different config)",
    expected="same final weights as an uninterrupted run; other config refused",
    lossless=True,
)
def test_resume_after_an_interruption_ends_with_the_same_weights(tmp_path):
    test = {ALGO: {"5": fixed_batches(ALGO, 4, 5, seed=2)}}
    whole = train(MODEL, config(), small_data(), val_data(), test, tmp_path / "whole")
    part = train(MODEL, config(), small_data(), val_data(), test, tmp_path / "split", stop_after=5)
    assert part.steps == 5 and not part.test
    assert load_checkpoint(tmp_path / "split" / "last.pt")["step"] == 4  # the "kill" loses step 5
    resumed = train(MODEL, config(), small_data(), val_data(), test, tmp_path / "split")
    assert resumed.resumed_from == 4 and resumed.steps == 6
    a, b = _params(whole.model), _params(resumed.model)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = [{k: v for k, v in r.items() if k != "elapsed_s"} for r in resumed.history]
    assert strip == [{k: v for k, v in r.items() if k != "elapsed_s"} for r in whole.history]
    assert resumed.test == whole.test and resumed.best_step == whole.best_step
    last = load_checkpoint(tmp_path / "split" / "last.pt")
    assert all(torch.equal(last["model"][k], load_checkpoint(tmp_path / "whole" / "last.pt")["model"][k]) for k in a)


@pytest.mark.fault(
    category="security", fault="checkpoint loading", expected="weights_only load of plain tensors and config", inputs=0
)
def test_checkpoints_carry_the_resolved_config_and_load_without_pickle(tmp_path):
    result = train(MODEL, config(), small_data(), val_data(), None, tmp_path, extra_config={"data": {"seed": 0}})
    best = load_checkpoint(tmp_path / "best.pt")  # weights_only=True inside
    assert best["config"]["model"]["processor"]["kind"] == "triplet_gmpnn"
    assert best["config"]["train"]["steps"] == 6 and best["config"]["data"] == {"seed": 0}
    assert best["step"] == result.best_step
    last = load_checkpoint(tmp_path / "last.pt")
    assert {"model", "optimizer", "scheduler", "rng", "step", "history"} <= set(last)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    model = load_model(tmp_path / "best.pt")
    assert torch.equal(next(iter(model.state_dict().values())), next(iter(best["model"].values())))
    # a different configuration refuses to resume from this directory
    with pytest.raises(Exception, match="different configuration"):
        train(MODEL, config(learning_rate=1e-4), small_data(), val_data(), None, tmp_path)


@pytest.mark.fault(
    category="numeric",
    fault="NaN inputs at step 5 make the loss NaN",
    expected="TrainingDiverged naming step, last good checkpoint kept",
    lossless=True,
)
def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_checkpoint(tmp_path):
    data = small_data()

    def poisoned(algo, step):
        batch = data(algo, step)
        if step == 4:
            batch.inputs["A"][:] = float("nan")
        return batch

    with pytest.raises(TrainingDiverged, match=r"loss is nan at step 5.*last good checkpoint.*step 4"):
        train(MODEL, config(), poisoned, val_data(), None, tmp_path)
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["step"] == 4
    assert all(torch.isfinite(v).all() for v in last["model"].values())


def test_several_algorithms_share_one_processor():
    result = train(
        MODEL,
        config(algorithms=("bellman_ford", "bfs"), steps=2, eval_every=2),
        small_data(),
        {a: fixed_batches(a, 4, 5, seed=1) for a in ("bellman_ford", "bfs")},
    )
    assert set(result.best_val) == {"bellman_ford", "bfs"}
    assert set(result.model.encoders) == {"bellman_ford", "bfs"}


def test_seeds_make_runs_repeatable():
    a = train(MODEL, config(steps=3, eval_every=3), small_data(), val_data())
    b = train(MODEL, config(steps=3, eval_every=3), small_data(), val_data())
    assert all(torch.equal(x, y) for x, y in zip(_params(a.model).values(), _params(b.model).values(), strict=True))


def test_rng_state_round_trips():
    state = capture_rng()
    x = (torch.rand(3), __import__("numpy").random.rand(3))
    restore_rng(state)
    y = (torch.rand(3), __import__("numpy").random.rand(3))
    assert torch.equal(x[0], y[0]) and (x[1] == y[1]).all()


def test_cosine_schedule_decays_to_the_floor():
    result = train(
        MODEL, config(steps=4, eval_every=2, lr_schedule="cosine", lr_min_ratio=0.1), small_data(), val_data()
    )
    assert math.isclose(result.history[-1]["lr"], 3e-3 * 0.1, rel_tol=1e-6)


def test_threads_sets_torch_threads_and_does_not_block_resuming(tmp_path):
    before = torch.get_num_threads()
    try:
        one = config(steps=2, eval_every=2, checkpoint_every=1, threads=1)
        train(MODEL, one, small_data(), val_data(), None, tmp_path, stop_after=1)
        assert torch.get_num_threads() == 1
        # the thread count is how a run is executed, not what it learns: resuming with another is allowed
        default = config(steps=2, eval_every=2, checkpoint_every=1)
        result = train(MODEL, default, small_data(), val_data(), None, tmp_path)
        assert result.resumed_from == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="threads"):
        config(threads=-1)


@pytest.mark.slow
@pytest.mark.fault(
    category="interrupt",
    fault="SIGKILL of a training process mid-run, then restart",
    expected="resumes from last.pt; bit-identical final weights",
    lossless=True,
)
def test_sigkill_and_restart_ends_like_an_uninterrupted_run(tmp_path):
    """The real thing: SIGKILL a training process mid-run, start it again, compare weights."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from nar.models import ModelConfig, ProcessorConfig
        from nar.training import TrainConfig, train
        from random_batches import OnlineBatches, fixed_batches
        slow = sys.argv[2] == "slow"
        data = OnlineBatches(sizes=(4, 5), batch_size=4, seed=0)
        def batches(algo, step):
            if slow:
                time.sleep(0.05)
            return data(algo, step)
        cfg = TrainConfig(algorithms=("{ALGO}",), steps=60, eval_every=20, checkpoint_every=5, progress=False)
        model = ModelConfig(processor=ProcessorConfig(kind="mpnn", hidden=16))
        train(model, cfg, batches, {{"{ALGO}": fixed_batches("{ALGO}", 8, 5, seed=1)}}, None, sys.argv[1])
        """
    )
    path = tmp_path / "run.py"
    path.write_text(script)
    tests = Path(__file__).resolve().parents[1]  # the script imports random_batches from tests/
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests.parent), str(tests)])}
    subprocess.run([sys.executable, str(path), str(tmp_path / "whole"), "fast"], check=True, env=env)
    proc = subprocess.Popen([sys.executable, str(path), str(tmp_path / "killed"), "slow"], env=env)
    last = tmp_path / "killed" / "last.pt"
    import time

    deadline = time.time() + 120
    while time.time() < deadline and not (last.exists() and load_checkpoint(last)["step"] >= 25):
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert load_checkpoint(last)["step"] < 60
    subprocess.run([sys.executable, str(path), str(tmp_path / "killed"), "fast"], check=True, env=env)
    a = load_checkpoint(tmp_path / "whole" / "last.pt")
    b = load_checkpoint(last)
    assert a["step"] == b["step"] == 60
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["best_score"] == b["best_score"]
