"""Linear encoders built from an algorithm's spec (CLRS-30, Veličković et al. 2022).

Every input field, and every hint field when hints are encoded, has its own linear map
into the hidden space; the results are summed per location:

=============================  ==========================  =======================
field                          encoded from                added to
=============================  ==========================  =======================
node scalar/mask/mask_one      (B, N, 1)                   node features (B, N, H)
node categorical               one-hot (B, N, C)           node features
node pointer                   one-hot over nodes (B,N,N,1) edge features (B,N,N,H)
edge scalar/mask               (B, N, N, 1)                edge features
edge categorical               (B, N, N, C)                edge features
edge pointer  Π[i, j] = k      two maps of the one-hot,    edge features
                               averaged over i and over j
graph scalar/mask/categorical  (B, 1) / (B, C)             graph features (B, H)
=============================  ==========================  =======================

Pointers are encoded as edges (node i -> node Π_i), as CLRS does. Fed-back hints arrive as
probabilities (softmax rows for pointers), which the same maps accept. A message j -> i then
tells i that j points to it, never whom i points to: i must remember its own pointer in its
latent. ``pointer_both_ways`` adds a second map of node pointers on the reverse pair, so the
message j -> i also carries "i points to j". ``along_slack`` adds, for each scalar hint that
follows a pointer (``Field.along``), one more pair channel per step: its relaxation slack
(``model.along_slack``), computed by the model from the fed value and the edge weights.

Inputs are encoded once per trajectory; per step only the hints are. Edge hints are
returned as channels + weights (see ``EdgeFeatures``) so that nothing (B, N, N, H)-sized
is built per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nar.algorithms.spec import AlgorithmSpec, Field, Location, Stage, Type
from nar.models.layers import Pairs, linear


def field_width(f: Field) -> int:
    """Channels of one entry of a field as the encoders see it."""
    return f.num_categories if f.type == Type.CATEGORICAL else 1


def to_features(f: Field, value: Tensor, num_nodes: int) -> Tensor:
    """Batch data of one field (one time step) -> the float form the encoders take.

    Pointers become one-hot rows over ``num_nodes`` nodes: node (B, N) -> (B, N, N),
    edge (B, N, N) -> (B, N, N, N). Everything else is already float (collate).
    """
    if f.type == Type.POINTER:
        return F.one_hot(value, num_nodes).to(torch.float32)
    return value.to(torch.float32)


@dataclass
class StepEncoding:
    """One step's encoded hints: node (B, N, H), graph (B, H) and edge channels.

    ``edge_x`` (B, N, N, C) and ``edge_w`` (H, C): the edge hints' contribution is
    ``edge_x @ edge_w.T`` (their biases are folded into the per-trajectory edge base).
    """

    node: Tensor | None
    graph: Tensor | None
    edge_x: Tensor | None
    edge_w: Tensor | None


class SpecEncoder(nn.Module):
    """The encoders of one algorithm: ``encode_inputs`` once, ``encode_hints`` every step."""

    def __init__(
        self,
        spec: AlgorithmSpec,
        hidden: int,
        encode_hints: bool = True,
        pointer_both_ways: bool = False,
        along_slack: bool = False,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.hidden = hidden
        self.pointer_both_ways = pointer_both_ways
        self.input_fields = spec.inputs
        self.hint_fields = spec.hints if encode_hints else ()
        # the hints whose slack is a pair channel (``model.along_slack``); their maps are "<name>_slack"
        self.slack_fields = tuple(f for f in self.hint_fields if f.along is not None) if along_slack else ()
        self.layers = nn.ModuleDict()
        for f in (*self.input_fields, *self.hint_fields):
            # CLRS's "xavier_on_scalars": scalar hints get std 1/sqrt(H), not 1 (fan-in 1)
            std = 1.0 / hidden**0.5 if (f.stage == Stage.HINT and f.type == Type.SCALAR) else None
            n_maps = 2 if f.type == Type.POINTER and (f.location == Location.EDGE or pointer_both_ways) else 1
            maps = [linear(field_width(f), hidden, std=std) for _ in range(n_maps)]
            self.layers[f.name] = maps[0] if n_maps == 1 else nn.ModuleList(maps)
        for f in self.slack_fields:
            self.layers[slack_layer(f)] = linear(1, hidden, std=1.0 / hidden**0.5)

    # ------------------------------------------------------------------------- inputs
    def encode_inputs(self, inputs: dict[str, Tensor], node_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Inputs -> node (B, N, H), edge (B, N, N, H), graph (B, H) features.

        The edge features also carry the constant biases of the edge hint encoders, so a
        step only adds ``edge_x @ edge_w.T``.
        """
        B, N = node_mask.shape
        feats = {f.name: to_features(f, inputs[f.name], N) for f in self.input_fields}
        return self._sum_inputs(feats, (B, N), (B, N, N), (B,), node_mask, transpose_pairs)

    def encode_inputs_sparse(self, inputs: dict[str, Tensor], pairs: Pairs) -> tuple[Tensor, Tensor, Tensor]:
        """The same on a flat batch (``nar.models.sparse``): node (V, H), edge (P, H), graph (G, H)."""
        from nar.models.sparse import sparse_features

        feats = {f.name: sparse_features(f, inputs[f.name], pairs) for f in self.input_fields}
        shapes = (pairs.num_nodes,), (pairs.num_pairs,), (pairs.num_graphs,)
        return self._sum_inputs(feats, *shapes, None, reverse_pairs(pairs))

    def _sum_inputs(
        self,
        feats: dict[str, Tensor],
        node_shape: tuple[int, ...],
        edge_shape: tuple[int, ...],
        graph_shape: tuple[int, ...],
        node_mask: Tensor | None,
        reverse: Reverse,
    ) -> tuple[Tensor, Tensor, Tensor]:
        dev = next(iter(feats.values())).device if feats else None
        node = torch.zeros(*node_shape, self.hidden, device=dev)
        edge = torch.zeros(*edge_shape, self.hidden, device=dev)
        graph = torch.zeros(*graph_shape, self.hidden, device=dev)
        for f in self.input_fields:
            kind, value = self._encode(f, feats[f.name], node_mask, reverse)
            if kind == "node":
                node = node + value
            elif kind == "graph":
                graph = graph + value
            else:  # edge channels: materialise (once per trajectory)
                xs, ws, bias = value
                edge = edge + F.linear(xs, ws) + bias
        bias = self._edge_hint_bias()
        if bias is not None:
            edge = edge + bias
        return node, edge, graph

    # -------------------------------------------------------------------------- hints
    def encode_hints(
        self,
        hints: dict[str, Tensor],
        node_mask: Tensor | None,
        reverse: Reverse = None,
        slack: dict[str, Tensor] | None = None,
    ) -> StepEncoding:
        """One step's hints, in feature form (``to_features`` or fed-back probabilities).

        Dense (B, N, ...) with ``node_mask``, or flat (V / P / G, ...) with ``node_mask=None``
        (``nar.models.sparse``): every map is per entry, so one code path serves both.
        ``reverse`` maps a pair feature to the reverse pairs' (``transpose_pairs`` dense,
        ``reverse_pairs`` flat); needed with ``pointer_both_ways``. ``slack``: each of
        ``slack_fields``' pair channel, (B, N, N) [sender, receiver] or flat (P,).
        """
        node = graph = None
        xs: list[Tensor] = []
        ws: list[Tensor] = []
        for f in self.hint_fields:
            kind, value = self._encode(f, hints[f.name], node_mask, reverse)
            if kind == "node":
                node = value if node is None else node + value
            elif kind == "graph":
                graph = value if graph is None else graph + value
            else:
                x, w, _ = value
                xs.append(x)
                ws.append(w)
        if self.slack_fields and slack is None:
            raise ValueError(f"{self.spec.name}: along_slack is on, the step's slack channels are needed")
        for f in self.slack_fields:
            xs.append(slack[f.name].unsqueeze(-1))  # type: ignore[index]  # (B, N, N, 1) / (P, 1)
            ws.append(self.layers[slack_layer(f)].weight)  # (H, 1)
        if not xs:
            return StepEncoding(node, graph, None, None)
        return StepEncoding(node, graph, torch.cat(xs, dim=-1), torch.cat(ws, dim=1))

    def _edge_hint_bias(self) -> Tensor | None:
        biases = [self.layers[slack_layer(f)].bias for f in self.slack_fields]
        for f in self.hint_fields:
            if _is_edge_encoded(f):
                layer = self.layers[f.name]
                for m in layer if isinstance(layer, nn.ModuleList) else [layer]:
                    biases.append(m.bias)
        return torch.stack(biases).sum(0) if biases else None

    def _encode(self, f: Field, x: Tensor, node_mask: Tensor | None, reverse: Reverse = None):
        """-> ("node", (B,N,H)) | ("graph", (B,H)) | ("edge", (channels, weights, bias)); flat alike."""
        layer = self.layers[f.name]
        if f.location == Location.GRAPH:
            return "graph", layer(x if f.type == Type.CATEGORICAL else x.unsqueeze(-1))
        if f.location == Location.NODE and f.type != Type.POINTER:
            return "node", layer(x if f.type == Type.CATEGORICAL else x.unsqueeze(-1))
        if f.location == Location.EDGE and f.type == Type.POINTER:
            # x: (B, N_i, N_j, N_k) rows over k. CLRS averages the two maps of the one-hot
            # over i and over j; padded i / j rows are excluded and the mean is over real nodes.
            if node_mask is None:
                raise ValueError(f"edge pointer {f.name!r} cannot be encoded on a flat batch")
            m = node_mask.to(x.dtype)
            n = m.sum(1).clamp(min=1)[:, None, None, None]  # (B, 1, 1, 1)
            over_i = (x * m[:, :, None, None]).sum(1, keepdim=False).unsqueeze(-1) / n  # (B, N_j, N_k, 1)
            over_j = (x * m[:, None, :, None]).sum(2, keepdim=False).unsqueeze(-1) / n  # (B, N_i, N_k, 1)
            w = torch.cat([layer[0].weight, layer[1].weight], dim=1)  # (H, 2)
            return "edge", (torch.cat([over_i, over_j], dim=-1), w, layer[0].bias + layer[1].bias)
        if isinstance(layer, nn.ModuleList):  # a node pointer both ways: x[i, j] = "i points to j" (B, N, N)
            if reverse is None:
                raise ValueError(f"pointer {f.name!r} is encoded both ways: the reverse pairs are needed")
            chan = torch.stack([x, reverse(x)], dim=-1)  # (B, N, N, 2): pair j -> i also gets "i points to j"
            w = torch.cat([layer[0].weight, layer[1].weight], dim=1)  # (H, 2)
            return "edge", (chan, w, layer[0].bias + layer[1].bias)
        # node pointers (one-hot rows (B, N, N)) and edge scalar/mask/categorical
        chan = x if f.type == Type.CATEGORICAL else x.unsqueeze(-1)  # (B, N, N, c)
        return "edge", (chan, layer.weight, layer.bias)


#: a pair feature -> the same feature of each pair's reverse pair, or None where not needed
Reverse = Callable[[Tensor], Tensor] | None


def transpose_pairs(x: Tensor) -> Tensor:
    """Dense pair features (B, N, N[, ...]) [sender, receiver] -> those of the reverse pairs."""
    return x.transpose(1, 2)


def reverse_pairs(pairs: Pairs) -> Callable[[Tensor], Tensor]:
    """Flat pair features (P[, ...]) -> those of the reverse pairs. Refuses pairs without a reverse
    (``pairs.reverse`` -1, e.g. a one-way edge in a hand-built flat batch) when used, rather than read
    the last pair's feature in their place."""

    def reverse(x: Tensor) -> Tensor:
        if bool((pairs.reverse < 0).any()):
            raise ValueError("pointers encoded both ways need every message pair's reverse pair; some have none")
        return x[pairs.reverse]

    return reverse


def slack_layer(f: Field) -> str:
    """The name of the map of ``f``'s slack channel (``along_slack``)."""
    return f"{f.name}_slack"


def _is_edge_encoded(f: Field) -> bool:
    return f.location == Location.EDGE or (f.location == Location.NODE and f.type == Type.POINTER)
