"""Training batches of the pretrain stage: from the generated split, or sampled online like it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nar.data.dataset import load_dataset
from nar.data.generate import generate_split
from nar.data.samplers import GraphSamplerConfig
from nar.training.pretrain import DatasetBatches, SampledBatches, run_pretrain


@pytest.fixture(scope="module")
def grid_split(tmp_path_factory):
    """A tiny Bellman-Ford train split drawn from grid graphs of 6 and 9 nodes."""
    out = tmp_path_factory.mktemp("data") / "bellman_ford" / "train"
    generate_split("bellman_ford", 40, [6, 9], 3, out, GraphSamplerConfig(kind="grid"), progress=False)
    return load_dataset(out)


def _same(a, b) -> bool:
    return all(torch.equal(a.inputs[k], b.inputs[k]) for k in a.inputs) and torch.equal(a.lengths, b.lengths)


@pytest.mark.parametrize("make", [DatasetBatches, SampledBatches])
def test_a_batch_is_a_pure_function_of_algorithm_and_step(grid_split, make):
    batches = make({"bellman_ford": grid_split}, batch_size=5, seed=0)
    again = make({"bellman_ford": grid_split}, batch_size=5, seed=0)
    first = batches("bellman_ford", 7)
    assert _same(first, again("bellman_ford", 7))  # a resumed run sees the same batch
    assert first.node_mask.shape[0] == 5
    assert len(set(first.num_nodes.tolist())) == 1  # one size per batch: no padded nodes
    assert not all(_same(first, batches("bellman_ford", s)) for s in range(8, 12))
    other_seed = make({"bellman_ford": grid_split}, batch_size=5, seed=1)
    assert not all(_same(first, other_seed("bellman_ford", s)) for s in [7])


def test_online_batches_are_new_graphs_from_the_splits_sampler_and_sizes(grid_split):
    batches = SampledBatches({"bellman_ford": grid_split}, batch_size=8, seed=0)
    stored = {grid_split[i].inputs["A"].tobytes() for i in range(len(grid_split))}
    sizes, fresh = set(), 0
    for step in range(30):
        b = batches("bellman_ford", step)
        n = int(b.num_nodes[0])
        sizes.add(n)
        A = b.inputs["A"].numpy()
        degrees = (A > 0).sum(axis=2)  # grid graphs: every node has 1 to 4 neighbours
        assert degrees.max() <= 4 and degrees.min() >= 1
        fresh += sum(A[g].astype(grid_split[0].inputs["A"].dtype).tobytes() not in stored for g in range(len(A)))
    assert sizes == {6, 9}
    assert fresh == 30 * 8  # never a graph of the split itself


def test_pretrain_refuses_an_unknown_train_data(tmp_path):
    from nar.errors import NarError
    from nar.models import ModelConfig
    from nar.training.loop import TrainConfig

    with pytest.raises(NarError, match="train_data 'stream' is not one of \\['dataset', 'mixed', 'online'\\]"):
        run_pretrain("x", ModelConfig(), TrainConfig(algorithms=("bellman_ford",)), batch_size=4, train_data="stream",
                     data_root=tmp_path, track=False)  # fmt: skip
    assert not any(tmp_path.iterdir())  # nothing written


def test_online_sizes_are_uniform_over_the_splits_sizes(grid_split):
    batches = SampledBatches({"bellman_ford": grid_split}, batch_size=2, seed=0)
    counts = np.bincount([int(batches("bellman_ford", s).num_nodes[0]) for s in range(400)], minlength=10)
    assert counts[6] + counts[9] == 400 and abs(counts[6] - 200) < 45


def test_mixed_batches_draw_every_family_and_size_within_a_node_budget():
    from nar.config import MixParams
    from nar.training.pretrain import MixedBatches

    mix = MixParams(kinds=("er", "grid", "geometric"), sizes=(8, 32), nodes_per_batch=64)
    batches = MixedBatches(mix, seed=3)
    seen_sizes, edge_counts = set(), set()
    for step in range(30):
        b = batches("bellman_ford", step)
        n = int(b.num_nodes[0])
        seen_sizes.add(n)
        assert b.batch_size == max(4, 64 // n)
        edge_counts.add(round(float((b.inputs["adj"].sum((1, 2)) - n).float().mean()) / n, 1))  # degree per family
    assert seen_sizes == {8, 32}
    assert len(edge_counts) > 3  # several families (grids have degree < 4, ER at n = 8 is denser)
    again = MixedBatches(mix, seed=3)("bellman_ford", 7)
    assert torch.equal(again.inputs["A"], batches("bellman_ford", 7).inputs["A"])  # a pure function of the step


def test_held_steps_repeat_the_final_hints_and_keep_the_trajectory():
    from nar.config import MixParams
    from nar.training.pretrain import MixedBatches

    plain = MixedBatches(MixParams(kinds=("tree",), sizes=(12,)), seed=1)("bfs", 0)
    held = MixedBatches(MixParams(kinds=("tree",), sizes=(12,), hold=0.5), seed=1)("bfs", 0)
    assert torch.equal(held.inputs["adj"], plain.inputs["adj"])  # the same graphs
    T = plain.lengths  # (B,) hint steps, initial state included
    assert torch.equal(held.lengths, T + torch.ceil(0.5 * (T - 1)).long())
    for b in range(len(T)):
        t, h = int(T[b]), int(held.lengths[b])
        for name in ("reach_h", "pi_h"):
            assert torch.equal(held.hints[name][b, :t], plain.hints[name][b, :t])
            assert (held.hints[name][b, t:h] == plain.hints[name][b, t - 1]).all()
        assert torch.equal(held.outputs["pi"][b], plain.outputs["pi"][b])
