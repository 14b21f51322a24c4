"""MLflow tracking defaults and the lineage every tracked run records.

Tracking URI: ``MLFLOW_TRACKING_URI`` when set, else a SQLite database ``mlflow.db`` in the
workspace (git-ignored) with artifacts under ``mlruns/``. mlflow is imported lazily: it costs
seconds, and only stages that train or register need it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

EXPERIMENT = "nar-pretrain"


def tracking_uri(workspace: Path | None = None) -> str:
    """The MLflow tracking URI this workspace uses."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    root = (workspace or Path.cwd()).resolve()
    return f"sqlite:///{root / 'mlflow.db'}"


def configure_mlflow(workspace: Path | None = None, experiment: str = EXPERIMENT) -> Any:
    """Point mlflow at this workspace's store and select ``experiment``; returns the mlflow module."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    root = (workspace or Path.cwd()).resolve()
    mlflow.set_tracking_uri(tracking_uri(root))
    if mlflow.get_experiment_by_name(experiment) is None:
        artifacts = None
        if tracking_uri(root).startswith("sqlite:"):
            artifacts = (root / "mlruns").as_uri()  # keep artifacts beside the local database
        mlflow.create_experiment(experiment, artifact_location=artifacts)
    mlflow.set_experiment(experiment)
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
