"""Shared helpers of the reliability suite: the tiny profile, running the real ``nar`` command, a temporary
git + DVC workspace, and file snapshots to prove a refused stage wrote nothing."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
NAR = str(BIN / "nar")
DVC = str(BIN / "dvc")
TINY: dict[str, Any] = yaml.safe_load((ROOT / "tests" / "tiny_params.yaml").read_text())
# what the project's .gitignore keeps out of git (run records in /runs/ included)
GITIGNORE = "mlflow.db\nmlflow.db.lock\nmlruns/\nmlartifacts/\n.prefect/\ncheckpoints/\n/runs/\n*.log\n"


def tiny(**changes: Any) -> dict[str, Any]:
    """A deep copy of the tiny profile with ``changes`` applied: dotted key -> value (``DELETE`` removes)."""
    params = copy.deepcopy(TINY)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = params
        for key in parents:
            node = node.setdefault(key, {})
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return params


DELETE = object()


def env(**extra: str) -> dict[str, str]:
    """This venv first on PATH, the project importable, no outside MLflow/Prefect server, no telemetry."""
    out = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    out["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    for key in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL"):
        out.pop(key, None)
    out.update(
        DVC_NO_ANALYTICS="1",
        MLFLOW_DISABLE_TELEMETRY="true",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        NAR_REGISTRY_RETRIES="2",
        NAR_REGISTRY_RETRY_DELAY="0.05",
    )
    out.update(extra)
    return out


def nar(args: list[str], cwd: Path, timeout: float = 120, **extra_env: str) -> subprocess.CompletedProcess:
    """The real ``nar`` console script in a subprocess."""
    return subprocess.run([NAR, *args], cwd=cwd, env=env(**extra_env), capture_output=True, text=True, timeout=timeout)


def sh(cmd: list[str], cwd: Path, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def files(root: Path) -> dict[str, int]:
    """Every file under ``root`` (not following the nar/ link, not git's or DVC's internals) with its size."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        dirnames[:] = [d for d in dirnames if not (rel == Path(".") and d in (".git", ".dvc", "nar"))]
        for name in filenames:
            p = Path(dirpath, name)
            out[str(p.relative_to(root))] = p.stat().st_size
    return out


def one_line_error(proc: subprocess.CompletedProcess, command: str) -> str:
    """Assert the run failed as a user error: exit 2, no traceback, one ``nar <command>: error:`` line."""
    err = proc.stderr
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{err[-3000:]}"
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(f"nar {command}: error: ")]
    assert len(errors) == 1, err[-3000:]
    return errors[0].removeprefix(f"nar {command}: error: ")


def write_params(root: Path, params: dict[str, Any]) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def make_repo(path: Path, params: dict[str, Any] | None = None) -> Path:
    """dvc.yaml and the tiny params in a fresh git + DVC repo with one commit. nar/ is copied (not linked) so
    the stage deps hash a fixed snapshot: edits to the working tree during a long test do not rerun stages."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dvc.yaml", path)
    (path / "reports").mkdir()
    shutil.copy(ROOT / "reports/transfer_notes.md", path / "reports")  # a dep of evaluate
    shutil.copytree(ROOT / "nar", path / "nar", ignore=shutil.ignore_patterns("__pycache__"))
    write_params(path, params or TINY)
    (path / ".gitignore").write_text(GITIGNORE)
    sh(["git", "init", "-q"], path)
    sh([DVC, "init", "-q"], path)
    sh(["git", "add", "-A"], path)
    identity = ["-c", "user.name=nar-tests", "-c", "user.email=tests@nar.invalid"]
    sh(["git", *identity, "commit", "-q", "-m", "tiny pipeline"], path)
    return path


def write_pretrained(root: Path, name: str = "tiny", seed: int = 0, ood: float = 90.0) -> Path:
    """models/pretrain/<name>/ and metrics/pretrain/<name>.json as the pretrain stage writes them."""
    import torch
    from safetensors.torch import save_file

    from nar.models.processors import ProcessorConfig, build_processor

    torch.manual_seed(seed)
    processor = build_processor(ProcessorConfig(kind="mpnn", hidden=16))
    out = root / "models" / "pretrain" / name
    out.mkdir(parents=True, exist_ok=True)
    save_file(processor.state_dict(), str(out / "processor.safetensors"))
    meta = {
        "name": name,
        "processor": processor.config.to_dict(),
        "algorithms": ["bellman_ford"],
        "spec_versions": {"bellman_ford": 1},
    }
    (out / "processor.json").write_text(json.dumps(meta))
    (root / "metrics" / "pretrain").mkdir(parents=True, exist_ok=True)
    metrics = {"ood_score": ood, "algorithms": {"bellman_ford": {"val": {}, "test": {"16": {"pi": ood}}}}}
    (root / "metrics" / "pretrain" / f"{name}.json").write_text(json.dumps(metrics))
    return out


def stage_command(stage: str, params: dict[str, Any]) -> list[str]:
    """A dvc.yaml stage's ``cmd`` with its ``${...}`` filled from ``params`` (as DVC would), split."""
    import re
    import shlex

    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    cmd = dvc["stages"][stage]["cmd"]

    def lookup(match: re.Match) -> str:
        node: Any = params
        for key in match.group(1).split("."):
            node = node[key]
        return str(node)

    argv = shlex.split(re.sub(r"\$\{([^}]+)\}", lookup, cmd))
    assert argv[0] == "nar", argv
    return argv[1:]
