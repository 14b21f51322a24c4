"""Deployments: params.yaml's `flows` section, and `nar serve` against a real `prefect server` on loopback,
a run triggered through the API and seen to complete, everything stopped by pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from flowtools import BIN, ROOT, env, free_port

from nar.config import ConfigError


@pytest.mark.fault(
    category="config", fault="flows section: bad cron, timezone, retries", expected="ConfigError naming the key"
)
def test_flows_params_defaults_and_validation(tmp_path):
    from flows.params import FlowsParams, load_flows_params

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"generate": {"seed": 1}}))
    assert load_flows_params(path) == FlowsParams()  # no section: nightly at 02:00 UTC
    path.write_text(yaml.safe_dump({"flows": {"schedule": "30 3 * * 1-5", "timezone": "Europe/Helsinki"}}))
    assert load_flows_params(path).schedule == "30 3 * * 1-5"
    for bad, key in [
        ({"schedule": "0 2 * *"}, "flows.schedule"),
        ({"schedule": "0 25 * * *"}, "flows.schedule"),
        ({"timezone": "Mars/Olympus"}, "flows.timezone"),
        ({"retries": -1}, "flows.retries"),
        ({"cron": "0 2 * * *"}, "flows.cron"),
    ]:
        path.write_text(yaml.safe_dump({"flows": bad}))
        with pytest.raises(ConfigError) as err:
            load_flows_params(path)
        assert err.value.key == key


def test_build_deployments_nightly_and_on_demand(tmp_path):
    from flows.serve import FlowsParams, build_deployments

    deployments = build_deployments(tmp_path, FlowsParams(schedule="0 4 * * *", timezone="Europe/Helsinki"))
    by_name = {(d.flow_name, d.name): d for d in deployments}
    assert set(by_name) == {("nar-blueprint", "nightly"), ("nar-blueprint", "on-demand"), ("nar-sweep", "on-demand")}
    nightly = by_name["nar-blueprint", "nightly"]
    assert nightly.schedules[0].schedule.cron == "0 4 * * *"
    assert nightly.schedules[0].schedule.timezone == "Europe/Helsinki"
    assert nightly.parameters["root"] == str(tmp_path.resolve())
    assert not by_name["nar-blueprint", "on-demand"].schedules
    assert nightly.entrypoint == "flows.blueprint.blueprint"
    assert len(build_deployments(tmp_path, FlowsParams(schedule=None))) == 2


def _stop(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM the process group we started (by its leader's pid), then SIGKILL after ``grace`` seconds."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _api(client: httpx.Client, method: str, path: str, budget: float = 60, **kwargs) -> httpx.Response:
    """One API call as a client of a just-started server must make it: a 503 (the server's retryable
    "Service Unavailable", e.g. its SQLite database briefly locked while the runner registers deployments)
    or a refused/reset connection is retried with exponential backoff (0.5 s doubling, at most 8 s a wait),
    for at most ``budget`` seconds; anything else is returned as is."""
    deadline = time.monotonic() + budget
    delay = 0.5
    while True:
        try:
            response = client.request(method, path, **kwargs)
            if response.status_code != 503:
                return response
            failure = f"503 {response.text}"
        except httpx.TransportError as exc:
            failure = repr(exc)
        if time.monotonic() + delay > deadline:
            raise AssertionError(f"{method} {path}: still failing after {budget:.0f} s of retries: {failure}")
        time.sleep(delay)
        delay = min(delay * 2, 8)


def _wait(what: str, check, timeout: float, procs: list[subprocess.Popen], logs: list[Path]):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc, log in zip(procs, logs, strict=True):
            assert proc.poll() is None, f"{log.name} exited while waiting for {what}:\n{log.read_text()[-4000:]}"
        try:
            result = check()
        except httpx.HTTPError:
            result = None
        if result:
            return result
        time.sleep(1)
    tails = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tails}")


@pytest.mark.timeout(420)
def test_served_deployment_runs_when_triggered_through_the_api(first_run, tmp_path):
    repo, _ = first_run
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    server_env = {
        **env(),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
    }
    server_log, serve_log = tmp_path / "server.log", tmp_path / "serve.log"
    procs: list[subprocess.Popen] = []
    logs: list[Path] = []

    def start(cmd: list[str], log: Path) -> subprocess.Popen:
        with log.open("w") as out:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env=server_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        procs.append(proc)
        logs.append(log)
        return proc

    client = httpx.Client(base_url=api, timeout=10)
    try:
        start([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)], server_log)
        # /ready answers 200 only once the server's database accepts connections (/health answers earlier)
        _wait("the Prefect server", lambda: client.get("/ready").status_code == 200, 120, procs, logs)
        start([sys.executable, "-m", "nar.cli", "serve", "--root", str(repo)], serve_log)

        def deployment(name: str):
            response = _api(client, "GET", f"/deployments/name/{name}")
            return response.json() if response.status_code == 200 else None

        on_demand = _wait("the served deployments", lambda: deployment("nar-blueprint/on-demand"), 120, procs, logs)
        nightly = deployment("nar-blueprint/nightly")
        assert nightly["schedules"][0]["schedule"]["cron"] == "0 2 * * *"  # the default, params.yaml has none
        assert on_demand["schedules"] == []
        assert on_demand["parameters"]["root"] == str(repo)

        # trigger a run as the UI's "Run" button does, only the generate stages to keep it short
        created = _api(
            client,
            "POST",
            f"/deployments/{on_demand['id']}/create_flow_run",
            json={"parameters": {"stages": ["generate"]}},
        )
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]

        def finished():
            state = _api(client, "GET", f"/flow_runs/{run_id}").json()["state"]
            return state if state["type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"} else None

        state = _wait("the triggered flow run", finished, 180, procs, logs)
        assert state["type"] == "COMPLETED", (state, serve_log.read_text()[-4000:])
        found = _api(
            client, "POST", "/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}
        ).json()
        assert "nar-blueprint-report" in {a["key"] for a in found}
        tasks = _api(client, "POST", "/task_runs/filter", json={"flow_runs": {"id": {"any_": [run_id]}}}).json()
        assert {t["name"] for t in tasks} == {"generate@bfs", "generate@bellman_ford"}
        assert all(t["state"]["type"] == "COMPLETED" for t in tasks)
    finally:
        client.close()
        for proc in reversed(procs):  # the runner first, then the server
            _stop(proc, grace=30)
    assert all(proc.poll() is not None for proc in procs)
    with socket.socket() as s:  # nothing listens on the server's port any more
        assert s.connect_ex(("127.0.0.1", port)) != 0
