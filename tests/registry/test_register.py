"""register / load_processor against a real MLflow with a SQLite store in a temp dir."""

from __future__ import annotations

import json
import time

import mlflow
import pytest
import torch
from mlflow.exceptions import MlflowException

from nar import registry
from nar.registry import Gate, RegistryError, RegistryUnavailable, RetryPolicy


def versions(name: str = registry.REGISTERED_MODEL):
    return {v.version: v for v in registry.list_versions(name)}


def aliases(name: str = registry.REGISTERED_MODEL) -> dict[str, str]:
    return {a: v.version for v in registry.list_versions(name) for a in v.aliases}


def test_round_trip_is_bit_identical_and_recorded(ws):
    pre = ws.pretrain("a", kind="triplet_gmpnn")
    result = registry.register(pre)
    assert result.created and result.version == "1" and result.champion
    assert set(result.aliases) == {"candidate", "champion"}

    original = registry.read_pretrained(pre).processor
    for uri in ("models:/nar-processor@champion", "models:/nar-processor/1", "models:/nar-processor@candidate"):
        loaded = registry.load_registered(uri)
        assert loaded.sha256 == result.sha256 == registry.weights_sha256(original)
        assert registry.weights_bytes(loaded.processor) == registry.weights_bytes(original)
        for k, v in original.state_dict().items():
            assert torch.equal(loaded.processor.state_dict()[k], v)
        assert registry.is_frozen(loaded.processor)

    record = json.loads((ws.root / "models" / "registered.json").read_text())
    assert record["uri"] == "models:/nar-processor/1" and record["sha256"] == result.sha256
    assert record["name"] == "nar-processor" and record["version"] == "1"
    assert set(record["aliases"]) == {"candidate", "champion"}

    info = registry.show_version("1")
    assert info.status == "ready"
    tags = info.tags
    assert tags["weights_sha256"] == result.sha256
    assert tags["processor_kind"] == "triplet_gmpnn" and tags["hidden"] == "16"
    assert tags["algorithms"] == "bfs,dijkstra"
    assert float(tags["ood_score"]) == 90.0 and float(tags["ood_score.bfs"]) == 91.0
    assert json.loads(tags["dataset_versions"])["bfs"]["test"]  # sha256 of the manifest
    assert tags["git_commit"] and tags["params_hash"]
    # the model card: version description and an artifact of the logged model
    assert "| bfs | 91.00 | 99.89 | 99.73 |" in info.description
    assert 'load_processor("models:/nar-processor/1")' in info.description
    cards = list(ws.root.parent.glob("mlruns/models/m-*/artifacts/model_card.md"))
    assert len(cards) == 1 and cards[0].read_text() == info.description

    # the pyfunc flavour loads through nar.registry (no pickle) and runs one processor step
    model = mlflow.pyfunc.load_model("models:/nar-processor/1")
    out = model.predict(
        {
            "node_fts": torch.randn(1, 4, 16).numpy(),
            "edge_fts": torch.randn(1, 4, 4, 16).numpy(),
            "graph_fts": torch.zeros(1, 16).numpy(),
            "adj": torch.ones(1, 4, 4, dtype=torch.bool).numpy(),
            "hidden": torch.zeros(1, 4, 16).numpy(),
            "node_mask": torch.ones(1, 4, dtype=torch.bool).numpy(),
        }
    )
    assert out["hidden"].shape == (1, 4, 16)
    assert not list(ws.root.parent.glob("mlruns/**/*.pkl"))


def test_gate_moves_champion_only_when_not_worse(ws):
    first = registry.register(ws.pretrain("a", seed=0, ood=80.0))
    worse = registry.register(ws.pretrain("b", seed=1, ood=70.0))
    assert worse.created and not worse.champion
    assert "kept champion version 1" in worse.reason and "70 < champion version 1's 80" in worse.reason
    assert aliases() == {"champion": first.version, "candidate": worse.version}

    equal = registry.register(ws.pretrain("c", seed=2, ood=80.0))
    assert equal.champion and aliases() == {"champion": equal.version, "candidate": equal.version}

    # a margin: 81 is not enough over 80 + 2
    margin = registry.register(ws.pretrain("d", seed=3, ood=81.0), gate=Gate(margin=2.0))
    assert not margin.champion and "margin 2" in margin.reason
    assert aliases()["champion"] == equal.version
    # another metric, lower is better: the champion has no such tag, so it stays
    other = registry.register(
        ws.pretrain("e", seed=4, ood=99.0), gate=Gate(metric="algorithms.bfs.test.16.pi", higher_is_better=False)
    )
    assert not other.champion and "has no algorithms.bfs.test.16.pi" in other.reason
    assert versions()[other.version].tags["nar_gate"] == other.reason
    with pytest.raises(RegistryError, match="metrics have no 'nope'"):
        registry.register(ws.pretrain("f", seed=5), gate=Gate(metric="nope"))


