"""MLflow tracking defaults and the lineage every tracked run records.

Tracking URI: ``MLFLOW_TRACKING_URI`` when set, else a SQLite database ``mlflow.db`` in the
workspace (git-ignored) with artifacts under ``mlruns/``. mlflow is imported lazily: it costs
seconds, and only stages that train or register need it.

Credentials written into the URI (``http://user:password@host``) are moved into
``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` (MLflow's basic auth) and the URI is used
without them, so no message, log line, tag or record can carry the password.

Every MLflow client the project uses is created and called through :class:`RetryingClient`: creating
one already opens the store (a SQLite file is read and migrated there), so a locked database or a bad
URI must meet the same bounded retries (:class:`RetryPolicy`) and one-line errors as any later call.

Artifacts live beside the SQLite database (``mlruns/`` next to ``mlflow.db``). A workspace copied with
its ``mlflow.db`` still names the original's absolute artifact directory in every experiment; writing
there would put the copy's runs and models into the original's ``mlruns/``, so
:func:`check_artifact_location` refuses before anything is logged (see its docstring for why it does not
re-point them).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit
from urllib.request import url2pathname

from nar.errors import NarError, UserError

log = logging.getLogger(__name__)

EXPERIMENT = "nar-pretrain"

#: what each experiment the project logs to holds; shown as its description in the MLflow UI
#: (the ``mlflow.note.content`` tag), set when the experiment is created or has none yet
EXPERIMENT_DESCRIPTIONS = {
    "nar-pretrain": "Pretraining runs (`nar pretrain`): encode-process-decode trained on synthetic algorithm "
    "traces. One run per params.yaml `pretrain.runs` entry and configuration; learning curves, "
    "out-of-distribution test scores (ood_score in %), the trained processor and network as artifacts. "
    "An interrupted run is KILLED and continues in the same run when resumed.",
    "nar-register": "Registrations (`nar register`): each run logs one frozen processor as an MLflow model "
    "(safetensors + processor.json, loaded by nar.registry without unpickling) with its lineage, and "
    "registers it as a version of nar-processor (aliases candidate and champion).",
    "nar-transfer": "Transfer runs (`nar transfer`): new encoders/decoders around the registered frozen "
    "processor on raw-input tasks, against end-to-end, fine-tuned, bottleneck and oracle baselines. "
    "A parent run per task, a child run per variant, training size and seed.",
}
NOTE_TAG = "mlflow.note.content"  # the tag the MLflow UI shows as an experiment's description


class TrackingUnavailable(NarError):
    """The MLflow tracking server cannot be reached (or refuses) when a stage starts tracking."""


class WorkspaceMismatch(NarError):
    """The MLflow store belongs to another workspace (a copied ``mlflow.db`` naming the original's artifacts)."""


def _without_credentials(uri: str) -> str:
    """``uri`` minus ``user:password@``; the credentials go to MLflow's basic-auth variables instead
    (unless those are set already), and ``MLFLOW_TRACKING_URI`` is rewritten so child processes and
    any ``MlflowClient()`` see the clean URI too."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        return uri
    if parts.username:
        os.environ.setdefault("MLFLOW_TRACKING_USERNAME", unquote(parts.username))
    if parts.password:
        os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", unquote(parts.password))
    clean = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    if os.environ.get("MLFLOW_TRACKING_URI") == uri:
        os.environ["MLFLOW_TRACKING_URI"] = clean
    return clean


def tracking_uri(workspace: Path | None = None) -> str:
    """The MLflow tracking URI this workspace uses (never with credentials in it)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return _without_credentials(os.environ["MLFLOW_TRACKING_URI"])
    root = (workspace or Path.cwd()).resolve()
    return f"sqlite:///{root / 'mlflow.db'}"


def safe_uri(uri: str) -> str:
    """The URI without credentials (for messages and records)."""
    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit(parts._replace(netloc=netloc))
    return uri


def details_path(metrics_path: str | Path) -> Path:
    """The per-algorithm, per-size detail beside a headline metrics file: ``metrics/pretrain/<name>.json``
    -> ``metrics/pretrain/details/<name>.json`` (a plain DVC output, not a ``metrics:`` file, so that
    ``dvc metrics show`` stays a table a person reads)."""
    p = Path(metrics_path)
    return p.parent / "details" / p.name


def read_with_details(metrics_path: str | Path) -> dict[str, Any]:
    """A headline metrics file merged over its details file (when there is one): every figure a reader
    of the old single-file layout found, at the same keys."""
    p = Path(metrics_path)
    headline = json.loads(p.read_text())
    detail = details_path(p)
    if detail.is_file() and isinstance(headline, dict):
        return {**json.loads(detail.read_text()), **headline}
    return headline


def run_record_path(metrics_path: str | Path) -> Path:
    """Where a stage writes what git must not track (timings, resume points): ``runs/<stage>/<name>.json``
    beside ``metrics/<stage>/<name>.json`` (``runs/`` is git-ignored; MLflow has the same figures).
    A metrics file outside a ``metrics/<stage>/`` folder gets ``<name>.run.json`` beside it."""
    p = Path(metrics_path)
    if len(p.parts) >= 3 and p.parts[-3] == "metrics":
        return p.parents[2] / "runs" / p.parts[-2] / p.name
    return p.with_name(f"{p.stem}.run.json")


def portable_uri(uri: str, workspace: Path) -> str | None:
    """``uri`` as a git-tracked file may hold it: a SQLite store inside ``workspace`` as a URI relative
    to it (``sqlite:///mlflow.db``), a server without credentials as is, any other local path None
    (an absolute path names one machine's checkout, not the project)."""
    db = sqlite_path(uri)
    if db is not None:
        root = Path(workspace).resolve()
        return f"sqlite:///{db.relative_to(root).as_posix()}" if db.is_relative_to(root) else None
    scheme = urlsplit(uri).scheme
    if scheme in ("", "file") or uri.startswith("/"):
        return None
    return safe_uri(uri)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :].split("?", 1)[0]).resolve()


