"""What every processor shares: its config and its call signature.

A processor is one message-passing step on dense, padded graphs::

    hidden', edges' = processor(node_fts, edge_fts, graph_fts, adj, hidden, node_mask)

    node_fts  (B, N, H)     encoded inputs and hints of this step
    edge_fts  (B, N, N, H)  a tensor or an EdgeFeatures (see nar.models.layers)
    graph_fts (B, H)
    adj       (B, N, N)     bool, adj[b, s, r]: node s sends to node r (self-loops included;
                            padded nodes send to nobody but themselves)
    hidden    (B, N, H)     the previous step's processor state (zeros at step 0)
    node_mask (B, N)        bool, the real (not padded) nodes
    -> hidden' (B, N, H), edges' (B, N, N, H) or None (edge latents for the decoders)

It holds no encoder or decoder weights, so its ``state_dict`` and ``config`` are all it
takes to save it, freeze it and wrap it in new encoders and decoders (``nar.registry``).
Layouts follow CLRS: message tensors are (B, senders, receivers, H).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

from torch import Tensor, nn

from nar.models.layers import EdgeFeatures

GATED_BY_DEFAULT = {"mpnn": False, "gmpnn": True, "triplet_gmpnn": True}
SPARSE_KINDS = ("mpnn", "gmpnn")  # kinds with a step on edge lists (``forward_sparse``)


@dataclass(frozen=True)
class ProcessorConfig:
    """Architecture of a processor; everything needed to rebuild it from its weights.

    kind: a key of ``nar.models.processors.PROCESSORS``.
    hidden: width H of node, edge and graph latents.
    layer_norm: LayerNorm on the updated node states (CLRS ``use_ln``).
    gated: gated update (Ibarz et al. 2022); ``None`` means the kind's default
        (False for mpnn, True for gmpnn and triplet_gmpnn); stored resolved.
    msg_mlp_layers: linear layers applied to ReLU(message) before aggregation; CLRS uses 2
        (``msgs_mlp_sizes=[H, H]``), 0 keeps the single linear message.
    triplet_features: width of triplet features (triplet_gmpnn only; 8 in Ibarz et al.).
    full_adjacency: pass messages between all pairs of real nodes, as CLRS's ``mpnn`` does;
        False masks them by the input graph plus self-loops (CLRS's ``pgn``).
    global_max: every node also reads the max over its graph's nodes of a projection of their states
        (mpnn and gmpnn): a global choice (the queued node of least key: Dijkstra's, Prim's) in O(N) a
        step, where all-pairs messages take O(N²); it keeps the sparse step.
    """

    kind: str = "triplet_gmpnn"
    hidden: int = 128
    layer_norm: bool = True
    gated: bool | None = None
    msg_mlp_layers: int = 2
    triplet_features: int = 8
    full_adjacency: bool = False
    global_max: bool = False

    def __post_init__(self) -> None:
        if self.kind not in GATED_BY_DEFAULT:
            raise ValueError(f"processor kind {self.kind!r} is unknown; allowed: {sorted(GATED_BY_DEFAULT)}")
        if self.gated is None:
            object.__setattr__(self, "gated", GATED_BY_DEFAULT[self.kind])
        if self.hidden < 1:
            raise ValueError(f"processor hidden must be >= 1, got {self.hidden}")
        if self.msg_mlp_layers < 0:
            raise ValueError(f"processor msg_mlp_layers must be >= 0, got {self.msg_mlp_layers}")
        if self.triplet_features < 1:
            raise ValueError(f"processor triplet_features must be >= 1, got {self.triplet_features}")
        if self.global_max and self.kind not in SPARSE_KINDS:
            raise ValueError(f"processor global_max needs kind mpnn or gmpnn, got {self.kind!r}")

    @property
    def sparse_capable(self) -> bool:
        """Whether the processor has a step on edge lists: all-pairs messages are O(N²) by definition."""
        return self.kind in SPARSE_KINDS and not self.full_adjacency

    #: fields added after processor.json's first registered versions: written only when they differ from their
    #: default, so a config written before them reads, hashes (``config_sha256``) and loads as it was
    LATER_FIELDS = ("global_max",)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for name in self.LATER_FIELDS:
            if d[name] == type(self).__dataclass_fields__[name].default:
                del d[name]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProcessorConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"processor config: unknown keys {sorted(unknown)}; allowed: {sorted(known)}")
        return cls(**data)


class ProcessorOutput(NamedTuple):
    hidden: Tensor  # (B, N, H)
    edges: Tensor | None  # (B, N, N, H) edge latents for the decoders, or None


class Processor(nn.Module):
    """Base class: ``forward(node_fts, edge_fts, graph_fts, adj, hidden, node_mask) -> ProcessorOutput``."""

    config: ProcessorConfig

    #: width of the edge latents this processor returns (0 when it returns none)
    edge_out_dim: int = 0

    @property
    def supports_sparse(self) -> bool:
        """Whether ``forward_sparse`` (one step on an edge list, ``nar.models.sparse``) is available."""
        return self.config.sparse_capable

    def __init__(self, config: ProcessorConfig) -> None:
        super().__init__()
        self.config = config

    def forward(
        self,
        node_fts: Tensor,
        edge_fts: EdgeFeatures | Tensor,
        graph_fts: Tensor,
        adj: Tensor,
        hidden: Tensor,
        node_mask: Tensor,
    ) -> ProcessorOutput:
        raise NotImplementedError
