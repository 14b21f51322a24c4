"""The transfer and evaluate stages end to end on tiny data (files, MLflow, CLI, config errors)."""

import json
import shutil

import pytest

from nar.config import ConfigError
from nar.errors import NarError
from nar.transfer.config import EvaluateParams, parse_transfer_params
from nar.transfer.evaluate import run_evaluate
from nar.transfer.sweep import run_transfer

FAST_TASK = {
    "width": 8,
    "batch_size": 4,
    "max_steps": 2,
    "eval_every": 1,
    "patience": 2,
    "val_examples": 4,
    "precision": "float32",  # bf16 autocast only pays off on real batch sizes
}


def tiny_params(natural_root, processor_dir, **kw):
    data = {
        "processor": str(processor_dir),
        "data": str(natural_root),
        "sizes": [8, 24],
        "seeds": [0, 1],
        "workers": 1,
        "eval_batch_size": 4,
        "picture_size": 8,
        "picture_examples": 2,
        "tasks": {"digit_grid": FAST_TASK, "road": FAST_TASK},
        **kw,
    }
    return parse_transfer_params(data)


@pytest.fixture(scope="module")
def swept(natural_root, processor_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("stage")
    metrics = {}
    for task, sizes in (("digit_grid", [8]), ("road", [8, 24])):  # one size suffices for the digits
        params = tiny_params(natural_root, processor_dir, sizes=sizes)
        metrics[task] = run_transfer(
            task,
            params,
            models_root=out / "models",
            metrics_root=out / "metrics",
            checkpoints_root=out / "checkpoints",
            track=False,
        )
    return out, metrics


def evaluate_swept(swept, natural_root, tmp_path, params):
    """The evaluate stage on the module's tiny sweep, untracked, every output it writes under ``tmp_path``."""
    out, _ = swept
    return run_evaluate(
        params,
        metrics_root=out / "metrics",
        models_root=out / "models",
        data_root=natural_root,
        plots_root=tmp_path / "plots",
        out_metrics=tmp_path / "evaluate.json",
        track=False,
    )


def test_transfer_writes_every_run_and_split(swept, processor_dir):
    out, metrics = swept
    m = json.loads((out / "metrics" / "road.json").read_text())
    assert m == json.loads(json.dumps(metrics["road"]))
    sha = json.loads((processor_dir / "processor.json").read_text())["weights_sha256"]
    assert m["processor"]["sha256"] == sha
    for variant in ("nar_frozen", "nar_costs", "nar_finetune", "e2e", "bottleneck", "heuristic", "oracle", "ceiling"):
        for n in ("n8", "n24"):
            for s in ("s0", "s1"):
                cell = m["results"][variant][n][s]
                assert set(cell) == {"val", "test", "ood"}
                assert {"pointer_acc", "pointer_acc_tie", "path_match", "regret", "invalid"} <= set(cell["test"])
                if variant not in ("heuristic", "oracle", "ceiling"):
                    assert m["curves"][variant][n][s][-1]["step"] == 2
    for n in ("n8", "n24"):
        for s in ("s0", "s1"):
            for variant in ("nar_frozen", "nar_costs"):  # nar_costs: the processor inside the whole network
                run = m["runs"][variant][n][s]
                assert run["processor_sha256_before"] == run["processor_sha256_after"] == sha
    index = json.loads((out / "models" / "road" / "index.json").read_text())
    files = sorted(x["file"] for x in index["models"])
    assert len(files) == 10 and all("-s0." in f for f in files)  # 5 trained variants x 2 sizes, first seed only
    assert all((out / "models" / "road" / f).is_file() for f in files)
    preds = json.loads((out / "models" / "road" / "predictions.json").read_text())
    assert set(preds["variants"]) == {
        "nar_frozen",
        "nar_costs",
        "nar_finetune",
        "e2e",
        "bottleneck",
        "heuristic",
        "oracle",
        "ceiling",
    }
    # scored once: the same numbers in every size x seed cell
    for untrained in ("heuristic", "ceiling"):
        cells = m["results"][untrained]
        assert cells["n8"]["s0"] == cells["n24"]["s1"] and "curves" not in cells
    assert len(preds["variants"]["e2e"]["test"]) == 2


def test_evaluate_writes_tables_plots_pictures_and_report(swept, natural_root, tmp_path):
    params = EvaluateParams(
        tasks=("digit_grid", "road"), report=str(tmp_path / "reports" / "blueprint.md"), notes=str(tmp_path / "none.md")
    )
    summary = evaluate_swept(swept, natural_root, tmp_path, params)
    assert set(summary) == {"digit_grid", "road"}
    for task in ("digit_grid", "road"):
        for kind in ("scores", "curves", "tables"):
            assert (tmp_path / "plots" / kind / f"{task}.csv").is_file()
        for name in ("scores", "curves", "test_example", "ood_example"):
            png = tmp_path / "plots" / "png" / f"{task}_{name}.png"
            assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
    header = (tmp_path / "plots" / "scores" / "road.csv").read_text().splitlines()[0]
    assert header.startswith("size,") and "nar_frozen_test" in header and "oracle_ood" in header
    report = (tmp_path / "reports" / "blueprint.md").read_text()
    assert "## Verdict" in report and "## road" in report and "../plots/png/road_scores.png" in report
    assert "- **road** processor ceiling (the whole pretrained network on the hidden true costs" in report
    agg = json.loads((tmp_path / "evaluate.json").read_text())
    assert agg["road"]["aggregate"]["test"]["oracle"]["n8"]["pointer_acc"]["mean"] == 1.0


def test_evaluate_outputs_follow_the_task_list(swept, natural_root, tmp_path):
    """dvc.yaml names folders, not tasks: the files inside are exactly the evaluated tasks' (a task dropped
    from evaluate.tasks leaves no stale CSV for `dvc plots show`)."""
    notes = str(tmp_path / "none.md")
    for tasks in (("digit_grid", "road"), ("road",)):
        params = EvaluateParams(tasks=tasks, report=str(tmp_path / "blueprint.md"), notes=notes)
        assert set(evaluate_swept(swept, natural_root, tmp_path, params)) == set(tasks)
        for kind in ("scores", "curves", "tables"):
            assert sorted(p.name for p in (tmp_path / "plots" / kind).iterdir()) == [f"{t}.csv" for t in sorted(tasks)]
        assert sorted(p.name for p in (tmp_path / "evaluate").iterdir()) == [f"{t}.json" for t in sorted(tasks)]


def test_tracked_runs_land_in_mlflow(natural_root, processor_dir, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    params = tiny_params(
        natural_root, processor_dir, variants=["nar_frozen", "oracle"], sizes=[8], seeds=[0], picture_size=8
    )
    run_transfer("road", params, models_root=tmp_path / "m", metrics_root=tmp_path / "x", progress=False)
    assert not (tmp_path / "checkpoints" / "transfer").exists()  # the resume store is removed once the outputs exist
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("nar-transfer")
    runs = client.search_runs([exp.experiment_id])
    parent = [r for r in runs if r.info.run_name == "transfer-road"]
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent[0].info.run_id]
    assert {r.data.params["variant"] for r in children} == {"nar_frozen", "oracle"}
    frozen = next(r for r in children if r.data.params["variant"] == "nar_frozen")
    assert frozen.data.tags["processor_sha256_before"] == frozen.data.tags["processor_sha256_after"]
    assert "test_pointer_acc" in frozen.data.metrics
    assert len(client.get_metric_history(frozen.info.run_id, "curve_val_pointer_acc")) == 2


@pytest.mark.fault(
    category="config", fault="transfer/evaluate sections: bad values", expected="ConfigError naming the key"
)
def test_config_errors_name_the_key(natural_root, processor_dir, tmp_path):
    with pytest.raises(ConfigError, match="transfer.variants\\[1\\]"):
        parse_transfer_params({"variants": ["e2e", "nope"]})
    with pytest.raises(ConfigError, match="transfer.tasks.road.max_steps"):
        parse_transfer_params({"tasks": {"road": {"max_steps": 0}}})
    with pytest.raises(ConfigError, match="transfer.picture_size"):
        parse_transfer_params({"sizes": [50, 100], "picture_size": 75})
    with pytest.raises(ConfigError, match="transfer.tasks.road.learning_rat"):
        parse_transfer_params({"tasks": {"road": {"learning_rat": 0.1}}})
    params = tiny_params(natural_root, processor_dir, sizes=[8, 1000], picture_size=8)
    with pytest.raises(NarError, match=r"transfer.sizes\[1\] = 1000"):
        run_transfer("road", params, models_root=tmp_path / "m", metrics_root=tmp_path / "x", track=False)


def test_cli_runs_both_stages(natural_root, processor_dir, tmp_path, monkeypatch):
    import yaml

    from nar.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump(
            {
                "transfer": {
                    "processor": str(processor_dir),
                    "data": str(natural_root),
                    "variants": ["nar_frozen", "bottleneck", "oracle"],
                    "sizes": [8],
                    "seeds": [0],
                    "workers": 1,
                    "picture_size": 8,
                    "tasks": {"road": FAST_TASK},
                },
                "evaluate": {"tasks": ["road"]},
            }
        )
    )
    assert main(["transfer", "--task", "road", "--no-mlflow", "--no-progress"]) == 0
    assert (tmp_path / "metrics" / "transfer" / "road.json").is_file()
    assert main(["evaluate", "--data", str(natural_root), "--no-mlflow"]) == 2  # data outside the workspace
    shutil.copytree(natural_root / "road", tmp_path / "data" / "road")
    assert main(["evaluate", "--data", "data", "--no-mlflow"]) == 0
    assert (tmp_path / "reports" / "blueprint.md").is_file()
    assert main(["transfer", "--task", "road", "--variant", "bogus"]) == 2