# =========================================================================== bounded retries


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff for transient MLflow errors
    (env ``NAR_REGISTRY_RETRIES`` and ``NAR_REGISTRY_RETRY_DELAY``)."""

    attempts: int = 4
    delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 8.0

    @classmethod
    def from_env(cls) -> RetryPolicy:
        try:
            return cls(
                attempts=max(1, int(os.environ.get("NAR_REGISTRY_RETRIES", cls.attempts))),
                delay=max(0.0, float(os.environ.get("NAR_REGISTRY_RETRY_DELAY", cls.delay))),
            )
        except ValueError as exc:
            raise UserError(f"NAR_REGISTRY_RETRIES / NAR_REGISTRY_RETRY_DELAY: {exc}") from None


_TRANSIENT_PATTERNS = re.compile(
    r"failed with exception|connection refused|max retries exceeded|timed? ?out|temporarily unavailable|"
    r"error code 5\d\d|status code 5\d\d|database is locked|connection reset|remote end closed|bad gateway",
    re.IGNORECASE,
)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` may go away on its own (a server restarting, a SQLite file locked by another writer)."""
    import requests

    if isinstance(exc, ConnectionError | TimeoutError | requests.ConnectionError | requests.Timeout):
        return True
    if getattr(exc, "error_code", None) in ("TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"):
        return True
    return bool(_TRANSIENT_PATTERNS.search(str(exc)))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def _hint(uri: str) -> str:
    db = sqlite_path(uri)
    if db is not None:
        return f"another process may hold {db} locked (a long write or a stuck process); wait for it or stop it"
    return "check that the tracking server runs and MLFLOW_TRACKING_URI points at it"


@contextlib.contextmanager
def _engine_retries_ours() -> Iterator[None]:
    """MLflow retries creating a database engine 10 times over about 100 s, a hard-coded count with no
    setting, and for any error: a path that can never open, a refused PostgreSQL. While our client is
    created it tries once, and :class:`RetryPolicy` bounds the retries (as with MLflow's HTTP retries)."""
    try:
        from mlflow.store.db import utils as db_utils
    except ImportError:  # mlflow-skinny: no database stores at all
        yield
        return
    before = getattr(db_utils, "MAX_RETRY_COUNT", None)
    if not isinstance(before, int):  # a future MLflow without it: nothing to bound
        yield
        return
    db_utils.MAX_RETRY_COUNT = 1
    try:
        yield
    finally:
        db_utils.MAX_RETRY_COUNT = before


