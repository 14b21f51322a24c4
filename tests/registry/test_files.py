"""Freezing, hashing and the safetensors + JSON format, without MLflow."""

from __future__ import annotations

import copy
import json
import pickle

import pytest
import torch
from torch import nn

from nar import registry
from nar.models.processors import ProcessorConfig, build_processor
from nar.registry import RegistryError


def make(kind: str = "mpnn", hidden: int = 16, seed: int = 0):
    torch.manual_seed(seed)
    return build_processor(ProcessorConfig(kind=kind, hidden=hidden))


def test_freeze_and_sha_are_deterministic():
    p = registry.freeze(make())
    assert registry.is_frozen(p)
    assert not any(q.requires_grad for q in p.parameters())
    # same weights, state_dict in another key order: same bytes
    shuffled = dict(reversed(list(p.state_dict().items())))
    assert registry.weights_bytes(shuffled) == registry.weights_bytes(p)
    assert registry.weights_sha256(p) == registry.weights_sha256(make())
    assert registry.weights_sha256(p) != registry.weights_sha256(make(seed=1))
    # stays frozen through deepcopy, pickling and a wrapper's .train()
    for q in (copy.deepcopy(p), pickle.loads(pickle.dumps(p))):
        nn.Sequential(q).train()
        assert registry.is_frozen(q) and registry.weights_sha256(q) == registry.weights_sha256(p)


@pytest.mark.parametrize("kind", ["mpnn", "triplet_gmpnn"])
def test_local_round_trip_is_bit_identical(tmp_path, kind):
    p = make(kind)
    meta = registry.save_processor(p, tmp_path / "p", name="x", algorithms=["bfs"], spec_versions={"bfs": 1})
    loaded = registry.load_registered(str(tmp_path / "p"))
    assert loaded.sha256 == meta.weights_sha256 == registry.weights_sha256(p)
    assert loaded.meta.algorithms == ("bfs",)
    q = loaded.processor
    assert q.config == p.config
    for k, v in p.state_dict().items():
        assert torch.equal(q.state_dict()[k], v)
    assert registry.is_frozen(q)


@pytest.mark.fault(
    category="registry",
    fault="local processor weights altered after freezing",
    expected="refused on load (sha256)",
    lossless=True,
)
def test_tampered_local_weights_are_refused(tmp_path):
    registry.save_processor(make(), tmp_path)
    blob = bytearray((tmp_path / "processor.safetensors").read_bytes())
    blob[-1] ^= 0x01  # one bit of one weight
    (tmp_path / "processor.safetensors").write_bytes(bytes(blob))
    with pytest.raises(RegistryError, match="modified or replaced"):
        registry.load_processor(str(tmp_path))


@pytest.mark.fault(
    category="registry",
    fault="processor directory without a recorded sha256",
    expected="refused unless --allow-unverified",
)
def test_unverifiable_directory_is_refused_unless_allowed(tmp_path):
    registry.save_processor(make(), tmp_path)
    data = json.loads((tmp_path / "processor.json").read_text())
    del data["weights_sha256"]
    (tmp_path / "processor.json").write_text(json.dumps(data))
    with pytest.raises(RegistryError, match="no weights_sha256"):
        registry.load_processor(str(tmp_path))
    assert registry.load_processor(str(tmp_path), allow_unverified=True) is not None


def _edit_config(path, **changes):
    data = json.loads((path / "processor.json").read_text())
    for key, value in changes.items():
        if key.startswith("processor."):
            data["processor"][key.split(".", 1)[1]] = value
        else:
            data[key] = value
    (path / "processor.json").write_text(json.dumps(data))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"processor.hidden": 32, "hidden": 32}, r"processor with hidden 32 needs torch.float32 \("),
        ({"processor.hidden": 32}, "hidden is 16 but the processor config says 32"),
        ({"processor.kind": "transformer"}, "kind 'transformer' is unknown"),
        ({"processor.heads": 4}, "unknown keys"),
        ({"processor.msg_mlp_layers": 1}, "missing"),
        ({"processor.kind": "triplet_gmpnn", "architecture": "triplet_gmpnn"}, "missing"),  # mpnn weights
        ({"processor": "mpnn"}, "missing the 'processor' config"),
    ],
)
@pytest.mark.fault(
    category="registry",
    fault="processor config that does not match its weights",
    expected="refused naming the mismatch",
)
def test_config_and_weights_must_match(tmp_path, changes, message):
    registry.save_processor(make(), tmp_path)
    _edit_config(tmp_path, **changes)
    with pytest.raises(RegistryError, match=message):
        registry.load_processor(str(tmp_path))


