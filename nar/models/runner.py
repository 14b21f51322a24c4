"""A processor run for each graph's own number of steps on a flat batch (the core's edge lists).

::

    runner = ProcessorRunner(processor)          # mode "auto": sparse when the processor can
    h = runner(node_fts, pair_fts, graph_fts, pairs, steps)

    node_fts  (V, H)   encoded node features        pair_fts  (P, H)  one row per message pair
    graph_fts (G, H)   graph features               pairs     nar.models.layers.Pairs
    steps     (G,)     processor steps of each graph (graph g's nodes stop updating after steps[g])
    -> h      (V, H)   each node's state after its graph's steps, from h^0 = 0

The entry point is the processors' sparse step (``forward_sparse``: O(pairs), about 50x less
work than dense on grids). Processors without one (triplet_gmpnn, full adjacency) run through
the dense adapter: the flat batch scattered into the (B, N, N, H) layout of ``forward`` and
gathered back. Either way each graph gets exactly what it would get alone. The transfer models
(``nar.transfer.models``) are this runner between their own encoders and decoders.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from nar.models.layers import EdgeFeatures, Pairs
from nar.models.processors import Processor


class ProcessorRunner(nn.Module):
    """Runs ``processor`` for each graph's number of steps on a flat batch (module docstring)."""

    def __init__(self, processor: Processor, mode: Literal["auto", "sparse", "dense"] = "auto") -> None:
        super().__init__()
        self.processor = processor
        if mode == "sparse" and not processor.supports_sparse:
            raise ValueError(f"a {processor.config.kind} processor cannot run sparsely")
        self.sparse = mode != "dense" and processor.supports_sparse

    def forward(self, node: Tensor, pair_fts: Tensor, graph: Tensor, pairs: Pairs, steps: Tensor) -> Tensor:
        """Final processor state (V, H) after each graph's ``steps`` (G,)."""
        S = int(steps.max()) if len(steps) else 0
        hidden = torch.zeros_like(node)
        if not self.sparse:
            return self._dense(node, pair_fts, graph, pairs, steps, S)
        edges = EdgeFeatures(pair_fts)  # (P, H): its linear maps are computed once, not every step
        ragged = bool((steps != S).any())
        node_steps = steps[pairs.node_graph]  # (V,)
        for t in range(S):
            new = self.processor.forward_sparse(node, edges, graph, pairs, hidden).hidden
            hidden = torch.where((node_steps > t).unsqueeze(-1), new, hidden) if ragged else new
        return hidden

    def _dense(self, node: Tensor, pair_fts: Tensor, graph: Tensor, pairs: Pairs, steps: Tensor, S: int) -> Tensor:
        """The dense adapter: scatter to (B, N, ...), run ``forward`` S times, gather the real nodes."""
        sizes = torch.bincount(pairs.node_graph, minlength=pairs.num_graphs)  # (B,) nodes per graph
        B, N, H = pairs.num_graphs, int(sizes.max()), node.shape[-1]
        offset = torch.cumsum(sizes, 0) - sizes  # (B,) first global node of each graph
        gi = pairs.node_graph
        li = torch.arange(pairs.num_nodes, device=node.device) - offset[gi]  # (V,) local index
        node_d = node.new_zeros(B, N, H).index_put((gi, li), node)
        mask = torch.zeros(B, N, dtype=torch.bool, device=node.device).index_put((gi, li), torch.tensor(True))
        ps, pd = li[pairs.senders], li[pairs.receivers]
        edge_d = node.new_zeros(B, N, N, H).index_put((pairs.graph, ps, pd), pair_fts)
        adj = torch.zeros(B, N, N, dtype=torch.bool, device=node.device)
        adj = adj.index_put((pairs.graph, ps, pd), torch.tensor(True)) | torch.eye(N, dtype=torch.bool)
        hidden = node.new_zeros(B, N, H)
        for t in range(S):
            new = self.processor(node_d, edge_d, graph, adj, hidden, mask).hidden
            hidden = torch.where((steps > t)[:, None, None], new, hidden)
        return hidden[gi, li]
