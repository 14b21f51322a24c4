"""The DVC pipeline in a real, temporary git + DVC repository, on a tiny profile."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

TINY = yaml.safe_load((ROOT / "tests/tiny_params.yaml").read_text())
STAGES = [
    "generate@bfs",
    "generate@bellman_ford",
    "natural@digit_grid",
    "natural@road",
    "pretrain@tiny",
    "register",
    "transfer@digit_grid",
    "transfer@road",
    "evaluate",
]


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _leaves(tree):
    """The dicts at the bottom of a nested {variant: {size: {seed: run}}} mapping."""
    if isinstance(tree, dict) and any(isinstance(v, dict) for v in tree.values()):
        for v in tree.values():
            yield from _leaves(v)
    elif isinstance(tree, dict):
        yield tree


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pipeline")
    shutil.copy(ROOT / "dvc.yaml", path)
    (path / "reports").mkdir()
    shutil.copy(ROOT / "reports/transfer_notes.md", path / "reports")  # a dep of evaluate
    # the stage deps point at the package sources; link them so hashes are real
    (path / "nar").symlink_to(ROOT / "nar", target_is_directory=True)
    (path / "params.yaml").write_text(yaml.safe_dump(TINY))
    run(["git", "init", "-q"], path)
    run(["dvc", "init", "-q"], path)
    return path


def test_repro_runs_every_stage_then_reruns_nothing(repo):
    out = run(["dvc", "repro"], repo).stdout
    for stage in STAGES:
        assert f"Running stage '{stage}'" in out, out
    for algo in ("bfs", "bellman_ford"):
        for split in ("train", "val", "test"):
            assert (repo / "data/synthetic" / algo / split / "manifest.json").is_file()
    headline = json.loads((repo / "metrics/pretrain/tiny.json").read_text())
    assert set(headline) == {"ood_score", "val_score", "scale_score"}
    metrics = json.loads((repo / "metrics/pretrain/details/tiny.json").read_text())
    assert set(metrics["algorithms"]["bellman_ford"]["test"]) == {"16"}
    registered = json.loads((repo / "models/registered.json").read_text())
    assert registered["name"] == "nar-processor" and str(registered["version"]) == "1"
    assert (repo / "mlflow.db").is_file()  # the default local store, inside the workspace
    for task in ("digit_grid", "road"):
        sweep = json.loads((repo / f"metrics/transfer/{task}.json").read_text())
        frozen = [r for r in _leaves(sweep["runs"]) if r.get("variant") == "nar_frozen"]
        assert len(frozen) == 4  # 2 sizes x 2 seeds, each with the processor unchanged by training
        assert all(r["processor_sha256_before"] == r["processor_sha256_after"] for r in frozen)
    report = (repo / "reports/blueprint.md").read_text()
    assert "digit_grid" in report and "road" in report
    assert set(json.loads((repo / "metrics/evaluate.json").read_text())) == {"digit_grid", "road"}
    again = run(["dvc", "repro"], repo).stdout
    assert "didn't change, skipping" in again
    assert "Running stage" not in again


def test_param_change_reruns_only_what_reads_it(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["generate"]["splits"]["test"]["count"] = 5
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    out = run(["dvc", "repro"], repo).stdout
    assert "Running stage 'generate@bfs'" in out and "Running stage 'generate@bellman_ford'" in out
    # the test split feeds pretraining, so pretrain reruns too; natural data does not depend on it
    assert "Running stage 'pretrain@tiny'" in out
    assert "Running stage 'natural@road'" not in out
    status = run(["dvc", "status"], repo).stdout
    assert "up to date" in status
