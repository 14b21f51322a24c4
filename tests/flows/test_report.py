"""The report artifacts as the Prefect UI shows them: the Markdown rendered to HTML has its figures inline
(no relative image path, which cannot load there), the metrics table holds rounded headline figures, and the
registered processor's table has a header and names the registry of the workspace the flow runs in."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from flows.report import blueprint_markdown, embed_images, headline_table, registered_section
from nar.transfer.config import EvaluateParams
from nar.transfer.evaluate import run_evaluate

SIZES = (8, 24)


def _cell(acc: float) -> dict:
    return {"pointer_acc": acc, "pointer_acc_tie": acc, "path_match": acc / 2, "regret": 0.1, "invalid_rate": 0.0}


def _task_metrics(offset: float) -> dict:
    """metrics/transfer/<task>.json as nar transfer writes it, with made-up numbers (3 seeds)."""
    base = {"nar_frozen": 0.70, "nar_finetune": 0.80, "e2e": 0.78, "bottleneck": 0.90, "oracle": 1.0}
    results, curves = {}, {}
    for variant, acc in base.items():
        for n in SIZES:
            for s in range(3):
                a = min(1.0, acc + offset + 0.01 * s + (0.05 if n == 24 else 0.0)) if variant != "oracle" else 1.0
                results.setdefault(variant, {}).setdefault(f"n{n}", {})[f"s{s}"] = {
                    "test": _cell(a),
                    "ood": _cell(a - 0.1),
                }
                if variant != "oracle":
                    rows = [{"step": 1, "train_loss": 1.0, "val_pointer_acc": a / 2}, {"step": 2, "val_pointer_acc": a}]
                    curves.setdefault(variant, {}).setdefault(f"n{n}", {})[f"s{s}"] = rows
    return {
        "results": results,
        "curves": curves,
        "algorithm": "bellman_ford",
        "processor": {"uri": "models:/nar-processor@champion", "version": "1", "sha256": "ab" * 32, "config": {}},
        "data": {"sizes": {"train": 24, "val": 8, "test": 8, "ood": 4}},
        "timing": {"wall_seconds": 12.3456, "workers": 2},
    }


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A workspace after the evaluate stage (the real one, on made-up transfer metrics)."""
    root = tmp_path_factory.mktemp("report")
    for offset, task in ((0.0, "digit_grid"), (0.05, "road")):
        path = root / "metrics" / "transfer" / f"{task}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_task_metrics(offset)))
    params = EvaluateParams(
        tasks=("digit_grid", "road"),
        report=str(root / "reports" / "blueprint.md"),
        notes=str(root / "none.md"),
        low_data=8,
    )
    run_evaluate(
        params,
        metrics_root=root / "metrics" / "transfer",
        models_root=root / "models" / "transfer",
        data_root=root / "data",
        plots_root=root / "plots" / "transfer",
        out_metrics=root / "metrics" / "evaluate.json",
        track=False,
    )
    (root / "models").mkdir(exist_ok=True)
    record = {
        "name": "nar-processor",
        "version": "3",
        "uri": "models:/nar-processor/3",
        "sha256": "cd" * 32,
        "aliases": ["champion"],
        "tracking_uri": "sqlite:////somewhere/else/mlflow.db",  # the workspace it was registered from
    }
    (root / "models" / "registered.json").write_text(json.dumps(record))
    return root


def images(markdown: str) -> list[str]:
    """The ``src`` of every ``<img>`` in the Markdown rendered to HTML (CommonMark, as the UI renders it)."""
    html = MarkdownIt("commonmark").enable("table").render(markdown)
    return re.findall(r'<img src="([^"]*)"', html)


def test_the_report_artifact_embeds_its_figures(workspace, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    report = (workspace / "reports" / "blueprint.md").read_text()
    relative = images(report)
    assert relative and all(src.startswith("../plots/") for src in relative)  # what the evaluate stage writes

    markdown = blueprint_markdown(workspace, [{"stage": "evaluate", "status": "ran"}], {})
    shown = images(markdown)
    assert len(shown) == len(relative) == 4  # scores and curves per task (no predictions here)
    for src in shown:
        assert src.startswith("data:image/png;base64,"), src[:80]
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](../" not in markdown and "](plots/" not in markdown
    assert len(markdown) < 1_000_000


def test_a_figure_that_cannot_be_read_is_said_not_shown_broken(tmp_path):
    text = "![scores](../plots/png/x.png) and ![web](https://example.org/a.png) ![up](../../etc/passwd)"
    out = embed_images(text, tmp_path)
    assert images(out) == ["https://example.org/a.png"]
    assert "*(figure scores: `plots/png/x.png` is not available here)*" in out
    assert "*(figure up: `../etc/passwd` is not available here)*" in out


def test_the_metrics_table_holds_rounded_headline_figures(workspace):
    metrics = {"metrics/pretrain/tiny.json": {"ood_score": 97.705078125, "algorithms.bfs.val.score": 0.9}}
    rows = headline_table(workspace, metrics)
    assert rows[0] == {"stage": "pretrain", "item": "tiny", "figure": "ood_score (%)", "value": "97.7"}
    assert all(set(r) == {"stage", "item", "figure", "value"} for r in rows)
    assert len(rows) < 80  # two tasks: 2 splits x 5 variants x 2 sizes, the verdict, pretraining
    assert not [r for r in rows if re.search(r"\d\.\d{4,}", r["value"])]  # no raw floats
    frozen = next(r for r in rows if r["item"] == "nar_frozen" and r["figure"] == "test pointer_acc, n=8 (%)")
    assert frozen["stage"] == "transfer digit_grid" and frozen["value"] == "71.0 ± 0.6"
    verdicts = [r for r in rows if r["stage"].startswith("verdict")]
    assert verdicts and all(r["value"].endswith(("better", "worse", "not distinguishable")) for r in verdicts)
    vs_bottleneck = next(r for r in verdicts if r["item"] == "nar_frozen vs bottleneck, n=8" and "digit" in r["stage"])
    assert vs_bottleneck["value"] == "-20.0 ± 0.8: worse"


def test_the_registered_processor_table_names_this_workspaces_registry(workspace, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    record = json.loads((workspace / "models" / "registered.json").read_text())
    section = registered_section(record, root=workspace)
    lines = section.splitlines()
    assert lines[2] == "| property | value |"  # a header a reader (and a Markdown renderer) understands
    here = f"sqlite:///{workspace.resolve() / 'mlflow.db'}"
    assert f"| registry (this workspace) | `{here}` |" in section
    assert "somewhere/else" not in section
    assert "/#/models/nar-processor/versions/3" in section
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    served = registered_section(record, root=workspace)
    assert "(http://mlflow.internal:5000/#/models/nar-processor/versions/3)" in served
    assert "somewhere/else" not in served and "mlflow ui" not in served
