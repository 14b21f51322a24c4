"""Faults of the distributed parts, on the real services of tests/scaleout: PostgreSQL restarted under the
MLflow server in the middle of a registration, a Dask worker killed in the middle of a sweep, the Dask
scheduler gone. Slow: ``pytest -m slow tests/scaleout``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from reliability.helpers import DVC, NAR, make_repo, one_line_error, sh, write_pretrained

from .conftest import TrackingStack, service_env, start_dask
from .services import DaskService, Services, free_port

pytestmark = pytest.mark.slow

# the steps of a registration that write to the registry, in order (nar.registry._register / _finish)
REGISTRATION_STEPS = (
    "create_model_version",  # the version row, tagged pending
    "update_model_version",  # its model card
    "set_registered_model_alias",  # candidate (and champion)
    "set_model_version_tag",  # the gate's reason, then ready: the last write
)


class RestartBefore:
    """Stops PostgreSQL just before the first ``MlflowClient.<step>`` call (so that call and the retries after it
    meet a database that is down, through the server) and starts it again ``down`` seconds later."""

    def __init__(self, tracking: TrackingStack, step: str, down: float) -> None:
        self.tracking, self.step, self.down = tracking, step, down
        self.fired = threading.Event()
        self.restarted = threading.Event()
        self.thread: threading.Thread | None = None

    def wrap(self, original: Callable) -> Callable:
        def call(client, *args, **kwargs):
            if not self.fired.is_set():
                self.fired.set()
                self.tracking.postgres.stop(mode="immediate")  # as a crash: no clean shutdown
                self.thread = threading.Thread(target=self._start_later, daemon=True)
                self.thread.start()
            return original(client, *args, **kwargs)

        return call

    def _start_later(self) -> None:
        time.sleep(self.down)
        self.tracking.postgres.start()
        self.restarted.set()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join(timeout=120)


@pytest.fixture
def postgres_back(tracking: TrackingStack, monkeypatch) -> Iterator[TrackingStack]:
    """The session's stack with the registry's default retry policy (4 attempts, 0.5 s doubling: 3.5 s of waits);
    its PostgreSQL is running again after the test, whatever happened in it."""
    monkeypatch.delenv("NAR_REGISTRY_RETRIES", raising=False)
    monkeypatch.delenv("NAR_REGISTRY_RETRY_DELAY", raising=False)
    yield tracking
    if not tracking.postgres.running():
        tracking.postgres.start()


def versions_in_postgres(tracking: TrackingStack, name: str) -> list[tuple[str, str]]:
    """(version, nar_status tag) of every version of ``name`` there is, read from MLflow's tables in PostgreSQL."""
    rows = tracking.postgres.psql(
        "SELECT v.version, coalesce(t.value, '-') FROM model_versions v LEFT JOIN model_version_tags t "
        f"ON t.name = v.name AND t.version = v.version AND t.key = 'nar_status' WHERE v.name = '{name}' "
        "AND v.current_stage <> 'Deleted_Internal' ORDER BY v.version",  # MLflow keeps deleted rows, marked so
        database="mlflow",
    )
    return [tuple(line.split("|")) for line in rows.split()]


@pytest.mark.fault(
    category="registry",
    fault="PostgreSQL (the mlflow server's backend store) crashes and restarts 2 s later just before each write of "
    "a registration: the version's creation, its model card, the alias moves, the final ready tag",
    expected="the retried registration completes: one version, ready, with its aliases and card, loading "
    "bit-identically; never a version left half-registered",
    lossless=True,
)
@pytest.mark.timeout(300)
def test_postgres_restarted_mid_registration(postgres_back: TrackingStack, tmp_path: Path, monkeypatch, caplog):
    from mlflow import MlflowClient  # here, not at the top: importing mlflow would slow the default pass's collection

    from nar import registry

    tracking = postgres_back
    ws = tmp_path / "ws"
    caplog.set_level("WARNING", logger="nar")
    client = MlflowClient(tracking_uri=tracking.uri, registry_uri=tracking.uri)
    for i, step in enumerate(REGISTRATION_STEPS):
        name = f"pg-restart-{i}"
        write_pretrained(ws, f"p{i}", seed=10 + i, ood=50.0 + i)
        fault = RestartBefore(tracking, step, down=2.0)
        with monkeypatch.context() as patch:
            patch.setattr(MlflowClient, step, fault.wrap(getattr(MlflowClient, step)))
            result = registry.register(f"models/pretrain/p{i}", name=name, workspace=ws, uri=tracking.uri, out=None)
        fault.join()
        assert fault.fired.is_set() and fault.restarted.is_set(), step
        retried = [r.getMessage() for r in caplog.records if f"MLflow {step} failed (attempt" in r.getMessage()]
        assert retried, f"{step}: the restart was not met (no retry logged)"
        caplog.clear()
        assert result.created and result.champion, (step, result)
        # one version, complete: ready, both aliases, the card, and the weights that were registered
        assert versions_in_postgres(tracking, name) == [(result.version, "ready")], step
        (info,) = registry.list_versions(name, tracking=tracking.uri)
        assert info.status == "ready" and info.aliases == ("candidate", "champion"), (step, info)
        assert "processor" in info.description.lower(), step
        loaded = registry.load_registered(f"models:/{name}@champion", tracking=tracking.uri)
        original = registry.read_pretrained(ws / f"models/pretrain/p{i}").processor
        assert registry.weights_bytes(loaded.processor) == registry.weights_bytes(original), step
        assert client.get_run(client.get_model_version(name, result.version).run_id).info.status == "FINISHED"


