"""README "Beyond one machine", exercised for real on loopback: PostgreSQL as MLflow's backend store behind an
``mlflow server`` with an artifact directory, a ``dask scheduler`` with two ``dask worker`` processes, and a DVC
remote in a local directory. The tiny pipeline is reproduced and its processor registered through the server,
a 2x2 sweep runs as DVC experiments on the Dask workers, everything is pushed (git to a bare repository, data
and experiments to the DVC remote), and a second clone made from the pushes alone must find the registry, the
experiments, the MLflow runs and the DVC cache.

    apt-get install postgresql
    pip install -c constraints.txt -e '.[dev,distributed]'
    pytest -m slow tests/scaleout
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from reliability.helpers import DVC, NAR, make_repo, sh

from .conftest import TrackingStack, service_env, start_dask
from .services import Services

pytestmark = pytest.mark.slow

IDENTITY = ["-c", "user.name=nar-tests", "-c", "user.email=tests@nar.invalid"]
GRID = ["-S", "+pretrain.runs.tiny.train.seed=1,2", "-S", "pretrain.runs.tiny.model.processor.hidden=8,16"]


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    )
    return proc


def commit(repo: Path, message: str) -> None:
    sh(["git", "add", "-A"], repo)
    sh(["git", *IDENTITY, "commit", "-q", "-m", message], repo)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cached(repo: Path, md5: str) -> bool:
    """Whether DVC's cache in ``repo`` holds the object ``md5`` (a directory: its listing and every file in it)."""
    files = repo / ".dvc" / "cache" / "files" / "md5"
    path = files / md5[:2] / md5[2:]
    if not path.is_file():
        return False
    if md5.endswith(".dir"):
        return all((files / e["md5"][:2] / e["md5"][2:]).is_file() for e in json.loads(path.read_text()))
    return True


