"""The services of "Beyond one machine", started for real on loopback: PostgreSQL, an ``mlflow server`` on it,
a ``dask scheduler`` and ``dask worker`` processes. Every one is a separate process (its own session, so its
children go with it) that :meth:`Service.stop` ends by its pid; :class:`Services` remembers them all so a
fixture's finalizer can stop whatever is still running, also after a failed test.

PostgreSQL refuses to run as root: as root, ``initdb``/``pg_ctl``/``postgres`` run as the ``postgres`` user
(the Debian package's) through ``runuser``, in a directory outside pytest's root-only temp dirs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent
# Debian's postgresql package; /usr/local/bin may hold links to them
PG_DIRS = [Path("/usr/local/bin"), *sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_binary(name: str) -> str | None:
    """``initdb`` / ``pg_ctl`` / ``postgres`` from Debian's postgresql package, or None."""
    for d in PG_DIRS:
        if (d / name).is_file():
            return str(d / name)
    return shutil.which(name)


def missing_postgres() -> str | None:
    """Why PostgreSQL cannot be used here (a skip reason), or None."""
    if not all(pg_binary(n) for n in ("initdb", "pg_ctl")):
        return "PostgreSQL is not installed (apt-get install postgresql)"
    if os.geteuid() == 0 and not shutil.which("runuser"):
        return "running as root and no runuser to start PostgreSQL as the postgres user"
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return "no psycopg2 for MLflow's postgresql:// store: pip install -c constraints.txt -e '.[distributed]'"
    return None


def wait_until(check: Callable[[], bool], timeout: float, what: str, alive: Callable[[], str | None]) -> None:
    """Poll ``check`` until it is true; fail naming ``what`` on timeout, or at once when ``alive`` says why the
    process is gone."""
    deadline = time.monotonic() + timeout
    while True:
        dead = alive()
        if dead:
            raise RuntimeError(f"{what}: {dead}")
        try:
            if check():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not ready in {timeout:.0f} s")
        time.sleep(0.3)


@dataclass
class Service:
    """One started process (the leader of its own session) and its log file."""

    name: str
    proc: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def exited(self) -> str | None:
        """None while it runs, else why it is gone (exit code and its log's end)."""
        if self.running():
            return None
        return f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}"

    def kill(self) -> None:
        """SIGKILL to the whole process group: the process and everything it started die at once, as when the
        machine it runs on is lost."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM to its process group, SIGKILL after ``grace`` seconds; then its children that are left."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        # the leader may be gone and its group still there (a worker's dvc subprocess, uvicorn's workers)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


@dataclass
class Services:
    """Everything a test started, stopped in reverse order by :meth:`stop_all` (a fixture's finalizer)."""

    root: Path
    env: dict[str, str]
    started: list[Service] = field(default_factory=list)
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def spawn(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None):
        log = self.root / f"{name}.log"
        handle = open(log, "ab")  # noqa: SIM115 (the child holds it; closed here right after the fork)
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=env or self.env,
                cwd=str(cwd or self.root),
                start_new_session=True,  # its own process group: stopped together with what it starts
            )
        finally:
            handle.close()
        service = Service(name, proc, log)
        self.started.append(service)
        return service

    def stop_all(self) -> None:
        errors = []
        for service in reversed(self.started):
            try:
                service.stop()
            except Exception as exc:  # keep stopping the others
                errors.append(f"{service.name}: {exc}")
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception as exc:
                errors.append(str(exc))
        self.started.clear()
        self.cleanups.clear()
        if errors:
            raise RuntimeError("could not stop every service: " + "; ".join(errors))

    # ------------------------------------------------------------------ PostgreSQL

    def postgres(self, user: str = "mlflow", password: str = "mlflow-test-pw", database: str = "mlflow") -> Postgres:
        """initdb into a fresh directory, start it on a free loopback port (no other socket than TCP on
        127.0.0.1 and a Unix socket in its own directory), create ``user`` with ``password`` and ``database``."""
        pg = Postgres(self, user=user, password=password, database=database)
        pg.init()
        pg.start()
        pg.create_database()
        self.cleanups.append(pg.remove)
        return pg

    # ------------------------------------------------------------------ MLflow

    def mlflow_server(self, backend_uri: str, artifacts: Path, port: int | None = None) -> MlflowServer:
        port = port or free_port()
        env = {k: v for k, v in self.env.items() if not k.startswith("MLFLOW_TRACKING")}
        env["MLFLOW_DISABLE_TELEMETRY"] = "true"
        # no job runner (extra processes for GenAI jobs the registry never uses): faster start and stop
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        argv = [
            str(BIN / "mlflow"), "server",
            "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", backend_uri,
            "--artifacts-destination", str(artifacts),
            "--workers", "1",
        ]  # fmt: skip
        service = self.spawn("mlflow-server", argv, env=env)
        uri = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as resp:
                return resp.status == 200

        wait_until(healthy, 120, f"mlflow server on port {port}", service.exited)
        return MlflowServer(service, uri)

    # ------------------------------------------------------------------ Dask

    def dask_scheduler(self, port: int | None = None, env: dict[str, str] | None = None) -> DaskService:
        port = port or free_port()
        argv = [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]
        service = self.spawn(f"dask-scheduler-{port}", argv, env={**self.env, **(env or {})})
        address = f"tcp://127.0.0.1:{port}"
        wait_until(lambda: _listening(port), 60, f"dask scheduler on port {port}", service.exited)
        return DaskService(service, address)

    def dask_worker(self, scheduler: str, name: str, env: dict[str, str] | None = None) -> DaskService:
        """One single-threaded worker process (no nanny: the pid started is the worker, so killing it loses
        the worker for good instead of having a nanny start a new one)."""
        argv = [
            str(BIN / "dask"), "worker", scheduler,
            "--name", name, "--host", "127.0.0.1",
            "--nthreads", "1", "--nworkers", "1", "--no-nanny", "--no-dashboard",
            "--local-directory", str(self.root / f"dask-{name}"),
            "--death-timeout", "60",
        ]  # fmt: skip
        return DaskService(self.spawn(f"dask-worker-{name}", argv, env=env), scheduler)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class MlflowServer:
    service: Service
    uri: str