@pytest.mark.fault(
    category="registry",
    fault="PostgreSQL down for 8 s, longer than a registration's retries (3.5 s), from just before each write "
    "after the version's creation: its model card, the alias moves, the final ready tag",
    expected="one error naming the tracking URI; the rollback outlasts the restart: no version left (not even "
    "a pending one), aliases as they were; registering again works at once",
    lossless=True,
)
@pytest.mark.timeout(300)
def test_postgres_down_past_the_retries_mid_registration(
    postgres_back: TrackingStack, tmp_path: Path, monkeypatch, caplog
):
    from mlflow import MlflowClient

    from nar import registry
    from nar.registry import RegistryError

    tracking = postgres_back
    caplog.set_level("WARNING", logger="nar")
    ws = tmp_path / "ws"
    for i, step in enumerate(REGISTRATION_STEPS[1:]):
        name = f"pg-down-{i}"
        write_pretrained(ws, "before", seed=30 + i, ood=40.0)
        before = registry.register("models/pretrain/before", name=name, workspace=ws, uri=tracking.uri, out=None)
        write_pretrained(ws, f"p{i}", seed=40 + i, ood=90.0)  # a better score: would move the champion alias
        fault = RestartBefore(tracking, step, down=8.0)
        start = time.monotonic()
        with monkeypatch.context() as patch:
            patch.setattr(MlflowClient, step, fault.wrap(getattr(MlflowClient, step)))
            with pytest.raises(RegistryError) as err:
                registry.register(f"models/pretrain/p{i}", name=name, workspace=ws, uri=tracking.uri, out=None)
        fault.join()
        message = str(err.value)
        assert tracking.uri in message and "\n" not in message, (step, message)
        assert f"registration of {name} version {int(before.version) + 1} failed; rolled back" in caplog.text, step
        assert time.monotonic() - start < 90, step
        # nothing half-registered: only the earlier version, ready, with the aliases it had
        assert versions_in_postgres(tracking, name) == [(before.version, "ready")], step
        (info,) = registry.list_versions(name, tracking=tracking.uri)
        assert info.aliases == ("candidate", "champion"), (step, info)
        # the same weights again, with the database up: registered at once (no pending twin to wait for)
        start = time.monotonic()
        again = registry.register(f"models/pretrain/p{i}", name=name, workspace=ws, uri=tracking.uri, out=None)
        assert again.created and again.champion and time.monotonic() - start < 60, (step, again)
        assert [s for _, s in versions_in_postgres(tracking, name)] == ["ready", "ready"], step


# --------------------------------------------------------------------------- Dask


def sweep_command(scheduler: str, name: str, seeds: str = "1,2,3") -> list[str]:
    return [
        NAR, "sweep", "-S", f"+pretrain.runs.tiny.train.seed={seeds}", "--target", "pretrain@tiny",
        "--metric", "pretrain/*:ood_score", "--address", scheduler, "--name", name,
    ]  # fmt: skip


class Sweep:
    """``nar sweep`` running in the background, its output in a file."""

    def __init__(self, cmd: list[str], repo: Path, env: dict[str, str]) -> None:
        self.out = repo.parent / "sweep.out"
        self.err = repo.parent / "sweep.err"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=out, stderr=err, start_new_session=True)

    def wait(self, timeout: float) -> subprocess.CompletedProcess:
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:  # hung: stop it and everything it started, then fail
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return subprocess.CompletedProcess(
            self.proc.args, self.proc.returncode, self.out.read_text(errors="replace"), self.err.read_text()
        )