class RetryingClient:
    """An ``MlflowClient`` created and called inside bounded retries on transient errors.

    Creating the client is the first retried call: for a SQLite store it opens (and migrates) the
    database, which fails on a locked file like any later call would. Retries exhausted raise
    ``unavailable``; a client that cannot be created for any other reason (an unknown scheme, a
    missing driver, the refused file store) raises ``error``; both as one line naming the URI
    (without credentials). Later calls that fail for a non-transient reason raise MLflow's own
    exception, for the caller to inspect (``RESOURCE_DOES_NOT_EXIST`` ...).
    """

    def __init__(
        self,
        uri: str,
        retry: RetryPolicy | None = None,
        *,
        unavailable: type[NarError] = TrackingUnavailable,
        error: type[NarError] = TrackingUnavailable,
    ) -> None:
        self.uri = uri
        self.retry = retry or RetryPolicy.from_env()
        self.unavailable, self.error = unavailable, error
        self.client = self.call("connecting", self._connect)

    def _connect(self) -> Any:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        from mlflow import MlflowClient

        try:
            with _engine_retries_ours():
                return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        except Exception as exc:
            if is_transient(exc):
                raise
            raise self.error(
                f"MLflow at {safe_uri(self.uri)} cannot be used ({type(exc).__name__}: {_first_line(exc)}); "
                "fix MLFLOW_TRACKING_URI (unset: this workspace's mlflow.db)"
            ) from None

    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``, retried on transient errors with the policy's backoff."""
        delay = self.retry.delay
        start = time.monotonic()
        for attempt in range(1, self.retry.attempts + 1):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                last = exc
                if attempt == self.retry.attempts:
                    break
                log.warning("MLflow %s failed (attempt %d/%d), retrying: %s", what, attempt, self.retry.attempts, exc)
                time.sleep(min(delay, self.retry.max_delay))
                delay *= self.retry.factor
        raise self.unavailable(
            f"MLflow at {safe_uri(self.uri)} is unreachable or failing: {what} failed "
            f"{self.retry.attempts} times in {time.monotonic() - start:.1f}s ({_first_line(last)}); {_hint(self.uri)}"
        ) from last

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name == "client":  # not created (yet): no recursion through __getattr__
            raise AttributeError(name)
        fn = getattr(self.client, name)
        return lambda *a, **k: self.call(name, fn, *a, **k)


@contextlib.contextmanager
def bounded_http_retries() -> Iterator[None]:
    """MLflow's own HTTP retries (7, minutes of backoff) off while our :class:`RetryPolicy` bounds the calls,
    unless ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` is set; the environment is restored afterwards."""
    key = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
    before = os.environ.get(key)
    os.environ.setdefault(key, "0")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)


# =========================================================================== experiments


def _local_dir(location: str) -> Path | None:
    """The directory an artifact location names, None when it is not a local path (s3:, mlflow-artifacts:)."""
    parts = urlsplit(location)
    if parts.scheme == "file":
        return Path(url2pathname(parts.path)).resolve()
    if parts.scheme == "" and location:
        return Path(location).resolve()
    return None


def check_artifact_location(uri: str, experiment: Any, workspace: Path | None = None) -> None:
    """Refuse to log into ``experiment`` when this workspace's own SQLite store sends its artifacts elsewhere.

    A copied workspace keeps the original's ``mlflow.db``, whose experiments name the original's absolute
    ``mlruns/``: runs and registrations from the copy would be written there. Only a database inside the
    workspace is checked (an ``MLFLOW_TRACKING_URI`` chosen on purpose may share a store and its artifacts).

    Refused rather than re-pointed: MLflow has no API to move an experiment's artifact location, and the
    original's absolute paths are also in every run's artifact URI and every logged model's location (the
    registered versions' ``models:/m-...`` sources resolve through them), so re-pointing means rewriting
    MLflow's own tables behind its back, schema version by schema version. The user chooses instead:
    a fresh store for the copy, or the original's store on purpose.
    """
    db = sqlite_path(uri)
    root = (workspace or Path.cwd()).resolve()
    if db is None or not db.is_relative_to(root):
        return
    location = _local_dir(getattr(experiment, "artifact_location", "") or "")
    if location is None or location.is_relative_to(root):
        return
    original = location.parent / "mlflow.db" if location.name == "mlruns" else None
    use_original = (
        f"; or use that workspace's store on purpose: MLFLOW_TRACKING_URI=sqlite:///{original}"
        if original is not None and original.is_file()
        else ""
    )
    raise WorkspaceMismatch(
        f"{db} belongs to another workspace: its experiment {experiment.name!r} keeps artifacts in {location}, "
        f"outside {root} (a copied mlflow.db keeps the original's paths, so this would write into that "
        f"workspace); to give this workspace its own store, move {db.name} and mlruns/ aside "
        f"(`mv {shlex.quote(str(db))} {shlex.quote(str(db) + '.copied')}`) and rerun{use_original}"
    )