@dataclass
class DaskService:
    service: Service
    address: str


def wait_for_workers(address: str, names: Sequence[str], timeout: float = 90) -> None:
    """Until the scheduler at ``address`` lists every worker in ``names``."""
    from distributed import Client

    with Client(address, timeout=30) as client:
        deadline = time.monotonic() + timeout
        while True:
            seen = {w.get("name") for w in client.scheduler_info(n_workers=-1)["workers"].values()}
            if set(names) <= {str(s) for s in seen}:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"dask workers {sorted(names)} not connected in {timeout:.0f} s (seen {seen})")
            time.sleep(0.3)


class Postgres:
    """A PostgreSQL cluster of its own: data directory, TCP port on 127.0.0.1, the postmaster's pid."""

    def __init__(self, services: Services, *, user: str, password: str, database: str) -> None:
        self.services = services
        self.user, self.password, self.database = user, password, database
        self.port = free_port()
        # outside pytest's temp dirs: those are root-only (0700) and the server runs as postgres when we are root
        self.dir = Path(tempfile.mkdtemp(prefix="nar-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"  # written by the server: in its own directory
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            os.chmod(self.dir, 0o755)
            shutil.chown(self.dir, "postgres", "postgres")
        self.pid: int | None = None

    @property
    def uri(self) -> str:
        """What MLflow's ``--backend-store-uri`` takes (SQLAlchemy with the psycopg2 driver)."""
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def _run(self, argv: Sequence[str], timeout: float = 120) -> subprocess.CompletedProcess:
        if self.as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        env = {k: v for k, v in self.services.env.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        proc = subprocess.run(list(argv), capture_output=True, text=True, env=env, cwd=str(self.dir), timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        return proc

    def init(self) -> None:
        # trust on the Unix socket (only the postgres user and root can reach its directory), passwords over TCP
        self._run(
            [pg_binary("initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8", "--no-locale",
             "--auth-local=trust", "--auth-host=scram-sha-256"]
        )  # fmt: skip

    def _options(self) -> str:
        # no fsync: a test database (a crash loses nothing we keep); a restart still goes through shutdown/recovery
        return f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off -c full_page_writes=off"

    def start(self) -> None:
        self._run([pg_binary("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", self._options(), "-w",
                   "-t", "60", "start"])  # fmt: skip
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])

    def running(self) -> bool:
        if self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        # a zombie or a reused pid is not the postmaster: its pid file goes when it stops
        return (self.data / "postmaster.pid").is_file()

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        """Stop the postmaster by its pid: SIGINT = fast shutdown (active transactions are rolled back),
        SIGQUIT = immediate (as a crash); SIGKILL if it has not gone after ``timeout`` seconds."""
        if not self.running():
            return
        assert self.pid is not None
        os.kill(self.pid, signal.SIGQUIT if mode == "immediate" else signal.SIGINT)
        deadline = time.monotonic() + timeout
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            time.sleep(1)

    def restart(self, down_seconds: float = 0.0, mode: str = "fast") -> None:
        self.stop(mode)
        time.sleep(down_seconds)
        self.start()

    def psql(self, sql: str, database: str = "postgres") -> str:
        argv = ["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h", str(self.dir), "-p", str(self.port),
                "-U", "postgres", "-d", database, "-c", sql]  # fmt: skip
        return self._run(argv).stdout

    def create_database(self) -> None:
        self.psql(f"CREATE USER {self.user} PASSWORD '{self.password}'")
        self.psql(f"CREATE DATABASE {self.database} OWNER {self.user}")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