@pytest.mark.fault(category="registry", fault="processor weights with an extra tensor", expected="refused")
def test_extra_tensor_is_refused(tmp_path):
    from safetensors.torch import save

    p = make()
    state = dict(p.state_dict(), extra=torch.zeros(3))
    registry.save_processor(p, tmp_path)
    blob = save(state)
    (tmp_path / "processor.safetensors").write_bytes(blob)
    _edit_config(tmp_path, weights_sha256=__import__("hashlib").sha256(blob).hexdigest())
    with pytest.raises(RegistryError, match=r"unexpected \['extra'\]"):
        registry.load_processor(str(tmp_path))


@pytest.mark.fault(
    category="registry",
    fault="processor wrapped by encoders/decoders of another hidden size",
    expected="RegistryError naming both sizes",
)
def test_check_fits_and_attach():
    p = registry.freeze(make(hidden=16))
    registry.check_fits(p, 16)
    with pytest.raises(RegistryError, match="hidden size 16 but the encoders/decoders use 32"):
        registry.check_fits(p, 32)

    from nar.algorithms import ALGORITHMS
    from nar.models import EncodeProcessDecode, ModelConfig

    model = EncodeProcessDecode([ALGORITHMS["bfs"].spec], ModelConfig(processor=p.config))
    assert registry.attach_processor(model, p).processor is p
    wide = EncodeProcessDecode([ALGORITHMS["bfs"].spec], ModelConfig(processor=ProcessorConfig("mpnn", 32)))
    with pytest.raises(RegistryError, match="hidden size 16"):
        registry.attach_processor(wide, p)


class Wrapper(nn.Module):
    """New linear encoder and decoder around a frozen processor (the transfer setting)."""

    def __init__(self, processor, in_dim: int = 3, out_dim: int = 2) -> None:
        super().__init__()
        H = processor.config.hidden
        self.encoder = nn.Linear(in_dim, H)
        self.edge_encoder = nn.Linear(1, H)
        self.processor = processor
        self.decoder = nn.Linear(H, out_dim)

    def forward(self, x, w, adj):
        B, N, _ = x.shape
        H = self.processor.config.hidden
        node = self.encoder(x)  # (B, N, H)
        edge = self.edge_encoder(w.unsqueeze(-1))  # (B, N, N, H)
        mask = torch.ones(B, N, dtype=torch.bool)
        hidden = torch.zeros(B, N, H)
        for _ in range(2):
            hidden = self.processor(node, edge, torch.zeros(B, H), adj, hidden, mask).hidden
        return self.decoder(hidden)  # (B, N, out)


@pytest.mark.parametrize("kind", ["mpnn", "triplet_gmpnn"])
def test_frozen_processor_survives_a_training_step(tmp_path, kind):
    registry.save_processor(make(kind), tmp_path)
    p = registry.load_processor(str(tmp_path))
    sha = registry.weights_sha256(p)
    model = Wrapper(p)
    model.train()  # the wrapper trains; the processor must stay in eval mode
    assert model.encoder.training and not p.training
    opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=1e-2)
    torch.manual_seed(0)
    x, w = torch.randn(2, 5, 3), torch.rand(2, 5, 5)
    adj = (torch.rand(2, 5, 5) > 0.5) | torch.eye(5, dtype=torch.bool)
    before = model.encoder.weight.detach().clone()
    loss = nn.functional.cross_entropy(model(x, w, adj).reshape(-1, 2), torch.randint(0, 2, (10,)))
    loss.backward()
    opt.step()
    assert all(q.grad is None for q in p.parameters())
    assert model.encoder.weight.grad is not None and not torch.equal(model.encoder.weight, before)
    assert registry.weights_sha256(p) == sha
    registry.check_fits(p, model.encoder.out_features)


def test_a_processor_json_written_before_global_max_keeps_its_config_hash(tmp_path):
    """A config field added later (global_max) must not change the hash of files written before it: the
    registered champion's config tag would no longer match and it would refuse to load."""
    import hashlib

    p = make("mpnn")
    registry.save_processor(p, tmp_path / "p", name="x", algorithms=["bfs"], spec_versions={"bfs": 1})
    data = json.loads((tmp_path / "p" / "processor.json").read_text())
    assert "global_max" not in data["processor"]  # written only when set
    content = {k: v for k, v in data.items() if k not in ("weights_sha256", "config_sha256")}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert data["config_sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert registry.load_registered(str(tmp_path / "p")).processor.config.global_max is False

    q = build_processor(ProcessorConfig(kind="mpnn", hidden=8, global_max=True))
    registry.save_processor(q, tmp_path / "q", name="y", algorithms=["bfs"], spec_versions={"bfs": 1})
    assert json.loads((tmp_path / "q" / "processor.json").read_text())["processor"]["global_max"] is True
    assert registry.load_registered(str(tmp_path / "q")).processor.config.global_max is True
