"""A temporary git + DVC workspace running the tiny profile through the project's own dvc.yaml, for the slow
tests that run whole pipelines as a user would (test_clean_tree, test_published_artifacts)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TINY = yaml.safe_load((ROOT / "tests/tiny_params.yaml").read_text())


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    """``cmd`` with the venv's commands first on PATH and each workspace on its own registry."""
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "PREFECT_API_URL"):
        env.pop(key, None)  # each workspace uses its own registry, `sqlite:///mlflow.db` inside it
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        shown = f"{' '.join(cmd)}: exit {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        assert proc.returncode == 0, shown
    return proc


def tiny_repo(path: Path) -> Path:
    """``path`` (existing, empty) as a git + DVC repo with dvc.yaml, .gitignore, the report notes, ``nar``
    linked to this checkout's package and the tiny params; nothing run yet."""
    shutil.copy(ROOT / "dvc.yaml", path)
    shutil.copy(ROOT / ".gitignore", path)
    (path / "reports").mkdir()
    shutil.copy(ROOT / "reports/transfer_notes.md", path / "reports")
    (path / "nar").symlink_to(ROOT / "nar", target_is_directory=True)
    (path / "params.yaml").write_text(yaml.safe_dump(TINY))
    run(["git", "init", "-q"], path)
    run(["git", "config", "user.email", "test@example.com"], path)
    run(["git", "config", "user.name", "test"], path)
    run(["dvc", "init", "-q"], path)
    return path
