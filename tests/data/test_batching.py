"""collate: padding trajectories of different sizes and lengths into one batch."""

import numpy as np
import pytest
import torch

from nar.algorithms import ALGORITHMS, Location, Type
from nar.data.batching import collate
from nar.data.dataset import load_dataset
from nar.data.generate import sample_trajectories


@pytest.fixture(scope="module")
def trajectories():
    trajs = sample_trajectories("bellman_ford", 12, (3, 5, 8), 2)
    assert len({t.num_nodes for t in trajs}) == 3 and len({t.length for t in trajs}) > 1
    return trajs


def groups(batch_or_traj):
    return {"inputs": batch_or_traj.inputs, "hints": batch_or_traj.hints, "outputs": batch_or_traj.outputs}


def test_shapes_dtypes_and_masks(trajectories):
    spec = ALGORITHMS["bellman_ford"].spec
    batch = collate(spec, trajectories)
    B, N, T = 12, 8, max(t.length for t in trajectories)
    assert (batch.batch_size, batch.max_nodes, batch.max_steps) == (B, N, T)
    assert batch.algorithm == "bellman_ford"
    for f in spec.fields:
        group = groups(batch)[f"{f.stage}s" if f.stage != "hint" else "hints"]
        tensor = group[f.name]
        shape = f.shape(N)
        expected = (B, T, *shape) if f.stage == "hint" else (B, *shape)
        assert tuple(tensor.shape) == expected, f.name
        assert tensor.dtype == (torch.int64 if f.type == Type.POINTER else torch.float32), f.name
    sizes = torch.tensor([t.num_nodes for t in trajectories])
    assert torch.equal(batch.num_nodes, sizes)
    assert torch.equal(batch.node_mask, torch.arange(N)[None, :] < sizes[:, None])
    assert torch.equal(batch.lengths, torch.tensor([t.length for t in trajectories]))


def real_part(location, n):
    """Index of a graph's real nodes in one padded value (without batch and time axes)."""
    return {Location.NODE: np.s_[:n], Location.EDGE: np.s_[:n, :n], Location.GRAPH: np.s_[...]}[location]


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_padded_batch_holds_exactly_each_graphs_values(name):
    spec = ALGORITHMS[name].spec
    trajectories = sample_trajectories(name, 12, (3, 5, 8), 2)
    batch = collate(spec, trajectories)
    T = batch.max_steps
    for b, traj in enumerate(trajectories):
        n, t = traj.num_nodes, traj.length
        for f in spec.fields:
            group = {"input": "inputs", "hint": "hints", "output": "outputs"}[f.stage]
            got = groups(batch)[group][f.name][b].numpy()
            want = groups(traj)[group][f.name]
            real = real_part(f.location, n)
            steps = got if f.stage == "hint" else got[None]  # (T or 1, N...)
            want_steps = want if f.stage == "hint" else want[None]
            for s in range(steps.shape[0]):
                # real steps hold the graph's values; later steps repeat the last real one
                np.testing.assert_array_equal(steps[s][real], want_steps[min(s, t - 1)].astype(got.dtype))
                padding = np.array(steps[s])
                padding[real] = 0
                assert not padding.any(), f"{f.name}: padded nodes must be zero"
            if f.stage == "hint":
                assert steps.shape[0] == T


def test_loaded_trajectories_collate_like_generated_ones(bf_split, trajectories):
    ds = load_dataset(bf_split[0])
    batch = collate(ds.spec, ds[:16])
    assert batch.batch_size == 16 and batch.max_nodes == max(t.num_nodes for t in ds[:16])
    assert batch.outputs["pi"].dtype == torch.int64
    with pytest.raises(ValueError, match="empty"):
        collate(ds.spec, [])


def test_to_moves_every_tensor(trajectories):
    batch = collate(ALGORITHMS["bellman_ford"].spec, trajectories).to("cpu")
    assert batch.inputs["A"].device.type == "cpu"
