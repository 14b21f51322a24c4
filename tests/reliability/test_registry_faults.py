"""Registry faults not covered in tests/registry: a deleted alias, and a real ``mlflow server`` that goes
down and comes back while a registration is retrying (slow)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from .helpers import env, nar, one_line_error, write_pretrained


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    """cwd = a workspace with two pretrained processors; MLflow = a fresh SQLite store beside it."""
    root = tmp_path / "ws"
    root.mkdir()
    write_pretrained(root, "a", seed=0, ood=80.0)
    write_pretrained(root, "b", seed=1, ood=70.0)
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("NAR_REGISTRY_RETRIES", "2")
    monkeypatch.setenv("NAR_REGISTRY_RETRY_DELAY", "0.05")
    return root


@pytest.mark.fault(
    category="registry",
    fault="the champion alias deleted by hand in MLflow after registration",
    expected="loading @champion fails with one line naming the alias (API and `nar registry verify`); the next "
    "registration sets a champion again; versions untouched",
    lossless=True,
)
def test_deleted_alias_is_a_clear_error_and_the_next_registration_restores_it(store):
    from mlflow import MlflowClient

    from nar import registry
    from nar.registry import RegistryError

    first = registry.register("models/pretrain/a")
    assert first.champion
    MlflowClient().delete_registered_model_alias(registry.REGISTERED_MODEL, "champion")
    with pytest.raises(RegistryError, match="has no alias @champion"):
        registry.load_processor("models:/nar-processor@champion")
    proc = nar(["registry", "verify", "@champion"], store, MLFLOW_TRACKING_URI=os.environ["MLFLOW_TRACKING_URI"])
    assert "@champion" in one_line_error(proc, "registry")
    second = registry.register("models/pretrain/b")  # worse than a, but there is no champion to beat
    assert second.champion and "no champion" in second.reason, second.reason
    assert registry.load_registered("models:/nar-processor@champion").version == second.version
    assert sorted(v.version for v in registry.list_versions()) == ["1", "2"]
    assert all(v.status == "ready" for v in registry.list_versions())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(root: Path, port: int) -> subprocess.Popen:
    server_env = {k: v for k, v in env().items() if not k.startswith("MLFLOW_TRACKING")}
    server_env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    log = open(root / "server.log", "ab")  # noqa: SIM115 (the process owns it)
    return subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server",
            "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination", str(root / "artifacts"),
            "--workers", "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=server_env,
        start_new_session=True,
    )  # fmt: skip


def _wait_ready(uri: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "mlflow server exited"
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError("mlflow server not ready")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # abrupt: the server dies, it does not shut down politely
        proc.wait(timeout=30)


def _registered_json(store: Path) -> Path:
    """The processor.json of the one registered version, inside MLflow's artifact store beside the database."""
    (path,) = store.parent.glob("mlruns/**/data/processor/processor.json")
    return path


@pytest.mark.fault(
    category="registry",
    fault="the registered processor.json edited after registration: full_adjacency false -> true (the weights and "
    "their sha256 untouched; the processor's outputs change), with and without its own config_sha256 recomputed",
    expected="`nar registry verify` and load_registered refuse it as one line naming the config; the registry's "
    "config_sha256 tag is what catches a consistent edit",
    inputs=2,
)
def test_edited_registered_config_is_refused(store):
    from nar import registry
    from nar.registry import RegistryError

    result = registry.register("models/pretrain/a")
    assert result.config_sha256 and json.loads(Path("models/registered.json").read_text())["config_sha256"]
    assert registry.load_registered("models:/nar-processor/1").tags["config_sha256"] == result.config_sha256
    path = _registered_json(store)
    original = path.read_text()
    data = json.loads(original)
    assert data["processor"]["full_adjacency"] is False
    data["processor"]["full_adjacency"] = True
    flipped = registry._parse_meta(data, "edited")
    consistent = {**data, "config_sha256": registry.config_sha256(flipped)}  # the file's own hash recomputed
    for edited in (data, consistent):
        path.write_text(json.dumps(edited, indent=2))
        with pytest.raises(RegistryError, match="processor config was modified"):
            registry.load_registered("models:/nar-processor/1")
        proc = nar(["registry", "verify", "1"], store, MLFLOW_TRACKING_URI=os.environ["MLFLOW_TRACKING_URI"])
        message = one_line_error(proc, "registry")
        assert "processor.json" in message and "config was modified" in message, message
    path.write_text(original)
    proc = nar(["registry", "verify", "1"], store, MLFLOW_TRACKING_URI=os.environ["MLFLOW_TRACKING_URI"])
    assert proc.returncode == 0 and f"config sha256 {result.config_sha256}" in proc.stdout, proc.stderr[-2000:]