@pytest.mark.fault(
    category="interrupt",
    fault="transfer sweep interrupted after some runs",
    expected="the next sweep reuses the finished runs and gives the same results",
    lossless=True,
)
def test_an_interrupted_sweep_resumes_from_its_finished_runs(natural_root, processor_dir, tmp_path, monkeypatch):
    from nar.transfer import pool

    params = tiny_params(natural_root, processor_dir, variants=["nar_frozen", "e2e"], sizes=[8], seeds=[0, 1])
    kw = dict(models_root=tmp_path / "m", metrics_root=tmp_path / "x", checkpoints_root=tmp_path / "ck", track=False)
    reference = run_transfer(
        "road", params, **{**kw, "metrics_root": tmp_path / "ref", "models_root": tmp_path / "ref"}
    )

    calls = []
    original = pool._run_job

    def dies_on_the_third_run(spec, keep_state, pictures):
        calls.append(spec)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as a kill would, after two runs finished
        return original(spec, keep_state, pictures)

    monkeypatch.setattr(pool, "_run_job", dies_on_the_third_run)
    with pytest.raises(KeyboardInterrupt):
        run_transfer("road", params, **kw)
    assert not (tmp_path / "x" / "road.json").exists()  # no output that looks complete
    assert len(list((tmp_path / "ck" / "road").glob("*/*.json"))) == 2

    calls.clear()
    monkeypatch.setattr(pool, "_run_job", lambda *a: calls.append(a[0]) or original(*a))
    resumed = run_transfer("road", params, **kw)
    assert len(calls) == 2  # only the two runs that had not finished
    assert resumed["results"] == reference["results"]
    assert not (tmp_path / "ck" / "road").exists()
    (weights,) = (tmp_path / "m" / "road").glob("nar_frozen-n8-s0.safetensors")
    assert weights.stat().st_size > 0


