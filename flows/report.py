"""What the flows publish: metrics read through DVC (workspace or an experiment), the registered
processor from ``models/registered.json``, and the Markdown/table artifacts built from them."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPORT = "reports/blueprint.md"  # written by the evaluate stage
REGISTERED = "models/registered.json"  # written by the register stage
DEFAULT_MLFLOW_UI = "http://127.0.0.1:5000"


def read_text(root: str | Path, path: str, rev: str | None = None) -> str | None:
    """``path`` in the workspace, or at git revision / DVC experiment ``rev``; None when absent."""
    if rev is None:
        file = Path(root) / path
        return file.read_text() if file.is_file() else None
    import dvc.api

    try:
        return dvc.api.read(path, repo=str(root), rev=rev)
    except Exception:  # absent at that revision (FileNotFoundError, PathMissingError, ...)
        return None


def flatten(data: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested metrics as ``a.b.c`` -> value (bools and strings left out)."""
    out: dict[str, float] = {}
    if isinstance(data, Mapping):
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(data, int | float) and not isinstance(data, bool):
        out[prefix] = float(data)
    return out


def metric_file_label(path: str) -> str:
    """``metrics/pretrain/tiny.json`` -> ``pretrain/tiny``."""
    label = path[len("metrics/") :] if path.startswith("metrics/") else path
    return label.rsplit(".", 1)[0] if label.endswith((".json", ".yaml", ".yml", ".toml")) else label


