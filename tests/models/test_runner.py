"""The processor runner: the sparse entry point, the dense adapter, each graph's own step count."""

from __future__ import annotations

import pytest
import torch

from nar.models.layers import Pairs
from nar.models.processors import ProcessorConfig, build_processor
from nar.models.runner import ProcessorRunner

H = 16


def flat_graphs(sizes: list[int], seed: int = 0) -> Pairs:
    """Random directed graphs of ``sizes`` nodes as one flat batch: their edges, then a self-loop per node."""
    g = torch.Generator().manual_seed(seed)
    src, dst, offset = [], [], 0
    for n in sizes:
        adj = (torch.rand(n, n, generator=g) < 0.4) & ~torch.eye(n, dtype=torch.bool)
        s, d = adj.nonzero(as_tuple=True)
        src.append(s + offset)
        dst.append(d + offset)
        offset += n
    nodes = torch.arange(offset)
    node_graph = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return Pairs(torch.cat([*src, nodes]), torch.cat([*dst, nodes]), node_graph, len(sizes))


def inputs(pairs: Pairs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    return torch.randn(pairs.num_nodes, H), torch.randn(pairs.num_pairs, H), torch.randn(pairs.num_graphs, H)


@pytest.mark.parametrize("kind", ["mpnn", "gmpnn"])
def test_the_sparse_step_equals_the_dense_adapter(kind):
    torch.manual_seed(0)
    proc = build_processor(ProcessorConfig(kind=kind, hidden=H))
    assert ProcessorRunner(proc, "auto").sparse
    pairs = flat_graphs([4, 6, 3])
    steps = torch.tensor([3, 1, 4])  # ragged: each graph stops at its own step
    node, pair_fts, graph = inputs(pairs)
    sparse = ProcessorRunner(proc, "sparse")(node, pair_fts, graph, pairs, steps)
    dense = ProcessorRunner(proc, "dense")(node, pair_fts, graph, pairs, steps)
    torch.testing.assert_close(sparse, dense, atol=1e-5, rtol=1e-5)


def test_each_graph_gets_what_it_gets_alone():
    torch.manual_seed(0)
    runner = ProcessorRunner(build_processor(ProcessorConfig(kind="mpnn", hidden=H)))
    sizes, steps = [4, 6, 3], [3, 1, 4]
    pairs = flat_graphs(sizes)
    node, pair_fts, graph = inputs(pairs)
    together = runner(node, pair_fts, graph, pairs, torch.tensor(steps))
    start = 0
    for i, n in enumerate(sizes):
        alone_pairs = flat_graphs(sizes)  # the same graphs; keep graph i only
        keep = alone_pairs.graph == i
        mine = torch.arange(start, start + n)
        alone = Pairs(
            alone_pairs.senders[keep] - start, alone_pairs.receivers[keep] - start, torch.zeros(n, dtype=torch.long), 1
        )
        h = runner(node[mine], pair_fts[keep], graph[i : i + 1], alone, torch.tensor([steps[i]]))
        torch.testing.assert_close(h, together[mine], atol=1e-5, rtol=1e-5)
        start += n


def test_processors_without_a_sparse_step_run_through_the_dense_adapter():
    proc = build_processor(ProcessorConfig(kind="triplet_gmpnn", hidden=H))
    assert not ProcessorRunner(proc, "auto").sparse
    with pytest.raises(ValueError, match="sparsely"):
        ProcessorRunner(proc, "sparse")
    pairs = flat_graphs([3, 5])
    h = ProcessorRunner(proc)(*inputs(pairs), pairs, torch.tensor([2, 3]))
    assert h.shape == (pairs.num_nodes, H) and torch.isfinite(h).all()
