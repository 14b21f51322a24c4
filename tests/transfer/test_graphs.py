import numpy as np
import pytest
import torch

from nar.models.layers import segment_argmax, segment_log_softmax
from nar.natural import load_natural
from nar.transfer.graphs import FlatSplit, hop_eccentricity, processor_steps

from .helpers import tie_example


@pytest.fixture(scope="module")
def road(natural_root):
    return FlatSplit(load_natural(natural_root / "road" / "train"))


def test_flat_batch_pairs_targets_and_offsets(road):
    b = road.batch([3, 0, 5])
    V, E = b.total_nodes, b.total_edges
    assert len(b.pairs.senders) == E + V
    assert torch.equal(b.pairs.senders[E:], torch.arange(V)) and torch.equal(b.pairs.receivers[E:], torch.arange(V))
    # the target pair of every node is (pi[v] -> v)
    assert torch.equal(b.pairs.senders[b.pi_pair], b.pi)
    assert torch.equal(b.pairs.receivers[b.pi_pair], torch.arange(V))
    # tree edges are exactly the non-self target pairs
    tree = torch.zeros(E)
    real = b.pi_pair[b.pi_pair < E]
    tree[real] = 1
    assert torch.equal(tree, b.tree_edge)
    # graph 1 of the batch is example 0, offset by graph 0's nodes
    ex = road.examples[0]
    off = int(b.node_offset[1])
    assert off == road.examples[3].num_nodes
    assert int(b.source[1]) == ex.source + off
    assert torch.equal(b.pi[off : off + ex.num_nodes] - off, torch.from_numpy(ex.pi))
    assert bool(b.is_source[b.source].all()) and int(b.is_source.sum()) == 3
    # pairs never cross graphs
    assert torch.equal(b.pairs.node_graph[b.pairs.senders], b.pairs.node_graph[b.pairs.receivers])


def test_hop_eccentricity_and_steps():
    ex = tie_example()
    assert hop_eccentricity(4, ex.edge_index, 0) == 2  # 0 -> 2 -> 3
    assert processor_steps(np.array([2, 10]), 1.25, 2).tolist() == [5, 15]
    assert processor_steps(np.array([2, 10]), 1.25, 2, fixed=7).tolist() == [7, 7]


def test_segment_softmax_and_argmax():
    logits = torch.tensor([1.0, 3.0, 0.5, 2.0, 2.0])
    index = torch.tensor([0, 0, 1, 2, 2])
    logp = segment_log_softmax(logits, index, 3)
    for g in range(3):
        assert logp[index == g].exp().sum().item() == pytest.approx(1.0)
    assert logp[2].item() == pytest.approx(0.0)
    assert segment_argmax(logits, index, 3).tolist() == [1, 2, 3]  # ties: the lowest position
