"""Padding natural-task examples into torch tensors: ``collate_natural(examples)``.

A :class:`NaturalBatch` of B examples padded to N nodes:

* node fields ``(B, N, *width)``; edge fields scattered densely to ``(B, N, N, *width)``
  (``[b, u, v]`` holds edge u -> v, zero where there is none); graph fields ``(B, *width)``;
* ``adj`` (B, N, N) bool: the directed edges, no self-loops (add the diagonal for processors
  that expect CLRS's ``adj`` input); ``node_mask`` (B, N) bool; ``num_nodes``, ``num_edges`` (B,);
* node indices (``pi``, ``source``, ``target``) are int64, other integers int64, float and
  0/1 mask fields float32; padded nodes are zero (pointers point to node 0): ignore them
  through ``node_mask``;
* the fields stay grouped by role: ``inputs`` (the only thing a model may read), ``targets``,
  ``hidden`` (true costs etc.: oracle, metrics, plots only), ``meta``. ``edge_index`` is not
  batched (``adj`` replaces it).

torch is imported here only, so building datasets never pays for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from nar.natural.store import Example, FieldSpec, Schema


@dataclass
class NaturalBatch:
    task: str
    inputs: dict[str, torch.Tensor]
    targets: dict[str, torch.Tensor]
    hidden: dict[str, torch.Tensor]
    meta: dict[str, torch.Tensor]
    adj: torch.Tensor  # (B, N, N) bool
    node_mask: torch.Tensor  # (B, N) bool
    num_nodes: torch.Tensor  # (B,) int64
    num_edges: torch.Tensor  # (B,) int64

    @property
    def batch_size(self) -> int:
        return int(self.node_mask.shape[0])

    @property
    def max_nodes(self) -> int:
        return int(self.node_mask.shape[1])

    @property
    def node_features(self) -> torch.Tensor:
        return self.inputs["node_features"]

    @property
    def edge_features(self) -> torch.Tensor | None:
        return self.inputs.get("edge_features")

    @property
    def source(self) -> torch.Tensor:
        return self.inputs["source"]

    @property
    def target(self) -> torch.Tensor:
        return self.inputs["target"]

    @property
    def pi(self) -> torch.Tensor:
        return self.targets["pi"]

    @property
    def path(self) -> torch.Tensor:
        return self.targets["path"]

    def to(self, device: torch.device | str) -> NaturalBatch:
        def move(d: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {k: v.to(device, non_blocking=True) for k, v in d.items()}

        return NaturalBatch(
            task=self.task,
            inputs=move(self.inputs),
            targets=move(self.targets),
            hidden=move(self.hidden),
            meta=move(self.meta),
            adj=self.adj.to(device),
            node_mask=self.node_mask.to(device),
            num_nodes=self.num_nodes.to(device),
            num_edges=self.num_edges.to(device),
        )


def _out_dtype(f: FieldSpec) -> np.dtype:
    if f.index or f.dtype in ("int32", "int64"):
        return np.dtype(np.int64)
    return np.dtype(np.float32)


def collate_natural(examples: Sequence[Example], schema: Schema, task: str = "") -> NaturalBatch:
    """Pad ``examples`` (of one split: same schema) into a :class:`NaturalBatch`."""
    if not examples:
        raise ValueError("cannot collate an empty list of examples")
    B = len(examples)
    n = np.array([ex.num_nodes for ex in examples], dtype=np.int64)
    e = np.array([ex.num_edges for ex in examples], dtype=np.int64)
    N = int(n.max())
    adj = np.zeros((B, N, N), dtype=bool)
    for b, ex in enumerate(examples):
        adj[b, ex.edge_index[:, 0], ex.edge_index[:, 1]] = True

    groups: dict[str, dict[str, torch.Tensor]] = {"input": {}, "target": {}, "hidden": {}, "meta": {}}
    for f in schema:
        if f.name == "edge_index":
            continue
        dtype = _out_dtype(f)
        if f.axis == "graph":
            arr = np.stack([np.asarray(ex.group(f.role)[f.name]) for ex in examples]).astype(dtype)
        elif f.axis == "node":
            arr = np.zeros((B, N, *f.width), dtype=dtype)
            for b, ex in enumerate(examples):
                arr[b, : ex.num_nodes] = ex.group(f.role)[f.name]
        else:
            arr = np.zeros((B, N, N, *f.width), dtype=dtype)
            for b, ex in enumerate(examples):
                arr[b, ex.edge_index[:, 0], ex.edge_index[:, 1]] = ex.group(f.role)[f.name]
        groups[f.role][f.name] = torch.from_numpy(arr)

    return NaturalBatch(
        task=task,
        inputs=groups["input"],
        targets=groups["target"],
        hidden=groups["hidden"],
        meta=groups["meta"],
        adj=torch.from_numpy(adj),
        node_mask=torch.from_numpy(np.arange(N)[None, :] < n[:, None]),
        num_nodes=torch.from_numpy(n),
        num_edges=torch.from_numpy(e),
    )