def test_a_missing_split_stops_the_sweep_before_training(natural_root, processor_dir, tmp_path):
    import shutil

    root = tmp_path / "natural"
    shutil.copytree(natural_root / "road", root / "road", ignore=shutil.ignore_patterns("test"))
    params = tiny_params(root, processor_dir)
    with pytest.raises(NarError, match=r"missing split\(s\) \['test'\]"):
        run_transfer("road", params, models_root=tmp_path / "m", metrics_root=tmp_path / "x", track=False)
    assert not (tmp_path / "m").exists() and not (tmp_path / "x").exists()


def test_progress_says_what_runs_and_counts_the_oracle(natural_root, processor_dir, tmp_path, capsys):
    params = tiny_params(natural_root, processor_dir, variants=["e2e", "oracle"], sizes=[8], seeds=[0, 1])
    run_transfer("road", params, models_root=tmp_path / "m", metrics_root=tmp_path / "x", track=False)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("transfer road: 3 steps: 2 training runs = 1 variants (e2e) x 1 sizes (8) x 2 seeds")
    assert lines[0].endswith("scored once and reported in its 2 size x seed cells; 4 results in all")
    assert [line.split("]")[0] for line in lines if line.startswith("transfer road [")] == [
        "transfer road [1/3",
        "transfer road [2/3",
        "transfer road [3/3",
    ]
    assert "[3/3] oracle:" in lines[3] and "ETA" in lines[1]
    assert lines[-1].startswith("transfer road: 4 results (2 trained runs + 2 oracle cells) in ")
    assert not any("\r" in line for line in lines)


