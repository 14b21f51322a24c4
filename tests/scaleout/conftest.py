"""Fixtures of the "Beyond one machine" tests: real services on loopback, each stopped by its pid when the
test (or, for PostgreSQL and the MLflow server, the session) ends, also after a failure.

(The directory is not called ``distributed``: with its ``__init__.py`` it would be imported as a package of
that name and shadow dask's ``distributed`` for the whole test session.)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# tests/ has no __init__.py: its sibling package `reliability` (the tiny workspace, the nar/dvc commands) is
# importable once tests/ is on the path, as pytest's rootdir conftest already puts it
TESTS = str(Path(__file__).resolve().parents[1])
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

from reliability.helpers import env  # noqa: E402

from .services import MlflowServer, Postgres, Services, missing_postgres, wait_for_workers  # noqa: E402

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def service_env(**extra: str) -> dict[str, str]:
    """The environment of every process these tests start: the project's (venv first, no outside MLflow or
    Prefect server, no telemetry) with a Prefect home of its own (a temporary Prefect server that a flow or a
    Dask worker starts keeps its database there, not in ~/.prefect) and the longer Prefect start-up timeout
    that 2 cores need."""
    out = env(
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="90",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
    )
    out.update(extra)
    return out


@pytest.fixture(scope="session")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackingStack]:
    """PostgreSQL (its own cluster, database ``mlflow``, user ``mlflow``) and an ``mlflow server`` with it as the
    backend store and an artifact directory; shared by the session's tests, stopped by pid at its end."""
    reason = missing_postgres()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("tracking")
    services = Services(root, service_env())
    try:
        pg = services.postgres()
        server = services.mlflow_server(pg.uri, root / "artifacts")
        yield TrackingStack(pg, server, root / "artifacts", services)
    finally:
        services.stop_all()


@dataclass
class TrackingStack:
    postgres: Postgres
    server: MlflowServer
    artifacts: Path
    services: Services

    @property
    def uri(self) -> str:
        return self.server.uri


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    """Start processes with ``services.spawn`` / ``dask_scheduler`` / ``dask_worker``; all stopped at the end."""
    root = tmp_path / "services"
    root.mkdir()
    svc = Services(root, service_env())
    try:
        yield svc
    finally:
        svc.stop_all()


def start_dask(
    services: Services, workers: int = 2, scheduler_env: dict[str, str] | None = None, **worker_env: str
) -> tuple[str, list]:
    """A ``dask scheduler`` and ``workers`` single-threaded ``dask worker`` processes (w1, w2, ...); each worker
    with ``worker_env`` and a Prefect home of its own. Returns (scheduler address, worker services)."""
    scheduler = services.dask_scheduler(env=scheduler_env)
    started = []
    for i in range(1, workers + 1):
        name = f"w{i}"
        wenv = service_env(PREFECT_HOME=str(services.root / f"prefect-{name}"), **worker_env)
        started.append(services.dask_worker(scheduler.address, name, env=wenv))
    wait_for_workers(scheduler.address, [f"w{i}" for i in range(1, workers + 1)])
    return scheduler, started