def read_metrics(root: str | Path, revs: Sequence[str] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """The metrics files dvc.yaml declares: ``{rev: {file: {metric: value}}}`` (rev ``workspace``
    when ``revs`` is None), read through DVC so experiments' metrics come from their commits."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        shown = repo.metrics.show(revs=list(revs) if revs else None, hide_workspace=bool(revs))
    result: dict[str, dict[str, dict[str, float]]] = {}
    for rev, data in shown.items():
        rev = rev or "workspace"  # DVC names the workspace "" when no revision is asked for
        files = (data or {}).get("data", {}) or {}
        result[rev] = {
            name: flatten(content.get("data", {}))
            for name, content in sorted(files.items())
            if isinstance(content, Mapping) and "data" in content
        }
    return result


def metrics_long_table(metrics: Mapping[str, Mapping[str, float]]) -> list[dict[str, Any]]:
    """One row per (file, metric): the table artifact."""
    return [
        {"file": name, "metric": key, "value": _json_number(value)}
        for name, values in metrics.items()
        for key, value in values.items()
    ]


def _json_number(value: float) -> float | None:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        return f"{value:.4g}"
    return "-" if value is None else str(value).replace("|", "\\|")


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pretrain_table(metrics: Mapping[str, Mapping[str, float]]) -> str | None:
    """Pretraining scores per run and algorithm (validation, each test size, the OOD score), from
    ``metrics/pretrain/<run>.json``; None without such files."""
    rows = []
    sizes: set[str] = set()
    for name, values in metrics.items():
        if not name.startswith("metrics/pretrain/"):
            continue
        run = metric_file_label(name).split("/", 1)[-1]
        algos = sorted({k.split(".")[1] for k in values if k.startswith("algorithms.")})
        for algo in algos:
            tests = {
                k.split(".")[3]: v
                for k, v in values.items()
                if k.startswith(f"algorithms.{algo}.test.") and k.endswith(".score") and k.count(".") == 4
            }
            sizes |= set(tests)
            rows.append((run, algo, values.get(f"algorithms.{algo}.val.score"), tests, values.get("ood_score")))
    if not rows:
        return None
    order = sorted(sizes, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))
    headers = ["run", "algorithm", "val score", *[f"test n={s}" for s in order], "ood_score (%)"]
    return markdown_table(headers, [(r, a, v, *[t.get(s) for s in order], o) for r, a, v, t, o in rows])


def mlflow_ui_url(record: Mapping[str, Any], ui: str | None = None) -> str:
    """Where to look at the registered version in the MLflow UI: ``ui`` if given, else NAR_MLFLOW_UI_URL,
    else the tracking server itself when it is one (http), else a local ``mlflow ui`` on the default port."""
    base = ui or os.environ.get("NAR_MLFLOW_UI_URL")
    tracking = str(record.get("tracking_uri", ""))
    if not base:
        base = tracking if tracking.startswith(("http://", "https://")) else DEFAULT_MLFLOW_UI
    name, version = quote(str(record.get("name", "")), safe=""), quote(str(record.get("version", "")), safe="")
    return f"{base.rstrip('/')}/#/models/{name}/versions/{version}"


def registered_section(record: Mapping[str, Any] | None, ui: str | None = None) -> str:
    if not record:
        return "## Registered processor\n\nNone yet (`models/registered.json` is written by the register stage)."
    aliases = ", ".join(f"`@{a}`" for a in record.get("aliases", [])) or "-"
    link = mlflow_ui_url(record, ui)
    rows = [
        ("name", f"`{record.get('name')}`"),
        ("version", record.get("version")),
        ("aliases (at registration)", aliases),
        ("model URI", f"`{record.get('uri')}`"),
        ("weights sha256", f"`{str(record.get('sha256', ''))[:16]}…`"),
        ("champion gate", record.get("gate") or "-"),
        ("MLflow UI", f"[{record.get('name')} v{record.get('version')}]({link})"),
    ]
    tracking = str(record.get("tracking_uri", ""))
    note = ""
    if tracking.startswith("sqlite:"):
        db = tracking.removeprefix("sqlite:///")
        note = (
            f"\n\nThe registry is the local store `{tracking}`: browse it with "
            f"`mlflow ui --backend-store-uri sqlite:///{db} --host 127.0.0.1 --port 5000`."
        )
    return "## Registered processor\n\n" + markdown_table(["", ""], rows) + note


def stages_section(results: Sequence[Mapping[str, Any]]) -> str:
    if not results:
        return "## Stages\n\nNo stage ran."
    rows = [(r["stage"], r["status"], r.get("seconds"), r.get("attempts", 1)) for r in results]
    return "## Stages\n\n" + markdown_table(["stage", "status", "seconds", "attempts"], rows)


def blueprint_markdown(
    root: str | Path,
    results: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, Mapping[str, float]],
    rev: str | None = None,
    mlflow_ui: str | None = None,
) -> str:
    """The run's report: the evaluation (reports/blueprint.md, else a table per metrics file), the
    pretraining scores, the registered processor and what each stage did."""
    title = "# NAR blueprint" + (f": experiment `{rev}`" if rev else "")
    parts = [title]
    report = read_text(root, REPORT, rev)
    evaluation = {k: v for k, v in metrics.items() if not k.startswith("metrics/pretrain/")}
    if report:
        parts.append(f"## Evaluation\n\nFrom `{REPORT}`:\n\n{report.strip()}")
    elif evaluation:
        tables = [
            f"### `{name}`\n\n" + markdown_table(["metric", "value"], sorted(values.items()))
            for name, values in evaluation.items()
        ]
        parts.append("## Evaluation\n\n" + "\n\n".join(tables))
    pre = pretrain_table(metrics)
    if pre:
        parts.append(
            "## Pretraining\n\nScores (fraction of nodes with the correct predecessor), from "
            f"`metrics/pretrain/`:\n\n{pre}"
        )
    if not report and not evaluation and not pre:
        parts.append("## Evaluation\n\nNo metrics yet.")
    text = read_text(root, REGISTERED, rev)
    try:
        record = json.loads(text) if text else None
    except json.JSONDecodeError:
        record = None
    parts.append(registered_section(record, mlflow_ui))
    parts.append(stages_section(results))
    return "\n\n".join(parts) + "\n"