def test_ceiling_needs_the_whole_network(natural_root, processor_only_dir, tmp_path):
    """A processor stored without its encoders and decoders cannot run the ceiling: one line, before any training."""
    params = tiny_params(natural_root, processor_only_dir, variants=["e2e", "ceiling"], sizes=[8], seeds=[0])
    with pytest.raises(NarError, match="transfer.variants lists 'ceiling'.*holds the processor only"):
        run_transfer(
            "road",
            params,
            models_root=tmp_path / "m",
            metrics_root=tmp_path / "x",
            checkpoints_root=tmp_path / "c",
            track=False,
        )
    assert not any((tmp_path / d).exists() for d in ("m", "x", "c"))


def test_evaluate_reports_every_swept_variant_nar_costs_included(swept, natural_root, tmp_path):
    """The evaluate stage on the tiny sweep (every registered variant): nar_costs gets its rows, curve and colour."""
    params = EvaluateParams(
        tasks=("digit_grid", "road"), report=str(tmp_path / "report.md"), notes=str(tmp_path / "none.md")
    )
    evaluate_swept(swept, natural_root, tmp_path, params)
    report = (tmp_path / "report.md").read_text()
    assert "nar_costs" in report and "nar_frozen" in report
    scores = (tmp_path / "plots" / "scores" / "road.csv").read_text()
    assert "nar_costs" in scores
    assert (tmp_path / "plots" / "png" / "road_scores.png").is_file()


def test_untrained_variants_are_scored_in_the_pool_as_in_the_parent(natural_root, processor_dir, tmp_path, monkeypatch):
    """heuristic, oracle and ceiling run as the pool's last jobs (beside the last training runs): the same
    numbers as scoring them in this process, in every size x seed cell, and never kept for a resume."""
    from nar.transfer import pool
    from nar.transfer.record import load_processor_record
    from nar.transfer.train import RunSpec, TaskData, run_untrained

    untrained = ["heuristic", "oracle", "ceiling"]
    params = tiny_params(natural_root, processor_dir, variants=["e2e", *untrained], sizes=[8], seeds=[0, 1])
    calls = []
    original = pool._run_job
    monkeypatch.setattr(pool, "_run_job", lambda *a: calls.append(a[0].variant) or original(*a))
    m = run_transfer(
        "road",
        params,
        models_root=tmp_path / "m",
        metrics_root=tmp_path / "x",
        checkpoints_root=tmp_path / "c",
        track=False,
    )
    assert calls == ["e2e", "e2e", *untrained]  # after the training runs, once each
    data = TaskData.load(str(natural_root), "road", params.task("road"))
    record = load_processor_record(params.processor, params.allow_unverified)
    for variant in untrained:
        here = run_untrained(RunSpec("road", variant, 0, 0), data, record).metrics
        assert (
            m["results"][variant]["n8"]["s0"]
            == m["results"][variant]["n8"]["s1"]
            == json.loads(json.dumps(here, default=int))
        )
