"""A clean tree after a run (issue 18 item 2): what git tracks is a function of params, code and seed.

The tiny pipeline runs in a temporary git repository, its outputs are committed, and every stage
reruns (``dvc repro -f``) against a fresh MLflow store: afterwards ``git status --porcelain`` is empty
(timings and machine-specific values went to MLflow and the git-ignored ``runs/``), and the
registered version records a clean commit; then a git clone of it reproduces the pipeline with a plain
``dvc repro``. Slow (three tiny pipeline runs): ``pytest -m slow tests/test_clean_tree.py``.
"""

import json
import shutil
from pathlib import Path

import pytest
from tiny_workspace import run, tiny_repo

pytestmark = pytest.mark.slow


def _registered_commit(repo: Path) -> str:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{repo / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version("nar-processor", "1")
    return version.tags["git_commit"]


def test_rerun_on_a_fresh_clone_leaves_the_tree_clean(tmp_path):
    (tmp_path / "first").mkdir()
    first = tiny_repo(tmp_path / "first")
    run(["dvc", "repro"], first)
    for path in ("metrics/pretrain/tiny.json", "plots/pretrain/tiny.csv", "models/registered.json"):
        text = (first / path).read_text()
        assert str(tmp_path) not in text, f"{path} holds an absolute path"
        assert "seconds" not in text and "elapsed" not in text, f"{path} holds timings"
    assert json.loads((first / "runs/pretrain/tiny.json").read_text())["train_seconds"] > 0
    assert "wall_seconds" in (first / "runs/transfer/road.json").read_text()
    _metrics_show_is_readable(first)
    run(["git", "add", "-A"], first)
    run(["git", "commit", "-q", "-m", "first run"], first)

    # a second run from scratch on the committed tree: every stage forced, a fresh registry (the
    # old one removed, as on another machine), so that register creates version 1 again and tags it
    (first / "mlflow.db").unlink()
    shutil.rmtree(first / "mlruns", ignore_errors=True)
    run(["dvc", "repro", "-f"], first)
    status = run(["git", "status", "--porcelain"], first).stdout
    assert status == "", f"a rerun changed tracked files:\n{status}"
    head = run(["git", "rev-parse", "HEAD"], first).stdout.strip()
    assert _registered_commit(first) == head  # not `-dirty`: nothing tracked changed before register
    registered = json.loads((first / "models/registered.json").read_text())
    assert registered.get("tracking_uri") == "sqlite:///mlflow.db"

    # another machine: a clone of the committed tree (no DVC cache, no MLflow store) runs a plain
    # `dvc repro`; pretraining reproduces the same weights, and register must still run there, or
    # transfer finds no champion in the clone's empty registry
    run(["git", "clone", "-q", str(first), str(tmp_path / "second")], tmp_path)
    out = run(["dvc", "repro"], tmp_path / "second").stdout
    assert "Running stage 'register'" in out and "Running stage 'transfer@road'" in out, out
    status = run(["git", "status", "--porcelain"], tmp_path / "second").stdout
    assert status == "", f"a run on a clone changed tracked files:\n{status}"


def _metrics_show_is_readable(repo: Path) -> None:
    """`dvc metrics show` (issue 18 item 3): headline figures, lines a terminal shows (once 368,917 chars)."""
    out = run(["dvc", "metrics", "show"], repo).stdout
    widths = [len(line) for line in out.splitlines()]
    assert widths and max(widths) <= 200, f"a line of {max(widths)} characters:\n{out[:2000]}"
    assert "ood_score" in out and "val_score" in out and "metrics/evaluate/road.json" in out, out