def test_a_processor_that_loses_on_the_scale_suite_does_not_become_champion(ws):
    first = registry.register(ws.pretrain("a", seed=0, ood=80.0, scale=90.0))
    tags = versions()[first.version].tags
    assert tags["scale_score"] == "90.0" and tags["scale.bellman_ford.256.grid"] == "90.0"
    better_small_worse_large = registry.register(ws.pretrain("b", seed=1, ood=85.0, scale=70.0))
    assert not better_small_worse_large.champion
    assert "scale_score 70 < its 90" in better_small_worse_large.reason
    no_suite = registry.register(ws.pretrain("c", seed=2, ood=85.0))
    assert not no_suite.champion and "the new one none" in no_suite.reason
    both = registry.register(ws.pretrain("d", seed=3, ood=85.0, scale=95.0))
    assert both.champion and aliases()["champion"] == both.version
    assert "scale_score 95 >= 90" in both.reason


def test_identical_weights_register_once(ws):
    pre = ws.pretrain("a")
    first = registry.register(pre)
    record = (ws.root / "models" / "registered.json").read_text()
    again = registry.register(pre)
    assert not again.created and again.version == first.version and again.sha256 == first.sha256
    assert "already version 1" in again.reason
    # the same weights under another name and another file encoding are still the same processor
    ws.pretrain("copy")  # seed 0 again
    third = registry.register("models/pretrain/copy")
    assert not third.created and third.version == first.version
    assert list(versions()) == ["1"]
    assert (ws.root / "models" / "registered.json").read_text() == record  # DVC sees no change


@pytest.mark.fault(
    category="registry",
    fault="registered weights (and their JSON sha) rewritten in the artifact store",
    expected="refused on load: registry tag disagrees",
    lossless=True,
)
def test_tampered_registry_weights_are_refused(ws):
    registry.register(ws.pretrain("a"))
    (weights,) = ws.root.parent.glob("mlruns/models/m-*/artifacts/data/processor/processor.safetensors")
    (config,) = weights.parent.glob("processor.json")
    # an attacker who rewrites the weights and the JSON's sha256 is still caught by the registry tag
    other = registry.freeze(registry.read_pretrained(ws.pretrain("b", seed=7)).processor)
    blob = registry.weights_bytes(other)
    weights.write_bytes(blob)
    data = json.loads(config.read_text())
    data["weights_sha256"] = registry.weights_sha256(other)
    config.write_text(json.dumps(data))
    with pytest.raises(RegistryError, match="registry's weights_sha256 tag says"):
        registry.load_processor("models:/nar-processor@champion")


@pytest.mark.fault(
    category="registry", fault="registered processor.json edited (hidden 32)", expected="refused on load"
)
def test_config_mismatch_in_registry_is_refused(ws):
    registry.register(ws.pretrain("a"))
    (config,) = ws.root.parent.glob("mlruns/models/m-*/artifacts/data/processor/processor.json")
    data = json.loads(config.read_text())
    data["processor"]["hidden"] = data["hidden"] = 32
    config.write_text(json.dumps(data))
    with pytest.raises(RegistryError, match=r"hidden 32 needs"):
        registry.load_processor("models:/nar-processor/1")


@pytest.mark.fault(
    category="registry", fault="unknown version, unknown alias, bad URI", expected="RegistryError naming it", inputs=3
)
def test_unknown_version_and_bad_uri(ws):
    registry.register(ws.pretrain("a"))
    with pytest.raises(RegistryError, match="has no version 9"):
        registry.load_processor("models:/nar-processor/9")
    with pytest.raises(RegistryError, match="has no alias @nope"):
        registry.load_processor("models:/nar-processor@nope")
    with pytest.raises(RegistryError, match="not a directory"):
        registry.load_processor("runs:/abc/model")


def _fail_on(mp: pytest.MonkeyPatch, method: str, when):
    original = getattr(mlflow.MlflowClient, method)

    def patched(self, *args, **kwargs):
        if when(*args, **kwargs):
            raise MlflowException("API request to http://x failed with exception Connection refused")
        return original(self, *args, **kwargs)

    mp.setattr(mlflow.MlflowClient, method, patched)


@pytest.mark.fault(
    category="registry",
    fault="MLflow failing after the version was created",
    expected="bounded retries, rollback: no half-registered version, aliases restored",
    lossless=True,
)
def test_failure_after_create_rolls_back(ws):
    first = registry.register(ws.pretrain("a", ood=80.0))
    # the last step (marking the version ready) keeps failing: transient error, retried, then rollback
    with pytest.MonkeyPatch.context() as mp:
        _fail_on(mp, "set_model_version_tag", lambda name, version, key, value: key == "nar_status")
        with pytest.raises(RegistryUnavailable, match="set_model_version_tag failed 2 times"):
            registry.register(ws.pretrain("b", seed=1, ood=95.0))
    assert list(versions()) == [first.version]  # nothing half-registered
    assert aliases() == {"champion": first.version, "candidate": first.version}  # aliases put back
    again = registry.register("models/pretrain/b", "metrics/pretrain/b.json")
    assert again.created and again.champion and versions()[again.version].status == "ready"


