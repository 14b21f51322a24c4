"""MLflow tracking defaults and the lineage every tracked run records.

Tracking URI: ``MLFLOW_TRACKING_URI`` when set, else a SQLite database ``mlflow.db`` in the
workspace (git-ignored) with artifacts under ``mlruns/``. mlflow is imported lazily: it costs
seconds, and only stages that train or register need it.

Credentials written into the URI (``http://user:password@host``) are moved into
``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` (MLflow's basic auth) and the URI is used
without them, so no message, log line, tag or record can carry the password.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from nar.errors import NarError

EXPERIMENT = "nar-pretrain"


class TrackingUnavailable(NarError):
    """The MLflow tracking server cannot be reached (or refuses) when a stage starts tracking."""


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


def configure_mlflow(workspace: Path | None = None, experiment: str = EXPERIMENT) -> Any:
    """Point mlflow at this workspace's store and select ``experiment``; returns the mlflow module."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    root = (workspace or Path.cwd()).resolve()
    uri = tracking_uri(root)
    mlflow.set_tracking_uri(uri)
    try:
        if mlflow.get_experiment_by_name(experiment) is None:
            artifacts = None
            if uri.startswith("sqlite:"):
                artifacts = (root / "mlruns").as_uri()  # keep artifacts beside the local database
            try:
                mlflow.create_experiment(experiment, artifact_location=artifacts)
            except Exception:
                # a parallel experiment (nar sweep) created it a moment ago: use that one
                if mlflow.get_experiment_by_name(experiment) is None:
                    raise
        mlflow.set_experiment(experiment)
    except Exception as exc:  # unreachable server, refused credentials, broken store: before any work
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise TrackingUnavailable(
            f"MLflow at {uri} cannot be used ({type(exc).__name__}: {first}); start the tracking server, "
            "fix MLFLOW_TRACKING_URI, or run without tracking (--no-mlflow)"
        ) from None
    return mlflow


def git_commit(workspace: Path | None = None) -> str:
    """HEAD's commit, with ``-dirty`` when tracked files differ; ``unknown`` outside git."""
    cwd = workspace or Path.cwd()
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


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
