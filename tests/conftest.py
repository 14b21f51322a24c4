"""Project-wide test hooks: the ``fault`` marker and the reliability report.

A test that provokes a fault carries::

    @pytest.mark.fault(category="data", fault="truncated shard", expected="refused naming the file")

(``category``: config | data | interrupt | numeric | registry | orchestration | security). Optional
keywords: ``inputs`` (how many bad inputs the test tries, default 1 for config/data faults, else 0) and
``lossless`` (True when the test checks that nothing was lost or left half-written: outputs, checkpoints,
registry versions).

With ``NAR_RELIABILITY_REPORT=path`` set, every fault test that ran is written to that JSON file
(merged with what is already there, so the fast and the slow pass add up);
``python scripts/reliability_table.py`` renders it as docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

CATEGORIES = ("config", "data", "interrupt", "numeric", "registry", "orchestration", "security")
REPORT_ENV = "NAR_RELIABILITY_REPORT"
_RESULTS: dict[str, dict] = {}


@pytest.fixture(autouse=True)
def _mlflow_tracking_uri_restored():
    """Each test starts with the MLflow tracking URI it inherited from the environment.

    A stage run in-process (``nar.tracking.configure_mlflow``) sets mlflow's process-wide URI and the
    ``MLFLOW_TRACKING_URI`` variable, as a command should; without this a later test's
    ``MlflowClient()`` would read an earlier test's store.
    """
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if "mlflow" in sys.modules:  # only when some test used it: importing mlflow costs seconds
        from mlflow.tracking._tracking_service import utils as tracking_utils

        tracking_utils._tracking_uri = None
    # mlflow.set_tracking_uri also writes the variable
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "fault(category, fault, expected, inputs=None, lossless=False): a fault-injection test "
        "(listed in docs/reliability.md)",
    )


def fault_info(item) -> dict | None:
    """The fault marker of ``item`` as a dict, or None."""
    marker = item.get_closest_marker("fault")
    if marker is None:
        return None
    kw = dict(marker.kwargs)
    category = kw.get("category")
    if category not in CATEGORIES:
        raise pytest.UsageError(f"{item.nodeid}: fault category {category!r} not in {CATEGORIES}")
    for key in ("fault", "expected"):
        if not kw.get(key):
            raise pytest.UsageError(f"{item.nodeid}: fault marker needs {key}=")
    inputs = kw.get("inputs")
    if inputs is None:
        inputs = 1 if category in ("config", "data") else 0
    return {
        "category": category,
        "fault": str(kw["fault"]),
        "expected": str(kw["expected"]),
        "inputs": int(inputs),
        "lossless": bool(kw.get("lossless", False)),
    }


def pytest_collection_modifyitems(config, items):
    for item in items:
        fault_info(item)  # a malformed marker fails at collection, not silently in the table


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if not os.environ.get(REPORT_ENV):
        return report
    info = fault_info(item)
    if info is None:
        return report
    entry = _RESULTS.setdefault(item.nodeid, {"test": item.nodeid, **info, "outcome": "passed", "duration_s": 0.0})
    entry["duration_s"] = round(entry["duration_s"] + report.duration, 2)
    if hasattr(report, "wasxfail"):
        entry["outcome"] = "xfailed" if report.skipped else "xpassed"
        entry["reason"] = report.wasxfail
    elif report.failed:
        entry["outcome"] = "failed" if report.when == "call" else "error"
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"
    return report


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get(REPORT_ENV)
    if not path or not _RESULTS:
        return
    path = Path(path)
    old = {}
    if path.is_file():
        try:
            old = {r["test"]: r for r in json.loads(path.read_text())["results"]}
        except (ValueError, KeyError, TypeError):
            old = {}
    old.update(_RESULTS)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"results": sorted(old.values(), key=lambda r: r["test"])}, indent=1) + "\n")
    os.replace(tmp, path)
