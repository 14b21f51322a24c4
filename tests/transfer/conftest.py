"""Fixtures: tiny natural datasets of every task and a small processor saved the registry's way."""

from __future__ import annotations

import os

import pytest
import torch

from nar.algorithms import ALGORITHMS
from nar.models.model import EncodeProcessDecode, ModelConfig
from nar.models.processors import ProcessorConfig
from nar.natural.build import build_natural
from nar.natural.config import parse_natural_params
from nar.training.pretrain import write_network

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

TINY = {
    "seed": 3,
    "shard_size": 64,
    "digit_grid": {
        "splits": {
            "train": {"count": 24, "sizes": [4]},
            "val": {"count": 8, "sizes": [4]},
            "test": {"count": 8, "sizes": [4]},
            "ood": {"count": 4, "sizes": [6]},
        }
    },
    "road": {
        "splits": {
            "train": {"count": 24, "sizes": [12]},
            "val": {"count": 8, "sizes": [12]},
            "test": {"count": 8, "sizes": [12]},
            "ood": {"count": 4, "sizes": [20]},
        }
    },
    "road_turns": {
        "splits": {
            "train": {"count": 24, "sizes": [12]},
            "val": {"count": 8, "sizes": [12]},
            "test": {"count": 8, "sizes": [12]},
            "ood": {"count": 4, "sizes": [20]},
        }
    },
}


@pytest.fixture(scope="session")
def turns_root(tmp_path_factory):
    """road_turns built once into <root>/road_turns/<split> (do not modify)."""
    root = tmp_path_factory.mktemp("natural_turns")
    build_natural("road_turns", parse_natural_params(TINY), out_dir=root, progress=False)
    return root


@pytest.fixture(scope="session")
def natural_root(tmp_path_factory):
    """Both tasks built once into <root>/<task>/<split> (do not modify)."""
    root = tmp_path_factory.mktemp("natural")
    params = parse_natural_params(TINY)
    for task in ("digit_grid", "road"):
        build_natural(task, params, out_dir=root, progress=False)
    return root


@pytest.fixture(scope="session")
def processor_dir(tmp_path_factory):
    """A small random Bellman-Ford network, laid out as `nar pretrain` writes it: its processor saved with its
    sha256 (what `nar register` would serve) and the whole network beside it (what `ceiling` runs)."""
    torch.manual_seed(5)
    config = ModelConfig(processor=ProcessorConfig(kind="mpnn", hidden=16), messages="sparse")
    model = EncodeProcessDecode([ALGORITHMS["bellman_ford"].spec], config)
    out = tmp_path_factory.mktemp("processor")
    write_network(model, out, name="tiny", algorithms=["bellman_ford"], config={"model": config.to_dict()})
    return out


@pytest.fixture(scope="session")
def processor_only_dir(processor_dir, tmp_path_factory):
    """The same processor without the network beside it (as a bare registered processor)."""
    out = tmp_path_factory.mktemp("processor_only")
    for name in ("processor.json", "processor.safetensors"):
        (out / name).write_bytes((processor_dir / name).read_bytes())
    return out


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """The stage runs one thread per worker; tests do the same (tiny tensors, shared machines)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