@pytest.mark.fault(
    category="registry",
    fault="rollback failing too",
    expected="version left 'pending', refused on load, cleaned by the next register",
    lossless=True,
)
def test_failed_rollback_leaves_a_pending_version_that_is_refused_then_cleaned(ws):
    registry.register(ws.pretrain("a", ood=80.0))
    with pytest.MonkeyPatch.context() as mp:
        _fail_on(mp, "set_model_version_tag", lambda name, version, key, value: key == "nar_status")
        _fail_on(mp, "delete_model_version", lambda name, version: True)
        with pytest.raises(RegistryError, match="rollback failed too"):
            registry.register(ws.pretrain("b", seed=1, ood=95.0))
    assert versions()["2"].status == "pending"
    with pytest.raises(RegistryError, match="is pending"):
        registry.load_processor("models:/nar-processor/2")
    result = registry.register("models/pretrain/b")
    assert result.created and result.version == "3"
    assert sorted(versions()) == ["1", "3"] and versions()["3"].status == "ready"


@pytest.mark.fault(
    category="registry",
    fault="MLflow server down (nothing listening)",
    expected="bounded retries then one error naming the URI; no registered.json",
    lossless=True,
)
def test_unreachable_mlflow_is_a_clear_bounded_error(ws, closed_uri):
    uri = closed_uri
    start = time.monotonic()
    with pytest.raises(RegistryUnavailable) as err:
        registry.register(ws.pretrain("a"), uri=uri, retry=RetryPolicy(attempts=3, delay=0.05))
    assert time.monotonic() - start < 20
    message = str(err.value)
    assert uri in message and "failed 3 times" in message and "MLFLOW_TRACKING_URI" in message
    assert not (ws.root / "models" / "registered.json").exists()
    with pytest.raises(RegistryUnavailable, match=uri):
        registry.load_processor("models:/nar-processor@champion", tracking=uri, retry=RetryPolicy(2, 0.01))


@pytest.mark.fault(
    category="registry",
    fault="MLflow answering 503 to everything",
    expected="exactly N attempts, then RegistryUnavailable",
)
def test_server_errors_are_retried_then_reported(ws):
    """A server answering 503 to everything: our bounded retries (MLflow's own are off), then an error."""
    import http.server
    import threading

    hits = []

    class Unavailable(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            hits.append(self.path)
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PATCH = do_DELETE = _answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(RegistryUnavailable, match="failed 3 times"):
            registry.register(ws.pretrain("a"), uri=uri, retry=RetryPolicy(attempts=3, delay=0.01))
        assert len(hits) == 3
    finally:
        server.shutdown()


@pytest.mark.fault(
    category="registry",
    fault="two registrations at once (processes)",
    expected="one version per weights, champion the better, record whole",
    lossless=True,
)
def test_two_registrations_at_once_end_consistent(ws, run_workers):
    ws.pretrain("a", seed=0, ood=80.0)
    ws.pretrain("b", seed=1, ood=90.0)
    a, b = "models/pretrain/a", "models/pretrain/b"
    first, second = run_workers(ws.root, [[a, b], [b, a]])
    by_sha = {r["sha256"]: r["version"] for r in first + second}
    assert len(by_sha) == 2 and len(set(by_sha.values())) == 2  # one version per weights, both agree
    vs = versions()
    assert sorted(vs) == sorted(by_sha.values()) and all(v.status == "ready" for v in vs.values())
    assert sum(r["created"] for r in first + second) == 2
    sha_b = registry.read_pretrained(b).sha256
    assert aliases()["champion"] == by_sha[sha_b]  # the better one, whatever the order
    record = json.loads((ws.root / "models" / "registered.json").read_text())  # whole, never interleaved
    assert record["version"] in by_sha.values()
    for version in vs:
        registry.load_processor(f"models:/nar-processor/{version}")


def test_the_registered_network_executes_its_algorithm_from_the_registry(ws):
    """register stores the whole pretrained network beside the processor; nar.execute loads it by URI."""
    import networkx as nx
    from safetensors.torch import load_file, save_file

    from nar.algorithms import ALGORITHMS
    from nar.errors import UserError
    from nar.execute import load_pretrained
    from nar.models import EncodeProcessDecode, ModelConfig, ProcessorConfig

    out = ws.pretrain("net", seed=0)
    config = ModelConfig(processor=ProcessorConfig(kind="mpnn", hidden=16), messages="sparse")
    model = EncodeProcessDecode([ALGORITHMS["bellman_ford"].spec], config)
    model.processor.load_state_dict(load_file(str(out / "processor.safetensors")))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "model.safetensors"))
    meta = {"name": "net", "algorithms": ["bellman_ford"], "model": config.to_dict()}
    (out / "model.json").write_text(json.dumps(meta))
    first = registry.register(out)
    executor = load_pretrained(f"models:/{registry.REGISTERED_MODEL}/{first.version}")
    result = executor.run("bellman_ford", nx.path_graph(6), source=0, compare=True)
    assert result.pi.shape == (6,) and 0.0 <= result.accuracy <= 1.0
    for k, v in executor.model.state_dict().items():
        assert torch.equal(v, model.state_dict()[k])

    bare = registry.register(ws.pretrain("bare", seed=1))
    with pytest.raises(UserError, match="processor only"):
        load_pretrained(f"models:/{registry.REGISTERED_MODEL}/{bare.version}")