def running_experiment(worker: DaskService, timeout: float = 240) -> str:
    """The experiment ``worker`` is in the middle of (DVC has started reproducing it), once it is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = worker.service.tail(10**6)
        started = re.findall(r"Reproducing experiment '([\w-]+)'", log)
        if started:
            return started[-1]
        assert worker.service.running(), worker.service.tail()
        time.sleep(0.2)
    raise AssertionError(f"{worker.service.name} started no experiment in {timeout} s:\n{worker.service.tail()}")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "ws")
    return repo


@pytest.mark.parametrize(
    "allowed_failures",
    [
        pytest.param(
            None,
            marks=pytest.mark.fault(
                category="orchestration",
                fault="a dask worker process SIGKILLed (with its dvc and nar children) in the middle of a sweep's "
                "experiment, through a real `dask scheduler`",
                expected="Dask reruns it on the other worker: every experiment completes, the table's attempts "
                "column says 2 for the killed one and 1 for the others",
                lossless=True,
            ),
            id="retried",
        ),
        pytest.param(
            0,
            marks=pytest.mark.fault(
                category="orchestration",
                fault="a dask worker SIGKILLed mid-experiment, the scheduler allowing no retry "
                "(distributed.scheduler.allowed-failures 0)",
                expected="that experiment is 'lost' in the table with Dask's KilledWorker reason, the others "
                "complete, `nar sweep` exits 2 with one line naming it",
            ),
            id="failed",
        ),
    ],
)
@pytest.mark.timeout(400)
def test_dask_worker_killed_mid_sweep(workspace: Path, services: Services, allowed_failures: int | None):
    scheduler_env, seeds = {}, "1,2,3"
    if allowed_failures is not None:
        scheduler_env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = str(allowed_failures)
        # one experiment per worker: Dask hands a worker more tasks than it runs at once, and with no retry
        # allowed one waiting there would be lost with the killed worker too (the table says so: attempts 0)
        seeds = "1,2"
    scheduler, (w1, w2) = start_dask(services, 2, scheduler_env=scheduler_env)
    env = service_env(PREFECT_HOME=str(workspace.parent / "prefect"))
    sweep = Sweep(sweep_command(scheduler.address, "kill", seeds), workspace, env)
    killed = running_experiment(w1)
    w1.service.kill()  # the worker and its experiment's dvc / nar processes, at once
    done = sweep.wait(timeout=300)
    table = pd.read_csv(workspace / "sweeps/kill.csv")
    assert list(table["experiment"]) == [f"kill-00{i}" for i in range(1, len(seeds.split(",")) + 1)], done.stderr
    rows = table.set_index("experiment")
    others = [e for e in rows.index if e != killed]
    assert (rows.loc[others, "status"] == "completed").all() and (rows.loc[others, "attempts"] == 1).all(), rows
    assert rows.loc[others, "pretrain/tiny:ood_score"].between(0, 100).all(), rows
    if allowed_failures is None:
        assert done.returncode == 0, done.stderr[-4000:]
        assert rows.loc[killed, "status"] == "completed" and rows.loc[killed, "attempts"] == 2, rows
        assert f"experiment {killed}: start 2" in w2.service.tail(10**6)  # the rerun says why it runs again
        listed = sh([DVC, "exp", "ls"], workspace).stdout
        assert all(e in listed for e in rows.index), listed
    else:
        message = one_line_error(done, "sweep")
        assert f"{killed} (lost)" in message and "1 of 2 experiments did not complete" in message, message
        assert rows.loc[killed, "status"] == "lost" and rows.loc[killed, "attempts"] == 1, rows
        assert "KilledWorker" in rows.loc[killed, "error"], rows.loc[killed, "error"]
    assert "Traceback" not in done.stdout + done.stderr, (done.stdout + done.stderr)[-4000:]


@pytest.mark.fault(
    category="orchestration",
    fault="`nar sweep --address` where no Dask scheduler listens, and the scheduler SIGKILLed in the middle of a "
    "sweep (its workers still running)",
    expected="one `nar sweep: error:` line naming the address in seconds; mid-sweep: no hang, the table written "
    "with the unfinished experiments 'lost', then one line naming them",
    inputs=2,
)
@pytest.mark.timeout(400)
def test_dask_scheduler_gone(workspace: Path, services: Services):
    env = service_env(PREFECT_HOME=str(workspace.parent / "prefect"))
    # nothing there
    nowhere = f"tcp://127.0.0.1:{free_port()}"
    start = time.monotonic()
    done = subprocess.run(sweep_command(nowhere, "none"), cwd=workspace, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    message = one_line_error(done, "sweep")
    assert f"no Dask scheduler answers at {nowhere}" in message, message
    assert time.monotonic() - start < 60
    assert not (workspace / "sweeps/none.csv").exists()

    # gone in the middle
    scheduler, (w1, _) = start_dask(services, 2)
    sweep = Sweep(sweep_command(scheduler.address, "gone"), workspace, env)
    running_experiment(w1)
    scheduler.service.kill()
    start = time.monotonic()
    done = sweep.wait(timeout=180)
    assert time.monotonic() - start < 120, "the sweep hung after its scheduler went away"
    message = one_line_error(done, "sweep")
    assert "experiments did not complete" in message and "(lost)" in message, message
    assert "Traceback" not in done.stdout + done.stderr, (done.stdout + done.stderr)[-4000:]
    table = pd.read_csv(workspace / "sweeps/gone.csv")
    assert list(table["experiment"]) == ["gone-001", "gone-002", "gone-003"]
    assert (table["status"] == "lost").any(), table.to_string()
    assert table.loc[table["status"] == "lost", "error"].str.contains("scheduler or the worker").all()
