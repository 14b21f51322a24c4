"""benchmarks/bench_hint_loop.py: the pretrained network loads with and without its hint encodings, and the two
prototypes (f~ into the frozen step loop; learned costs through the whole frozen network) give one logit per pair,
train f~ and g~ only, and leave the frozen network's weights as they were."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from nar.registry import weights_sha256
from nar.transfer.config import TaskTransferParams
from nar.transfer.models import CostModel, Encoder, pointer_loss
from nar.transfer.train import TaskData

ROOT = Path(__file__).resolve().parents[2]
FAST = TaskTransferParams(width=8, batch_size=4, max_steps=3, eval_every=2, patience=2, val_examples=4)


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT / "benchmarks"))
        import bench_hint_loop

        yield bench_hint_loop


def test_the_network_loads_without_its_hint_encodings(bench: ModuleType, processor_dir: Path) -> None:
    full, bare = bench.load_network(str(processor_dir)), bench.load_network(str(processor_dir), encode_hints=False)
    assert full.config.encode_hints and not bare.config.encode_hints
    shared = set(bare.state_dict()) & set(full.state_dict())
    assert shared == set(bare.state_dict()) and len(shared) < len(full.state_dict())  # only hint encoders dropped
    scores = bench.diagnostic(str(processor_dir), ["er:8"], seed=0)
    assert set(scores["er:8"]) == {"with_hint_feedback", "without"}
    assert all(0.0 <= v <= 100.0 for v in scores["er:8"].values())


@pytest.mark.parametrize("task", ["digit_grid", "road"])
@pytest.mark.parametrize(
    "prototype", ["nar_frozen_loop", "nar_frozen_loop_g", "nar_frozen_net", "nar_frozen_net_newdec"]
)
def test_prototypes_train_around_the_frozen_network(
    bench: ModuleType, processor_dir: Path, natural_root: Path, task: str, prototype: str
) -> None:
    data = TaskData.load(str(natural_root), task, FAST)
    net = bench.load_network(str(processor_dir))
    kind, H = ("mlp" if task == "road" else "cnn"), net.config.hidden
    assert prototype in bench.PROTOTYPES
    if prototype.startswith("nar_frozen_loop"):
        decoder = "pretrained" if prototype.endswith("_g") else "new"
        model = bench.HintLoopModel(Encoder(kind, data.node_in, data.edge_in, 8, H), net, decoder)
    else:
        per = "cell" if data.edge_in == 0 else "edge"
        costs = CostModel(kind, data.node_in, data.edge_in, 8, per)
        if prototype.endswith("_newdec"):
            model = bench.CostsThroughNetwork(costs, net, "bellman_ford")
        else:
            model = bench.WholeNetworkModel(costs, net)
    before = weights_sha256(net)
    b = data.train.batch(np.arange(4), "cpu")
    logits = model(b)
    assert logits.shape == (b.pairs.senders.shape[0],) and torch.isfinite(logits).all()
    loss = pointer_loss(logits, b)
    loss.backward()
    assert all(p.grad is None for p in net.parameters())  # frozen: no gradient reaches the network
    trained = [p for p in model.parameters() if p.requires_grad]
    assert trained and any(p.grad is not None and p.grad.abs().sum() > 0 for p in trained)
    torch.optim.Adam(trained, lr=0.1).step()
    assert weights_sha256(net) == before
