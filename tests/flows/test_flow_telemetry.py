"""Prefect telemetry is off wherever the project starts Prefect (issue 17 item 15): a fresh process that
goes through ``nar``'s parser (as ``nar blueprint``/``sweep``/``serve`` do), with neither opt-out variable
set and no PREFECT_API_URL, starts Prefect's temporary server; that server's own settings must say
analytics are disabled, and Prefect's client must consider telemetry off."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from flowtools import ROOT, env

PROBE = """
import json
import nar.cli
nar.cli.build_parser()  # what every nar command does first; imports flows (and so its settings)
import prefect
from prefect.analytics import is_telemetry_enabled
from prefect.client.orchestration import get_client
with get_client(sync_client=True) as client:  # no PREFECT_API_URL: starts the temporary server
    settings = client._client.get("/admin/settings").json()
print(json.dumps({"server": settings["server"]["analytics_enabled"], "client": is_telemetry_enabled()}))
"""


@pytest.mark.fault(
    category="orchestration",
    fault="`nar blueprint`/`sweep`/`serve` start Prefect's temporary server with telemetry on (no opt-out set)",
    expected="the temporary server runs with analytics disabled and the Prefect client sends no telemetry",
)
def test_prefect_started_by_nar_sends_no_telemetry(tmp_path):
    clean = env()
    for name in ("PREFECT_SERVER_ANALYTICS_ENABLED", "DO_NOT_TRACK", "PREFECT_API_URL", "CI"):
        clean.pop(name, None)  # CI alone would turn the client's telemetry off: test without it
    clean.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="90")
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen == {"server": False, "client": False}, seen


def test_an_explicit_choice_is_kept():
    probe = "import os, flows; print(os.environ['PREFECT_SERVER_ANALYTICS_ENABLED'], os.environ['DO_NOT_TRACK'])"
    clean = {**env(), "PREFECT_SERVER_ANALYTICS_ENABLED": "true", "DO_NOT_TRACK": "0"}
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=clean, capture_output=True, text=True)
    assert out.stdout.split() == ["true", "0"], out.stderr
    assert os.environ.get("PREFECT_SERVER_ANALYTICS_ENABLED") == "false"  # this test session's own setting