@pytest.mark.fault(
    category="registry",
    fault="a version registered before config hashes (no config_sha256 tag, none in its processor.json)",
    expected="still loads with its weights verified; `nar registry verify` says the config is unverified",
)
def test_registration_without_a_config_hash_still_loads(store):
    from mlflow import MlflowClient

    from nar import registry

    result = registry.register("models/pretrain/a")
    MlflowClient().delete_model_version_tag(registry.REGISTERED_MODEL, result.version, "config_sha256")
    path = _registered_json(store)
    data = json.loads(path.read_text())
    del data["config_sha256"]
    path.write_text(json.dumps(data))
    loaded = registry.load_registered(f"models:/nar-processor/{result.version}")
    assert loaded.sha256 == result.sha256
    proc = nar(["registry", "verify", result.version], store, MLFLOW_TRACKING_URI=os.environ["MLFLOW_TRACKING_URI"])
    assert proc.returncode == 0 and "config unverified (no hash recorded)" in proc.stdout, proc.stderr[-2000:]


@pytest.mark.fault(
    category="registry",
    fault="`nar register --name` with a quote, slash, space, non-ASCII letter, 257 characters or nothing "
    "(a quote used to leave an empty registered model that `nar registry list` could never show)",
    expected="refused as one line naming the allowed characters before MLflow is touched: no registered model, "
    "no registered.json; the library's register/list/promote refuse the same names",
    inputs=6,
    lossless=True,
)
def test_bad_model_name_is_refused_before_mlflow(store):
    from mlflow import MlflowClient

    from nar import registry
    from nar.registry import RegistryError

    uri = os.environ["MLFLOW_TRACKING_URI"]
    bad = ["a'b", "a/b", "a b", "\u00e9t\u00e9", "x" * 257, ""]
    for name in bad[:3]:  # through the real command (each start costs seconds)
        proc = nar(["register", "--pretrained", "models/pretrain/a", "--name", name], store, MLFLOW_TRACKING_URI=uri)
        message = one_line_error(proc, "register")
        assert "ASCII letters, digits, - and _" in message, message
        proc = nar(["registry", "list", "--name", name], store, MLFLOW_TRACKING_URI=uri)
        assert "ASCII letters, digits, - and _" in one_line_error(proc, "registry")
    for name in bad:
        with pytest.raises(RegistryError, match="allowed are ASCII letters, digits, - and _"):
            registry.register("models/pretrain/a", name=name)
        with pytest.raises(RegistryError, match="allowed are"):
            registry.list_versions(name)
        with pytest.raises(RegistryError, match="allowed are"):
            registry.promote("1", name=name)
    assert MlflowClient().search_registered_models() == []
    assert not Path("models/registered.json").exists()
    ok = registry.register("models/pretrain/a", name="nar-processor_2")  # the allowed characters
    assert ok.created and [v.version for v in registry.list_versions("nar-processor_2")] == [ok.version]


@pytest.mark.fault(
    category="registry",
    fault="a version number MLflow cannot hold: `nar registry verify|show|promote 99999999999999999999999` (beyond "
    "a 64-bit SQL integer), `verify models:/nar-processor/<that>`, 0, -3, a non-ASCII digit, `promote abc`",
    expected="exit 2, one line naming the version and the allowed range, before MLflow is asked (was an "
    "OverflowError traceback for verify and 'Python int too large' from MLflow for show/promote)",
    inputs=8,
)
def test_version_numbers_out_of_range_are_one_line(store, capsys):
    from nar import registry
    from nar.cli import main

    registry.register("models/pretrain/a")
    capsys.readouterr()  # MLflow's own log lines from the registration
    huge = "99999999999999999999999"
    proc = nar(["registry", "verify", huge], store, MLFLOW_TRACKING_URI=os.environ["MLFLOW_TRACKING_URI"])
    assert one_line_error(proc, "registry") == (
        f"version '{huge}': allowed: a version number from 1 to 9223372036854775807 (see `nar registry list`)"
    )
    for args in (
        ["verify", f"models:/nar-processor/{huge}"],
        ["verify", "0"],
        ["verify", "-3"],
        ["verify", "\u0663"],
        ["show", huge],
        ["promote", huge],
        ["promote", "abc"],
    ):
        assert main(["registry", *args]) == 2, args
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert "allowed: a version number from 1 to 9223372036854775807" in err, err
    assert main(["registry", "verify", "1"]) == 0  # in range: as before
    assert [v.version for v in registry.list_versions()] == ["1"]


