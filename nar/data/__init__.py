"""Graph samplers, dataset generation, the on-disk format and its reader, batching.

Importing ``nar.data`` is light (numpy, safetensors, tqdm): ``collate``/``Batch`` (torch)
and ``summarize``/``summarize_dir`` (pandas) load their modules on first use, so dataset
generation never pays for torch.
"""

from __future__ import annotations

from typing import Any

from nar.data.dataset import Dataset, Manifest, load_dataset
from nar.data.generate import chunk_size, generate_split, sample_trajectories
from nar.data.samplers import GraphSamplerConfig, geometric_radius, grid_shapes, sample_graphs
from nar.data.store import DatasetError, ShardInfo

_LAZY = {
    "Batch": "nar.data.batching",
    "collate": "nar.data.batching",
    "summarize": "nar.data.summary",
    "summarize_dir": "nar.data.summary",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nar.data' has no attribute {name!r}")


__all__ = [
    "Batch",
    "Dataset",
    "DatasetError",
    "GraphSamplerConfig",
    "Manifest",
    "ShardInfo",
    "chunk_size",
    "collate",
    "generate_split",
    "geometric_radius",
    "grid_shapes",
    "load_dataset",
    "sample_graphs",
    "sample_trajectories",
    "summarize",
    "summarize_dir",
]