@pytest.mark.timeout(480)
def test_sweep_registry_and_dvc_remote_reach_a_second_clone(
    tmp_path: Path, tracking: TrackingStack, services: Services
):
    uri = tracking.uri
    scheduler, workers = start_dask(services, 2, MLFLOW_TRACKING_URI=uri)
    env = service_env(MLFLOW_TRACKING_URI=uri, PREFECT_HOME=str(tmp_path / "prefect"))

    # the workspace, its git remote (a bare repository) and its DVC remote (a local directory)
    repo = make_repo(tmp_path / "ws")
    origin = tmp_path / "origin.git"
    sh(["git", "init", "-q", "--bare", "-b", "main", str(origin)], tmp_path)
    sh(["git", "remote", "add", "origin", str(origin)], repo)
    sh([DVC, "remote", "add", "-d", "storage", str(tmp_path / "dvc-remote")], repo)
    commit(repo, "DVC remote")

    # the pipeline up to the registry, tracked by the server (PostgreSQL behind it)
    run([DVC, "repro", "register"], repo, env)
    registered = json.loads((repo / "models/registered.json").read_text())
    assert set(registered["aliases"]) == {"candidate", "champion"}
    commit(repo, "pipeline state")  # experiments start from HEAD

    # the 2x2 sweep through the Dask scheduler: every experiment on one of the two worker processes
    proc = run(
        [NAR, "sweep", *GRID, "--target", "pretrain@tiny", "--metric", "pretrain/*:ood_score",
         "--address", scheduler.address, "--name", "dist"],
        repo, env, timeout=360,
    )  # fmt: skip
    table = pd.read_csv(repo / "sweeps/dist.csv")
    assert list(table["experiment"]) == [f"dist-00{i}" for i in range(1, 5)], proc.stdout
    assert list(table["status"]) == ["completed"] * 4, table.to_string()
    axes = ["pretrain.runs.tiny.train.seed", "pretrain.runs.tiny.model.processor.hidden"]
    assert sorted(map(tuple, table[axes].values.tolist())) == [(1, 8), (1, 16), (2, 8), (2, 16)]
    assert table["pretrain/tiny:ood_score"].between(0, 100).all()
    ran_on = {w.service.name: w.service.tail(10**6) for w in workers}
    for name, log in ran_on.items():  # both workers took experiments: the work went through the scheduler
        assert "experiment dist-00" in log, f"{name} ran no experiment:\n{log[-2000:]}"
    assert "Connecting to an existing Dask cluster" in proc.stdout + proc.stderr
    sweep_scores = dict(zip(table["experiment"], table["pretrain/tiny:ood_score"], strict=True))

    # push: code and params to git, outputs and experiments (refs to git, their outputs to the DVC remote)
    run([DVC, "push", "--with-deps", "register"], repo, env)
    run([DVC, "exp", "push", "origin", "dist-001", "dist-002", "dist-003", "dist-004"], repo, env)
    sh(["git", "push", "-q", "origin", "HEAD:main"], repo)

    # a second clone, from the remotes only
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(origin), str(clone)], tmp_path)
    assert not (clone / "models/pretrain/tiny").exists()
    # what was reproduced: register and its upstream; --allow-missing: models/registered.json is `push: false`
    # (it describes a workspace's registry), so a plain pull checks out everything else and exits 1 on it
    run([DVC, "pull", "--allow-missing", "--with-deps", "register"], clone, env)
    assert not (clone / "models/registered.json").exists()
    run([DVC, "exp", "pull", "origin", "dist-001", "dist-002", "dist-003", "dist-004"], clone, env)
    # register reruns (only it: its upstream was pulled), against the shared server's registry that already holds
    # these weights: no new version, the existing one's record, byte for byte what the workspace wrote
    out = run([DVC, "repro", "register"], clone, env).stdout
    assert [line for line in out.splitlines() if line.startswith("Running stage")] == ["Running stage 'register':"], out
    assert "unchanged: models:/" in out, out
    assert (clone / "models/registered.json").read_bytes() == (repo / "models/registered.json").read_bytes()
    assert sh(["git", "status", "--porcelain"], clone).stdout == ""

    # the DVC cache: every output of dvc.lock is in the clone's workspace and cache, and in sync with the remote
    # (`status --cloud` leaves out push: false outputs)
    assert "up to date" in run([DVC, "status", "--with-deps", "register"], clone, env).stdout
    assert "in sync" in run([DVC, "status", "--cloud", "--with-deps", "register"], clone, env).stdout
    weights = clone / "models/pretrain/tiny/processor.safetensors"
    assert sha256(weights) == sha256(repo / "models/pretrain/tiny/processor.safetensors")

    # the experiments: listed with the sweep's metrics
    shown = json.loads(run([DVC, "exp", "show", "--json"], clone, env).stdout)
    metrics, revs = {}, {}
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            for rev in exp.get("revs") or []:
                data = rev.get("data") or {}
                for file, entry in (data.get("metrics") or {}).items():
                    if file.endswith("metrics/pretrain/tiny.json"):
                        metrics[rev.get("name")] = entry["data"]["ood_score"]
                        revs[rev.get("name")] = rev["rev"]
    assert metrics == pytest.approx(sweep_scores), shown
    # every experiment's outputs (as its dvc.lock in git names them) are in the clone's DVC cache
    for name, rev in revs.items():
        lock = yaml.safe_load(sh(["git", "show", f"{rev}:dvc.lock"], clone).stdout)
        outs = lock["stages"]["pretrain@tiny"]["outs"]
        model = next(o for o in outs if o["path"] == "models/pretrain/tiny")
        assert cached(clone, model["md5"]), f"{name}: {model} not in the clone's cache"

    # the registry, from the clone: the version recorded in registered.json with both aliases, ready, and its
    # processor (downloaded through the server from its artifact directory) is the clone's pulled weights
    cloned = json.loads((clone / "models/registered.json").read_text())
    assert cloned == registered
    listed = run([NAR, "registry", "list"], clone, env).stdout
    row = next(line.split() for line in listed.splitlines() if line.split()[:1] == [registered["version"]])
    assert row[1] == "candidate,champion" and row[2] == "ready", listed
    verified = run([NAR, "registry", "verify", "@champion"], clone, env).stdout
    assert verified.startswith("OK ") and f"sha256 {registered['sha256']}" in verified, verified
    assert sha256(weights) == registered["sha256"]

    # the MLflow runs: the workspace's pretraining and the four experiments', all finished, and the registration
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    pretrain = client.get_experiment_by_name("nar-pretrain")
    runs = client.search_runs([pretrain.experiment_id], max_results=100)
    combos = {(r.data.params.get("train.seed"), r.data.params.get("model.processor.hidden")) for r in runs}
    assert {("1", "8"), ("1", "16"), ("2", "8"), ("2", "16")} <= combos, combos
    assert all(r.info.status == "FINISHED" for r in runs), [(r.info.run_name, r.info.status) for r in runs]
    mv = client.get_model_version(registered["name"], registered["version"])
    assert client.get_run(mv.run_id).info.status == "FINISHED"

    # and all of it lives in PostgreSQL (the server's backend store), the model files in its artifact directory
    pg = tracking.postgres
    count = int(pg.psql("SELECT count(*) FROM runs WHERE status = 'FINISHED'", database="mlflow"))
    assert count >= len(runs) + 1
    aliases = pg.psql(
        f"SELECT alias FROM registered_model_aliases WHERE name = '{registered['name']}' "
        f"AND version = {int(registered['version'])} ORDER BY alias",
        database="mlflow",
    ).split()
    assert aliases == ["candidate", "champion"]
    stored = list(tracking.artifacts.rglob("processor.safetensors"))
    assert any(sha256(p) == registered["sha256"] for p in stored), stored