@pytest.mark.fault(
    category="registry",
    fault="the registered processor.json replaced by: non-UTF-8 bytes, JSON nested 200,000 deep, hidden 100000 "
    "(a 240 GB matrix), msg_mlp_layers 10^9, layer_norm 'no', spec_versions {'bellman_ford': 'x'}, weights_sha256 "
    "5, 2 MiB of JSON, and a FIFO in a pretrain directory",
    expected="load_registered / `nar registry verify` / read_pretrained refuse each as one line naming the file, "
    "the field and what is allowed, before any processor is built; the original loads again",
    inputs=9,
)
def test_registered_config_that_is_not_ours_is_one_line(store):
    from nar import registry
    from nar.registry import RegistryError

    registry.register("models/pretrain/a")
    path = _registered_json(store)
    original = path.read_bytes()
    data = json.loads(original)
    proc_cfg = data["processor"]
    bad = {
        "not_utf8": (original.replace(b'"name": "a"', b'"name": "\xff\xfe"'), "is not UTF-8; allowed: UTF-8 JSON"),
        "nested": (b'{"x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", "nested thousands of levels deep"),
        "hidden": (
            {**data, "hidden": 100000, "processor": {**proc_cfg, "hidden": 100000}},
            "processor.hidden is 100000; allowed: an integer from 1 to 4096",
        ),
        "layers": (
            {**data, "processor": {**proc_cfg, "msg_mlp_layers": 10**9}},
            "processor.msg_mlp_layers is 1000000000; allowed: an integer from 0 to 8",
        ),
        "flag": ({**data, "processor": {**proc_cfg, "layer_norm": "no"}}, "processor.layer_norm is 'no'; allowed"),
        "spec_versions": (
            {**data, "spec_versions": {"bellman_ford": "x"}},
            "'spec_versions' is {'bellman_ford': 'x'}; allowed: an object of name: integer",
        ),
        "sha": ({**data, "weights_sha256": 5}, "'weights_sha256' is 5; allowed: 64 lowercase hex digits"),
        "big": (b" " * (2 << 20) + original, "allowed: a processor config of at most 1.0 MiB"),
    }
    for label, (content, fragment) in bad.items():
        path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
        with pytest.raises(RegistryError) as info:
            registry.load_registered("models:/nar-processor/1")
        message = str(info.value)
        assert "processor.json" in message and fragment in message and "\n" not in message, (label, message)
        if label in ("not_utf8", "hidden"):  # and through the real command: no traceback
            proc = nar(["registry", "verify", "1"], store, MLFLOW_TRACKING_URI=os.environ["MLFLOW_TRACKING_URI"])
            assert fragment in one_line_error(proc, "registry"), label
    path.write_bytes(original)
    assert registry.load_registered("models:/nar-processor/1").version == "1"
    local = Path("models/pretrain/a/processor.json")
    local.unlink()
    os.mkfifo(local)
    with pytest.raises(RegistryError, match="processor.json: a FIFO .named pipe., not a file; allowed: a regular file"):
        registry.read_pretrained("models/pretrain/a")


@pytest.mark.slow
@pytest.mark.fault(
    category="registry",
    fault="a real `mlflow server` killed (SIGKILL) after one registration, restarted while the next one retries",
    expected="while down: bounded retries then a clear error naming the URI, nothing half-registered; restarted "
    "mid-retry: the registration completes; every version ready, the champion loads bit-identically",
    lossless=True,
)
def test_server_down_then_restarted_mid_registration(tmp_path, monkeypatch):
    from nar import registry
    from nar.registry import RegistryUnavailable, RetryPolicy

    server_root = tmp_path / "server"
    server_root.mkdir()
    ws = tmp_path / "ws"
    ws.mkdir()
    write_pretrained(ws, "a", seed=0, ood=80.0)
    write_pretrained(ws, "b", seed=1, ood=90.0)
    monkeypatch.chdir(ws)
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    server = _start_server(server_root, port)
    try:
        _wait_ready(uri, server)
        first = registry.register("models/pretrain/a")
        _stop(server)
        start = time.monotonic()
        with pytest.raises(RegistryUnavailable, match=f"127.0.0.1:{port}"):
            registry.register("models/pretrain/b", retry=RetryPolicy(attempts=3, delay=0.1))
        assert time.monotonic() - start < 30
        # restarted while a registration is retrying: it gets through
        outcome: dict = {}

        def register_b():
            try:
                outcome["result"] = registry.register("models/pretrain/b", retry=RetryPolicy(60, 1.0, 1.0, 1.0))
            except Exception as exc:  # reported below
                outcome["error"] = exc

        worker = threading.Thread(target=register_b)
        worker.start()
        time.sleep(2)
        server = _start_server(server_root, port)
        _wait_ready(uri, server)
        worker.join(timeout=120)
        assert "error" not in outcome, outcome.get("error")
        second = outcome["result"]
        assert second.created and second.champion and second.version != first.version
        versions = registry.list_versions()
        assert sorted(v.version for v in versions) == sorted([first.version, second.version])
        assert all(v.status == "ready" for v in versions)
        loaded = registry.load_registered("models:/nar-processor@champion")
        original = registry.read_pretrained("models/pretrain/b").processor
        assert registry.weights_bytes(loaded.processor) == registry.weights_bytes(original)
    finally:
        _stop(server)
        shutil.rmtree(server_root / "artifacts", ignore_errors=True)
