"""Fixtures: a real MLflow (SQLite in a temp dir, or a real ``mlflow server`` on loopback) and
pretrain outputs written in the pretrain stage's layout."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from nar.models.processors import ProcessorConfig, build_processor

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

ALGORITHMS = ("bfs", "dijkstra")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def closed_uri() -> str:
    """An http URI on a loopback port where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


@dataclass
class Workspace:
    """A workspace (cwd) with pretrain outputs, pointed at its own MLflow store."""

    root: Path
    uri: str

    def pretrain(
        self,
        name: str,
        *,
        seed: int = 0,
        ood: float = 90.0,
        kind: str = "mpnn",
        hidden: int = 16,
        scale: float | None = None,
        per_algorithm: bool = True,
    ) -> Path:
        """Write models/pretrain/<name>/ and metrics/pretrain/<name>.json as the pretrain stage does: test
        scores as fractions, ``ood_score`` in % and, unless ``per_algorithm`` is False (metrics written before
        it existed), each algorithm's ``ood_score`` in %; bfs scores ``ood`` + 1, dijkstra ``ood`` - 1."""
        torch.manual_seed(seed)
        processor = build_processor(ProcessorConfig(kind=kind, hidden=hidden))
        out = self.root / "models" / "pretrain" / name
        out.mkdir(parents=True, exist_ok=True)
        save_file(processor.state_dict(), str(out / "processor.safetensors"))
        meta = {
            "name": name,
            "processor": processor.config.to_dict(),
            "algorithms": list(ALGORITHMS),
            "spec_versions": {a: 1 for a in ALGORITHMS},
        }
        (out / "processor.json").write_text(json.dumps(meta))
        metrics = {
            "ood_score": ood,
            "algorithms": {
                a: {
                    "val": {"16": {"pi": 0.99}},
                    "test": {"16": {"pi": 0.99}, "64": {"pi": (ood + d) / 100}},
                    **({"ood_score": ood + d} if per_algorithm else {}),
                }
                for a, d in zip(ALGORITHMS, (1.0, -1.0), strict=True)
            },
        }
        if scale is not None:  # as nar.execute.suite_scores writes it
            metrics["scale"] = {"bellman_ford": {"256": {"grid": scale, "delaunay": scale}}, "score": scale}
        (self.root / "metrics" / "pretrain").mkdir(parents=True, exist_ok=True)
        (self.root / "metrics" / "pretrain" / f"{name}.json").write_text(json.dumps(metrics))
        return out


@pytest.fixture(scope="session")
def template_db(tmp_path_factory) -> Path:
    """An MLflow SQLite database with its tables created once (creating them costs ~4 s)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    uri = f"sqlite:///{path}"
    MlflowClient(tracking_uri=uri, registry_uri=uri).search_experiments()
    return path


@pytest.fixture
def ws(tmp_path, template_db, monkeypatch) -> Workspace:
    """cwd = a fresh workspace; MLFLOW_TRACKING_URI = a fresh SQLite store beside it; small retry budget."""
    db = tmp_path / "mlflow.db"
    shutil.copy(template_db, db)
    root = tmp_path / "ws"
    (root / "data" / "synthetic" / "bfs" / "test").mkdir(parents=True)
    (root / "data" / "synthetic" / "bfs" / "test" / "manifest.json").write_text('{"shards": []}')
    uri = f"sqlite:///{db}"
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("NAR_REGISTRY_RETRIES", "2")
    monkeypatch.setenv("NAR_REGISTRY_RETRY_DELAY", "0.05")
    return Workspace(root, uri)


def _stop(proc: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM the server's process group (it was started in its own session), SIGKILL after ``grace``."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory, template_db):
    """A real ``mlflow server`` on a free loopback port; yields its URI; stopped by its pid at the end."""
    root = tmp_path_factory.mktemp("server")
    db = root / "mlflow.db"
    shutil.copy(template_db, db)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    # no huey job runner (7 extra processes, for GenAI jobs the registry never uses): faster start and stop
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    log = open(root / "server.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server",
            "--host", "127.0.0.1",
            "--port", str(port),
            "--backend-store-uri", f"sqlite:///{db}",
            "--artifacts-destination", str(root / "artifacts"),
            "--workers", "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {(root / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server not ready in 90 s: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.3)
        yield uri
    finally:
        _stop(proc)
        log.close()


WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from nar import registry
    barrier, count, use_lock, *dirs = sys.argv[1:]
    Path(barrier, f"{time.time_ns()}").touch()  # imports done; start together
    while len(list(Path(barrier).iterdir())) < int(count):
        time.sleep(0.01)
    results = [registry.register(d, use_lock=use_lock == "1").to_dict() for d in dirs]
    print(json.dumps(results))
    """
)


def _run_workers(cwd: Path, jobs: list[list[str]], use_lock: bool = True) -> list[list[dict]]:
    """One process per job, started together (after their imports); each registers its dirs in order."""
    barrier = Path(tempfile.mkdtemp(dir=cwd.parent))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(barrier), str(len(jobs)), "1" if use_lock else "0", *job],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for job in jobs
    ]
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr[-3000:]
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    return outs


@pytest.fixture
def run_workers():
    """``run_workers(cwd, jobs, use_lock=True)``: concurrent registrations in separate processes."""
    return _run_workers