def ensure_experiment(
    client: RetryingClient, name: str, *, artifact_location: str | None = None, workspace: Path | None = None
) -> str:
    """The id of experiment ``name``, created (at ``artifact_location``) if missing, checked against the
    workspace (:func:`check_artifact_location`) and given its description when it has none."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            client.create_experiment(name, artifact_location=artifact_location)
        except MlflowException:
            # a parallel run (nar sweep, a second registration) created it a moment ago: use that one
            if client.get_experiment_by_name(name) is None:
                raise
        experiment = client.get_experiment_by_name(name)
    check_artifact_location(client.uri, experiment, workspace)
    note = EXPERIMENT_DESCRIPTIONS.get(name)
    if note and not (experiment.tags or {}).get(NOTE_TAG):  # never overwrite a description edited in the UI
        client.set_experiment_tag(experiment.experiment_id, NOTE_TAG, note)
    return experiment.experiment_id


def tracking_client(workspace: Path | None = None, retry: RetryPolicy | None = None) -> RetryingClient:
    """A :class:`RetryingClient` on this workspace's tracking URI."""
    return RetryingClient(tracking_uri(workspace), retry)


def configure_mlflow(workspace: Path | None = None, experiment: str = EXPERIMENT) -> Any:
    """Point mlflow at this workspace's store and select ``experiment``; returns the mlflow module.

    Fails before any work, as one line, when the store cannot be used: bounded retries on transient
    errors (MLflow's own HTTP retries off meanwhile), then :class:`TrackingUnavailable`;
    :class:`WorkspaceMismatch` for a copied workspace's store.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    root = (workspace or Path.cwd()).resolve()
    uri = tracking_uri(root)
    # artifacts beside the local database by default (sqlite), the server's choice otherwise
    artifacts = (root / "mlruns").as_uri() if uri.startswith("sqlite:") else None
    with bounded_http_retries():
        client = RetryingClient(uri)
        try:
            experiment_id = ensure_experiment(client, experiment, artifact_location=artifacts, workspace=root)
            mlflow.set_tracking_uri(uri)
            client.call("set_experiment", mlflow.set_experiment, experiment_id=experiment_id)
        except NarError:
            raise
        except Exception as exc:  # refused credentials, a broken store: before any work
            raise TrackingUnavailable(
                f"MLflow at {safe_uri(uri)} cannot be used ({type(exc).__name__}: {_first_line(exc)}); start the "
                "tracking server, fix MLFLOW_TRACKING_URI, or run without tracking (--no-mlflow)"
            ) from None
    return mlflow


def mlflow_ui_command(workspace: Path | None = None, port: int = 5000) -> str:
    """The light ``mlflow ui`` for this workspace's SQLite store: one worker and no job runner (MLflow's
    default is 4 uvicorn workers plus a huey job runner and its consumers, GBs on a small machine, for
    GenAI jobs nothing here uses)."""
    root = (workspace or Path.cwd()).resolve()
    db = sqlite_path(tracking_uri(root)) or root / "mlflow.db"
    return (
        f"MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --backend-store-uri sqlite:///{db} "
        f"--host 127.0.0.1 --port {port} --workers 1"
    )


def git_commit(workspace: Path | None = None, outputs: Sequence[str | Path] = ()) -> str:
    """HEAD's commit, with ``-dirty`` when tracked files differ; ``unknown`` outside git.

    ``outputs``: the running stage's own outputs (workspace-relative), not counted: DVC deletes a
    stage's outputs before it runs it, so a git-tracked one (``models/registered.json``) always differs
    from HEAD while the stage runs, on the cleanest checkout."""
    cwd = workspace or Path.cwd()
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    skip = {Path(p).as_posix() for p in outputs}
    changed = [line[3:].strip().strip('"') for line in dirty.splitlines() if line.strip()]
    return f"{sha}-dirty" if any(path not in skip for path in changed) else sha


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def dataset_version(split_dir: Path) -> str:
    """A dataset split's version: the sha256 of its manifest (which lists every shard's sha256)."""
    return file_sha256(Path(split_dir) / "manifest.json")[:16]


def dvc_locked_hashes(stage_prefix: str, workspace: Path | None = None) -> dict[str, str]:
    """md5 of each output recorded in dvc.lock for stages whose name starts with ``stage_prefix``.

    These are the hashes ``dvc`` itself uses for the data, so a run can be traced back to the
    exact DVC-cached inputs. Empty when there is no dvc.lock yet (first run).
    """
    import yaml

    lock = (workspace or Path.cwd()) / "dvc.lock"
    if not lock.is_file():
        return {}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    hashes = {}
    for name, stage in stages.items():
        if name.startswith(stage_prefix):
            for out in stage.get("outs", []):
                hashes[out["path"]] = out.get("md5", "")
    return hashes


def params_hash(section: Any) -> str:
    """A short stable hash of a (JSON-able) params section."""
    return hashlib.sha256(json.dumps(section, sort_keys=True, default=str).encode()).hexdigest()[:16]
