"""The same registry against a real ``mlflow server`` on a loopback port (artifacts proxied by it)."""

from __future__ import annotations

import json

import pytest
import torch

from nar import registry


@pytest.fixture
def server_ws(ws, mlflow_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    return ws


def test_round_trip_gate_and_idempotency_through_a_server(server_ws, mlflow_server):
    ws, name = server_ws, "srv-round-trip"
    pre = ws.pretrain("a", ood=80.0, kind="triplet_gmpnn")
    first = registry.register(pre, name=name)
    assert first.created and first.champion and first.tracking_uri == mlflow_server
    worse = registry.register(ws.pretrain("b", seed=1, ood=60.0), name=name)
    assert worse.created and not worse.champion and "kept champion" in worse.reason
    again = registry.register(pre, name=name)
    assert not again.created and again.version == first.version

    original = registry.read_pretrained(pre).processor
    loaded = registry.load_registered(f"models:/{name}@champion")
    assert loaded.version == first.version and loaded.sha256 == first.sha256
    assert registry.weights_bytes(loaded.processor) == registry.weights_bytes(original)
    for k, v in original.state_dict().items():
        assert torch.equal(loaded.processor.state_dict()[k], v)
    assert registry.show_version("@candidate", name).version == worse.version
    assert json.loads((ws.root / "models" / "registered.json").read_text())["uri"] == f"models:/{name}/1"
    # nothing of the registry went to the workspace or to a local store
    assert not (ws.root / "mlruns").exists() and not (ws.root / "mlflow.db").exists()


@pytest.mark.fault(
    category="registry",
    fault="same weights registered at once from two machines (real mlflow server, no shared lock)",
    expected="one version survives, ready",
    lossless=True,
)
def test_concurrent_identical_registrations_without_a_lock(server_ws, run_workers):
    """Two machines (no shared lock file) register the same weights at once: one version survives."""
    ws = server_ws
    ws.pretrain("same", seed=3)
    d = "models/pretrain/same"
    first, second = run_workers(ws.root, [[d], [d]], use_lock=False)
    assert first[0]["version"] == second[0]["version"]
    assert sum(r["created"] for r in first + second) == 1
    versions = [v for v in registry.list_versions() if v.sha256 == first[0]["sha256"]]
    assert [v.version for v in versions] == [first[0]["version"]] and versions[0].status == "ready"
    assert all(v.status == "ready" for v in registry.list_versions())
