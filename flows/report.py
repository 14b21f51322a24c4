"""What the flows publish: metrics read through DVC (workspace or an experiment), the registered
processor from ``models/registered.json``, and the Markdown/table artifacts built from them.

The artifacts are read in the Prefect UI, where no workspace file can be loaded: the report's figures are
embedded as PNG data URIs (reduced to a 256-colour palette, about 0.4 MB for the eight figures), and the
metrics table holds the headline figures, rounded, not every number of every metrics file.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPORT = "reports/blueprint.md"  # written by the evaluate stage
EVALUATION = "metrics/evaluate.json"  # written by the evaluate stage: aggregates and verdict per task
REGISTERED = "models/registered.json"  # written by the register stage
DEFAULT_MLFLOW_UI = "http://127.0.0.1:5000"
HEADLINE_COLUMNS = ("stage", "item", "figure", "value")
SMALL_METRICS_FILE = 40  # numeric leaves: a file this small is itself a headline file, shown whole


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


def read_bytes(root: str | Path, path: str, rev: str | None = None) -> bytes | None:
    """Like :func:`read_text`, for binary files (the report's figures)."""
    if rev is None:
        file = Path(root) / path
        return file.read_bytes() if file.is_file() else None
    import dvc.api

    try:
        return dvc.api.read(path, repo=str(root), rev=rev, mode="rb")
    except Exception:
        return None


def _read_json(root: str | Path, path: str, rev: str | None = None) -> Any:
    text = read_text(root, path, rev)
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError:
        return None


# --------------------------------------------------------------------------- figures


_IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")


def compact_png(data: bytes, max_width: int = 2100) -> bytes:
    """The PNG re-encoded with a 256-colour palette (plots and digit pictures lose nothing visible; the
    files shrink 2-3x), no wider than ``max_width``; the original when Pillow cannot read it."""
    try:
        from PIL import Image

        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception:
        return data
    if image.width > max_width:
        image = image.resize((max_width, round(image.height * max_width / image.width)))
    out = io.BytesIO()
    image.convert("RGB").quantize(colors=256).save(out, format="PNG", optimize=True)
    return out.getvalue() if out.tell() < len(data) else data


def embed_images(markdown: str, root: str | Path, source: str = REPORT, rev: str | None = None) -> str:
    """Every image of ``markdown`` (read from the workspace file ``source``) whose target is a relative
    path becomes an inline ``data:image/png;base64`` URI, read from the workspace (or ``rev``); an image
    that cannot be read becomes a line of text saying so. A relative path cannot load in the Prefect UI."""
    base = posixpath.dirname(source)

    def embed(match: re.Match) -> str:
        alt, target = match["alt"], match["target"]
        if re.match(r"^(data:|https?://)", target):
            return match[0]
        path = posixpath.normpath(posixpath.join(base, target))
        data = None if path.startswith("../") or posixpath.isabs(path) else read_bytes(root, path, rev)
        if not data or not data.startswith(b"\x89PNG"):
            return f"*(figure {alt or path}: `{path}` is not available here)*"
        return f"![{alt}](data:image/png;base64,{base64.b64encode(compact_png(data)).decode('ascii')})"

    return _IMAGE.sub(embed, markdown)


def flatten(data: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested metrics as ``a.b.c`` -> value (bools and strings left out)."""
    out: dict[str, float] = {}
    if isinstance(data, Mapping):
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(data, int | float) and not isinstance(data, bool):
        out[prefix] = float(data)
    return out


def details_file(path: str) -> str:
    """``metrics/pretrain/tiny.json`` -> ``metrics/pretrain/details/tiny.json`` (nar.tracking.details_path)."""
    head, _, name = path.rpartition("/")
    return f"{head}/details/{name}" if head else f"details/{name}"


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


def _rounded(value: float, digits: int = 4) -> str:
    """A number as a person reads it: 4 significant digits, no float noise (0.10677083333333334 -> 0.1068)."""
    if not math.isfinite(value):
        return "-"
    return f"{value:.{digits}g}"


def _mean_se(cell: Mapping[str, Any] | None, scale: float, digits: int) -> str | None:
    if not cell or cell.get("mean") is None:
        return None
    se = cell.get("stderr")
    text = f"{scale * cell['mean']:.{digits}f}"
    return text + (f" ± {scale * se:.{digits}f}" if se is not None else "")


def _transfer_rows(evaluation: Mapping[str, Any]) -> list[dict[str, str]]:
    """Per task (metrics/evaluate.json): the headline metric of every variant on test and ood at the
    smallest and the largest training size, mean ± s.e. over seeds; then each verdict comparison."""
    from nar.transfer.evaluate.figures import COLORS
    from nar.transfer.evaluate.stats import RATIOS

    rows = []
    for task, d in evaluation.items():
        if not isinstance(d, Mapping) or not isinstance(d.get("aggregate"), Mapping):
            continue
        agg, verdict = d["aggregate"], d.get("verdict") or {}
        headline = verdict.get("headline", "pointer_acc")
        pct = headline not in RATIOS
        scale, digits, unit = (100.0, 1, " (%)") if pct else (1.0, 3, "")
        sizes = sorted({int(k.lstrip("n")) for by_v in agg.values() for by_n in by_v.values() for k in by_n})
        shown = sorted({sizes[0], sizes[-1]}) if sizes else []
        for split in ("test", "ood"):
            for variant in COLORS:
                for n in shown:
                    cell = agg.get(split, {}).get(variant, {}).get(f"n{n}", {}).get(headline)
                    value = _mean_se(cell, scale, digits)
                    if value is not None:
                        rows.append(_row(f"transfer {task}", variant, f"{split} {headline}, n={n}{unit}", value))
        others = (verdict.get("other_processor_variants") or {}).values()
        for c in [*verdict.get("comparisons", []), *[c for b in others for c in b.get("comparisons", [])]]:
            if "outcome" not in c:
                continue
            se = c.get("difference_stderr")
            spread = "" if se is None else f" ± {scale * se:.{digits}f}"
            rows.append(
                _row(
                    f"verdict {task}",
                    f"{c.get('subject', 'nar_frozen')} vs {c['rival']}, n={c['size']}",
                    f"test {headline} difference" + (" (points)" if pct else ""),
                    f"{scale * c['difference']:+.{digits}f}{spread}: {c['outcome']}",
                )
            )
    return rows


def _row(stage: str, item: str, figure: str, value: str) -> dict[str, str]:
    return dict(zip(HEADLINE_COLUMNS, (stage, item, figure, value), strict=True))


def headline_table(
    root: str | Path, metrics: Mapping[str, Mapping[str, float]], rev: str | None = None
) -> list[dict[str, str]]:
    """The figures a person looks for, rounded, one row each: every pretraining run's ood_score, the
    transfer results and verdict (metrics/evaluate.json), and any other metrics file small enough to be
    a headline file itself. The per-size, per-seed details stay in the metrics files and plots."""
    rows = []
    used = set()
    for name, values in metrics.items():
        if name.startswith("metrics/pretrain/") and "ood_score" in values:
            run = metric_file_label(name).split("/", 1)[-1]
            rows.append(_row("pretrain", run, "ood_score (%)", f"{values['ood_score']:.1f}"))
            used.add(name)
    evaluation = _read_json(root, EVALUATION, rev)
    transfer = _transfer_rows(evaluation) if isinstance(evaluation, Mapping) else []
    if transfer:
        rows += transfer
        used.add(EVALUATION)
    for name, values in metrics.items():
        if name not in used and len(values) <= SMALL_METRICS_FILE:
            label = metric_file_label(name)
            rows += [_row(label.split("/", 1)[0], label, key, _rounded(v)) for key, v in sorted(values.items())]
    return rows


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


def pretrain_table(
    metrics: Mapping[str, Mapping[str, float]], root: str | Path | None = None, rev: str | None = None
) -> str | None:
    """Pretraining scores per run and algorithm (validation, each test size, the OOD score), from
    ``metrics/pretrain/<run>.json`` and, with ``root``, its details ``metrics/pretrain/details/<run>.json``
    (per algorithm and test size); None without such files."""
    rows = []
    sizes: set[str] = set()
    for name, values in metrics.items():
        if not name.startswith("metrics/pretrain/"):
            continue
        if root is not None:  # the per-algorithm scores live in the details file, not in `dvc metrics`
            details = _read_json(root, details_file(name), rev)
            values = {**flatten(details), **values} if isinstance(details, Mapping) else values
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


def mlflow_ui_url(record: Mapping[str, Any], ui: str | None = None, tracking: str | None = None) -> str:
    """Where to look at the registered version in the MLflow UI: ``ui`` if given, else NAR_MLFLOW_UI_URL,
    else the tracking server itself when it is one (http), else a local MLflow UI on the default port.
    ``tracking``: the registry in use here (default: the one the record names)."""
    base = ui or os.environ.get("NAR_MLFLOW_UI_URL")
    tracking = str(tracking if tracking is not None else record.get("tracking_uri", ""))
    if not base:
        base = tracking if tracking.startswith(("http://", "https://")) else DEFAULT_MLFLOW_UI
    name, version = quote(str(record.get("name", "")), safe=""), quote(str(record.get("version", "")), safe="")
    return f"{base.rstrip('/')}/#/models/{name}/versions/{version}"


def workspace_registry(root: str | Path) -> str:
    """The MLflow registry the flow's workspace uses (MLFLOW_TRACKING_URI, else its own mlflow.db): the
    one to look in, whatever workspace the version was registered from."""
    from nar.tracking import tracking_uri

    return tracking_uri(Path(root).resolve())


def registered_section(record: Mapping[str, Any] | None, ui: str | None = None, root: str | Path = ".") -> str:
    if not record:
        return "## Registered processor\n\nNone yet (`models/registered.json` is written by the register stage)."
    aliases = ", ".join(f"`@{a}`" for a in record.get("aliases", [])) or "-"
    tracking = workspace_registry(root)
    link = mlflow_ui_url(record, ui, tracking)
    rows = [
        ("name", f"`{record.get('name')}`"),
        ("version", record.get("version")),
        ("aliases (at registration)", aliases),
        ("model URI", f"`{record.get('uri')}`"),
        ("weights sha256", f"`{str(record.get('sha256', ''))[:16]}…`"),
        ("champion gate", record.get("gate") or "-"),
        ("registry (this workspace)", f"`{tracking}`"),
        ("MLflow UI", f"[{record.get('name')} v{record.get('version')}]({link})"),
    ]
    note = ""
    if tracking.startswith("sqlite:"):
        note = (
            f"\n\nThe registry is this workspace's local store `{tracking}`: browse it with "
            f"`MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --backend-store-uri {tracking} "
            "--host 127.0.0.1 --port 5000 --workers 1`."
        )
    return "## Registered processor\n\n" + markdown_table(["property", "value"], rows) + note


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
        # the figures inline: the report's relative paths (../plots/...) cannot load in the Prefect UI
        parts.append(f"## Evaluation\n\nFrom `{REPORT}`:\n\n{embed_images(report.strip(), root, REPORT, rev)}")
    elif evaluation:
        rows = headline_table(root, evaluation, rev)
        table = markdown_table(list(HEADLINE_COLUMNS), [list(r.values()) for r in rows]) if rows else "No figures."
        parts.append("## Evaluation\n\nHeadline figures (details in the metrics files):\n\n" + table)
    pre = pretrain_table(metrics, root, rev)
    if pre:
        parts.append(
            "## Pretraining\n\nScores (fraction of nodes with the correct predecessor), from "
            f"`metrics/pretrain/`:\n\n{pre}"
        )
    if not report and not evaluation and not pre:
        parts.append("## Evaluation\n\nNo metrics yet.")
    record = _read_json(root, REGISTERED, rev)
    if not isinstance(record, Mapping):
        record = None
    parts.append(registered_section(record, mlflow_ui, root))
    parts.append(stages_section(results))
    return "\n\n".join(parts) + "\n"
