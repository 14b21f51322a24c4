"""Batching trajectories of different sizes into padded tensors with masks.

Conventions of a :class:`Batch` (B graphs, padded to N nodes and T hint steps):

* node fields ``(B, N[, C])``, edge fields ``(B, N, N[, C])``, graph fields ``(B[, C])``;
  hints add a time axis after the batch axis: ``(B, T, ...)``.
* scalar, mask, mask_one and categorical values are float32; pointers are int64 node indices.
* padded nodes are zero (pointers point to node 0) and must be ignored through ``node_mask``;
* padded time steps repeat the graph's final state, so a step beyond ``lengths[b]`` is
  harmless to read; losses ignore them through ``lengths``.

torch is imported here only, so dataset generation never pays for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from nar.algorithms.spec import AlgorithmSpec, Location, Stage, Trajectory, Type


@dataclass
class Batch:
    algorithm: str
    inputs: dict[str, torch.Tensor]
    hints: dict[str, torch.Tensor]
    outputs: dict[str, torch.Tensor]
    node_mask: torch.Tensor  # (B, N) bool
    lengths: torch.Tensor  # (B,) int64, hint steps per graph
    num_nodes: torch.Tensor  # (B,) int64

    @property
    def batch_size(self) -> int:
        return int(self.node_mask.shape[0])

    @property
    def max_nodes(self) -> int:
        return int(self.node_mask.shape[1])

    @property
    def max_steps(self) -> int:
        return int(self.lengths.max())

    def to(self, device: torch.device | str) -> Batch:
        def move(d: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {k: v.to(device, non_blocking=True) for k, v in d.items()}

        return Batch(
            algorithm=self.algorithm,
            inputs=move(self.inputs),
            hints=move(self.hints),
            outputs=move(self.outputs),
            node_mask=self.node_mask.to(device),
            lengths=self.lengths.to(device),
            num_nodes=self.num_nodes.to(device),
        )


def _pad(values: Sequence[np.ndarray], shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Stack arrays of different leading shapes into ``(len(values), *shape)``, zero padded."""
    out = np.zeros((len(values), *shape), dtype=dtype)
    for b, v in enumerate(values):
        out[(b, *tuple(slice(0, s) for s in v.shape))] = v
    return out


def _pad_time(values: Sequence[np.ndarray], T: int) -> list[np.ndarray]:
    """Extend each (t, ...) hint to (T, ...) by repeating its last step."""
    return [v if v.shape[0] == T else np.concatenate([v, np.repeat(v[-1:], T - v.shape[0], 0)]) for v in values]


def collate(spec: AlgorithmSpec, trajectories: Sequence[Trajectory]) -> Batch:
    """Pad ``trajectories`` of one algorithm into a :class:`Batch`."""
    if not trajectories:
        raise ValueError("cannot collate an empty list of trajectories")
    sizes = np.array([t.num_nodes for t in trajectories], dtype=np.int64)
    steps = np.array([t.length for t in trajectories], dtype=np.int64)
    N, T = int(sizes.max()), int(steps.max())

    def build(stage: Stage, group_of) -> dict[str, torch.Tensor]:
        tensors = {}
        for f in spec.by_stage(stage):
            dtype = np.int64 if f.type == Type.POINTER else np.float32
            shape = f.shape(N)
            values = [group_of(t)[f.name] for t in trajectories]
            if stage == Stage.HINT:
                values = _pad_time(values, T)
                shape = (T, *shape)
            if f.location == Location.GRAPH:
                arr = np.stack(values).astype(dtype)
            else:
                arr = _pad(values, shape, dtype)
            tensors[f.name] = torch.from_numpy(arr)
        return tensors

    node_mask = torch.from_numpy(np.arange(N)[None, :] < sizes[:, None])
    return Batch(
        algorithm=spec.name,
        inputs=build(Stage.INPUT, lambda t: t.inputs),
        hints=build(Stage.HINT, lambda t: t.hints),
        outputs=build(Stage.OUTPUT, lambda t: t.outputs),
        node_mask=node_mask,
        lengths=torch.from_numpy(steps),
        num_nodes=torch.from_numpy(sizes),
    )
