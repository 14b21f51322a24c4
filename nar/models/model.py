"""The encode-process-decode model (Veličković & Blundell 2021; CLRS-30 ``BaselineModel``).

One processor, shared by every algorithm the model knows; one ``SpecEncoder`` and one
``SpecDecoder`` per algorithm. For a batch of one algorithm, with T hint steps::

    x_0 = ground-truth hints at step 0
    for t in 0 .. S-1:                       S = max(1, T - 1) processor steps
        node, edge, graph = encode(inputs) + encode(x_t)
        h_{t+1}, e' = processor(node, edge, graph, adj, h_t)
        ŷ_{t+1} = decode_hints([node ‖ h_t ‖ h_{t+1}], [edge ‖ e'], graph)
        x_{t+1} = postprocess(ŷ_{t+1})        no teacher forcing (CLRS default); soft:
                                             probabilities, gradients flow through them
    output of graph b = decode_outputs at its own last step max(1, T_b - 1) - 1

Graphs are sorted by trajectory length, so that at each step only the graphs still running
(a prefix of the batch) are computed on, and each graph's outputs are decoded once, at its
own last step. Every graph of a padded batch gets exactly what it would get alone: padded
nodes send no messages and are excluded from every max, softmax and mean.

``adj`` (who sends messages to whom) is the CLRS rule: self-loops, plus every edge-mask
input and every node-pointer input, symmetrised; with neither, all real nodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nar.algorithms.spec import AlgorithmSpec, Field, Location, Type
from nar.data.batching import Batch
from nar.models.decoders import SpecDecoder, postprocess
from nar.models.encoders import SpecEncoder, reverse_pairs, to_features, transpose_pairs
from nar.models.layers import EdgeFeatures, Pairs, autocast
from nar.models.processors import Processor, ProcessorConfig, build_processor
from nar.models.sparse import (
    SparseBatch,
    SparsePrediction,
    eccentricity_scale,
    edge_mask_input,
    feature_graph,
    from_dense,
    mean_edge_weight,
    pointer_choice,
    scale_weights,
    sparse_features,
    sparse_postprocess,
    to_dense,
    weight_input,
)

# weight_scale -> the typical edge weight its scale multiplies the hop eccentricity by (eccentricity_scale)
WEIGHT_SCALES = {"none": None, "eccentricity": "mean", "eccentricity_rms": "rms"}


@dataclass(frozen=True)
class ModelConfig:
    """Everything but the processor's own architecture.

    encode_hints / decode_hints: CLRS's "encoded_decoded" hint mode when both are true.
    hint_feedback: how decoded hints are fed back: "soft" (probabilities, gradients flow;
        CLRS's default), "hard" (argmax / threshold, no gradients) or "hard_on_eval" (soft
        while training, hard in eval mode).
    precision: "bfloat16" runs the matrix products under autocast (bf16 on CPUs with
        AVX512-BF16 or AMX, and on GPUs); "float32" is exact (tests, reference runs).
    messages: "dense" runs every step on (B, N, N, H) tensors (CLRS's layout, any processor);
        "sparse" on the graphs' edge lists (``nar.models.sparse``: O(edges), the MPNN family
        without full_adjacency; pointers choose among a node's neighbours and itself).
    weight_scale: "eccentricity" divides every field in weight units (``Field.weight_unit``:
        weights, distances, keys) of a graph by c = (hop eccentricity of the source) x (mean
        edge weight), so distances stay O(1) on graphs of any size; scalar logits of those
        fields are then in these units (``Prediction.weight_scale`` holds c). Pointers do not
        change when all weights scale. Sparse messages only. "eccentricity_rms": the same with the
        root-mean-square edge weight (long edges weigh more: distances stay O(1) on graphs with a heavy
        tail of long edges too, ``eccentricity_scale``). "none": the raw weights.
    carry_hidden: whether each step starts from the previous step's processor latent (CLRS).
        False: from zeros, so everything a node remembers between steps lies in the hints fed
        back; with hard feedback of discrete hints a step is then a fixed rule on discrete
        states, which cannot drift over rollouts longer than the training graphs' (a settled
        BFS pointer held in the latent flips after about 100 steps; README "Scale").
    pointer_both_ways: node pointer hints are also encoded on the reverse pair, so the message
        j -> i tells i whom it points to (``encoders``); what carry_hidden: false needs.
    scalars_along_pointers: a scalar hint that follows a pointer hint (``Field.along``: distances,
        Prim's keys) is fed back as the pointer says, not as decoded: d_i = d_j(previous step) +
        w(j -> i) for the j that i points to (its expectation under soft feedback). With hard
        feedback the state between steps is then exact: the network decides the pointers, and no
        regression error of a decoded distance accumulates over steps (decoded distances are
        still trained and returned). What a discrete-state Bellman-Ford needs (README "Scale").
    weight_scale_jitter: while training only, each graph's scale c (``weight_scale``) is multiplied by
        U[1 - jitter, 1], so distances in c's units reach 1 / (1 - jitter) times their natural range: exact
        distances fed along pointers on a big or one-way graph exceed what small training graphs show.
    along_slack: each step, every pair j -> i also gets, for each scalar hint v that follows a pointer
        (``Field.along``), the slack softsign((v via j - v_i) / mean edge weight), with v via j = v_j + w(j -> i)
        for a path (distances) and w(j -> i) for an edge (Prim's keys); 1 on pairs that are no edge, 0 on
        the self pair. Why: with distances in units of the graph's depth (``weight_scale``) the choices
        that go wrong at n = 256 are near-ties 0.02-0.07 mean edge weights apart, finer than the latent
        resolves; in mean-weight units, relative to i's own value, they are O(1) apart at any size.
    """

    processor: ProcessorConfig = field(default_factory=ProcessorConfig)
    encode_hints: bool = True
    decode_hints: bool = True
    hint_feedback: Literal["soft", "hard", "hard_on_eval"] = "soft"
    precision: Literal["float32", "bfloat16"] = "float32"
    messages: Literal["dense", "sparse"] = "dense"
    weight_scale: Literal["none", "eccentricity", "eccentricity_rms"] = "none"
    carry_hidden: bool = True
    pointer_both_ways: bool = False
    scalars_along_pointers: bool = False
    weight_scale_jitter: float = 0.0
    along_slack: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.processor, Mapping):
            object.__setattr__(self, "processor", ProcessorConfig.from_dict(dict(self.processor)))
        if self.hint_feedback not in ("soft", "hard", "hard_on_eval"):
            raise ValueError(f"model hint_feedback {self.hint_feedback!r}; allowed: 'soft', 'hard', 'hard_on_eval'")
        if self.precision not in ("float32", "bfloat16"):
            raise ValueError(f"model precision {self.precision!r}; allowed: 'float32', 'bfloat16'")
        if self.messages not in ("dense", "sparse"):
            raise ValueError(f"model messages {self.messages!r}; allowed: 'dense', 'sparse'")
        if self.messages == "sparse" and not self.processor.sparse_capable:
            raise ValueError(
                "model messages 'sparse' needs a processor of kind mpnn or gmpnn with full_adjacency: false "
                f"(got kind {self.processor.kind!r}, full_adjacency {self.processor.full_adjacency})"
            )
        if self.weight_scale not in WEIGHT_SCALES:
            allowed = ", ".join(map(repr, WEIGHT_SCALES))
            raise ValueError(f"model weight_scale {self.weight_scale!r}; allowed: {allowed}")
        if self.weight_scale != "none" and self.messages != "sparse":
            raise ValueError(f"model weight_scale {self.weight_scale!r} needs messages: sparse")
        if not isinstance(self.pointer_both_ways, bool):
            raise ValueError(f"model pointer_both_ways must be true or false, got {self.pointer_both_ways!r}")
        if not isinstance(self.carry_hidden, bool):
            raise ValueError(f"model carry_hidden must be true or false, got {self.carry_hidden!r}")
        if not isinstance(self.scalars_along_pointers, bool):
            raise ValueError(f"model scalars_along_pointers must be true or false, got {self.scalars_along_pointers!r}")
        if self.scalars_along_pointers and not self.encode_hints:
            raise ValueError(
                "model scalars_along_pointers: true needs encode_hints: true (it changes the hints fed back)"
            )
        if not isinstance(self.along_slack, bool):
            raise ValueError(f"model along_slack must be true or false, got {self.along_slack!r}")
        if self.along_slack and not self.encode_hints:
            raise ValueError("model along_slack: true needs encode_hints: true (the slack is a hint channel)")
        if isinstance(self.weight_scale_jitter, bool) or not isinstance(self.weight_scale_jitter, int | float):
            raise ValueError(f"model weight_scale_jitter must be a number in [0, 1), got {self.weight_scale_jitter!r}")
        if not 0.0 <= self.weight_scale_jitter < 1.0:
            raise ValueError(f"model weight_scale_jitter must lie in [0, 1), got {self.weight_scale_jitter!r}")
        if self.weight_scale_jitter and self.weight_scale == "none":
            raise ValueError("model weight_scale_jitter needs a weight_scale (eccentricity or eccentricity_rms)")
        if not self.carry_hidden and not self.encode_hints:
            raise ValueError("model carry_hidden: false needs encode_hints: true (no other state between steps)")
        if self.encode_hints and not self.decode_hints:
            raise ValueError("model: encode_hints without decode_hints is not supported (nothing to feed back)")

    @property
    def hidden(self) -> int:
        return self.processor.hidden

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"model config: unknown keys {sorted(unknown)}; allowed: {sorted(known)}")
        return cls(**dict(data))


@dataclass
class Prediction:
    """Logits (float32) of one forward pass.

    outputs: per output field, at each graph's last step: node (B, N[, C]), node pointer
        (B, N, N), edge (B, N, N[, C]), edge pointer (B, N, N, N), graph (B[, C]).
    hints: per decoded hint field, (B, S, ...) for hint steps 1..S (step t+1 is predicted
        by processor step t); zeros after a graph's own last step (never scored).
    """

    outputs: dict[str, Tensor]
    hints: dict[str, Tensor]
    weight_scale: Tensor | None = None  # (B,): scalar logits of weight-unit fields are in units of this


def message_adjacency(spec: AlgorithmSpec, inputs: Mapping[str, Tensor], node_mask: Tensor) -> Tensor:
    """(B, N, N) bool: adj[b, s, r] if s sends to r (CLRS rule, symmetrised, with self-loops)."""
    B, N = node_mask.shape
    adj = torch.zeros(B, N, N, dtype=torch.bool, device=node_mask.device)
    found = False
    for f in spec.inputs:
        if f.location == Location.EDGE and f.type == Type.MASK:
            a = inputs[f.name] > 0
        elif f.location == Location.NODE and f.type == Type.POINTER:
            a = torch.nn.functional.one_hot(inputs[f.name], N).bool()
        else:
            continue
        adj |= a | a.transpose(1, 2)
        found = True
    real = node_mask.unsqueeze(2) & node_mask.unsqueeze(1)
    adj = adj & real if found else real
    return adj | torch.eye(N, dtype=torch.bool, device=adj.device)


class EncodeProcessDecode(nn.Module):
    """``forward(batch) -> Prediction``. ``self.processor`` is separable (own config and weights)."""

    def __init__(self, specs: AlgorithmSpec | Sequence[AlgorithmSpec], config: ModelConfig) -> None:
        super().__init__()
        if isinstance(specs, AlgorithmSpec):
            specs = [specs]
        self.config = config
        self.specs = {s.name: s for s in specs}
        self.processor: Processor = build_processor(config.processor)
        H = config.hidden
        edge_dims = (self.processor.edge_out_dim,) if self.processor.edge_out_dim else ()
        both_ways = config.pointer_both_ways
        if config.along_slack and not any(f.along for s in specs for f in s.hints):
            raise ValueError(
                f"model along_slack: none of {[s.name for s in specs]} has a scalar hint that follows a pointer"
            )
        self.encoders = nn.ModuleDict(
            {s.name: SpecEncoder(s, H, config.encode_hints, both_ways, config.along_slack) for s in specs}
        )
        self.decoders = nn.ModuleDict({s.name: SpecDecoder(s, H, config.decode_hints, edge_dims) for s in specs})

    def forward(self, batch: Batch, teacher_forcing: float = 0.0) -> Prediction:
        """Run every step of ``batch``'s algorithm.

        teacher_forcing: probability, per graph and step, of feeding the ground-truth hint
        instead of the decoded one (training only; 0 is the CLRS default).
        """
        try:
            enc: SpecEncoder = self.encoders[batch.algorithm]
            dec: SpecDecoder = self.decoders[batch.algorithm]
        except KeyError:
            raise KeyError(f"model has no encoders for {batch.algorithm!r}; it knows {sorted(self.specs)}") from None
        spec = self.specs[batch.algorithm]
        node_mask = batch.node_mask
        if self.config.messages == "sparse":
            sb = from_dense(spec, batch, message_adjacency(spec, batch.inputs, node_mask))
            sparse = self.forward_sparse(sb, teacher_forcing)
            dense = to_dense(spec, sparse, sb, node_mask)
            return Prediction(outputs=dense["outputs"], hints=dense["hints"], weight_scale=sparse.weight_scale)
        with autocast(self.config.precision, node_mask.device.type):
            return self._run(spec, enc, dec, batch, teacher_forcing)

    def forward_sparse(
        self, batch: SparseBatch, teacher_forcing: float = 0.0, keep_hints: bool = True
    ) -> SparsePrediction:
        """Run every step of a flat batch on its edge lists (``nar.models.sparse``).

        Each graph runs max(1, T_b - 1) steps as in ``forward``; all graphs step together
        and each graph's outputs are decoded from its own last step. Works whatever
        ``config.messages`` says (a dense-trained model runs sparsely and vice versa).
        ``keep_hints=False`` (inference on big graphs) returns no hint logits: keeping a few
        small tensors per step between the big transient ones fragments the C heap (measured:
        +0.45 MB resident per step at 1,024 nodes).
        """
        try:
            enc: SpecEncoder = self.encoders[batch.algorithm]
            dec: SpecDecoder = self.decoders[batch.algorithm]
        except KeyError:
            raise KeyError(f"model has no encoders for {batch.algorithm!r}; it knows {sorted(self.specs)}") from None
        if self.config.weight_scale != "none":
            spec = self.specs[batch.algorithm]
            scale = eccentricity_scale(spec, batch, WEIGHT_SCALES[self.config.weight_scale])  # (G,)
            if self.training and self.config.weight_scale_jitter:
                jitter = self.config.weight_scale_jitter
                scale = scale * ((1.0 - jitter) + jitter * torch.rand_like(scale))
            batch = scale_weights(spec, batch, scale)
        with autocast(self.config.precision, batch.lengths.device.type):
            return self._run_sparse(enc, dec, batch, teacher_forcing, keep_hints)

    def _run_sparse(
        self, enc: SpecEncoder, dec: SpecDecoder, batch: SparseBatch, teacher_forcing: float, keep_hints: bool
    ) -> SparsePrediction:
        pairs = batch.pairs
        V, H = pairs.num_nodes, self.config.hidden
        last = (batch.lengths - 1).clamp(min=1) - 1  # (G,) step whose outputs count
        ends = set(last.tolist())
        S = max(ends) + 1
        node_in, edge_in, graph_in = enc.encode_inputs_sparse(batch.inputs, pairs)  # (V, H), (P, H), (G, H)
        edges = EdgeFeatures(edge_in)
        hidden = torch.zeros(V, H, device=node_in.device)
        reverse = reverse_pairs(pairs)
        slack = SlackSparse(enc, batch) if enc.slack_fields else None
        hints_t = {f.name: sparse_features(f, batch.hints[f.name][:, 0], pairs) for f in enc.hint_fields}
        hint_logits: dict[str, list[Tensor]] = {f.name: [] for f in dec.hint_fields}
        h_out = x_out = g_out = None  # each graph's decoder inputs at its own last step
        for t in range(S):
            step = enc.encode_hints(hints_t, None, reverse, None if slack is None else slack(hints_t))
            node_fts = node_in if step.node is None else node_in + step.node  # (V, H)
            graph_fts = graph_in if step.graph is None else graph_in + step.graph  # (G, H)
            step_edges = edges.with_step(step.edge_x, step.edge_w)  # (P, H), lazily
            nxt = self.processor.forward_sparse(node_fts, step_edges, graph_fts, pairs, hidden).hidden
            h = torch.cat([node_fts.to(nxt.dtype), hidden.to(nxt.dtype), nxt], dim=-1)  # (V, 3H)
            preds = dec.forward_sparse("hints", h, [step_edges], graph_fts, pairs)
            for name, logits in preds.items() if keep_hints else ():
                # contiguous: a scalar/mask logit is a strided view of the step's whole (V, widths)
                # projection and would keep it alive until the end of the run (~0.5 MB a step at V = 1,024)
                hint_logits[name].append(logits.contiguous())
            if t in ends:
                if len(ends) == 1:
                    h_out, x_out, g_out = h, step.edge_x, graph_fts
                else:
                    done = last == t  # (G,)
                    h_out = _keep(done[pairs.node_graph], h, h_out)
                    x_out = None if step.edge_x is None else _keep(done[pairs.graph], step.edge_x, x_out)
                    g_out = _keep(done, graph_fts, g_out)
            hidden = nxt if self.config.carry_hidden else torch.zeros_like(nxt)
            if t + 1 < S and enc.hint_fields:
                hints_t = self._next_hints_sparse(enc, preds, batch, t + 1, teacher_forcing, hints_t)
        out_edges = edges.with_step(x_out, None if x_out is None else step.edge_w)
        outputs = dec.forward_sparse("outputs", h_out, [out_edges], g_out, pairs)
        hints = {k: torch.stack(v, dim=1) for k, v in hint_logits.items() if v}  # (V / P / G, S, ...)
        return SparsePrediction(
            outputs=outputs,
            hints=hints,
            weight_scale=batch.weight_scale,
            encoded=(node_in, edge_in),
            last_hidden=h_out[:, 2 * H :],  # (V, H): [node_fts | h_t | h_{t+1}] -> h_{t+1}
        )

    def _next_hints_sparse(
        self,
        enc: SpecEncoder,
        preds: dict[str, Tensor],
        batch: SparseBatch,
        t: int,
        teacher_forcing: float,
        prev: dict[str, Tensor],
    ) -> dict[str, Tensor]:
        """Hints fed to step t on a flat batch (``_next_hints`` for ``SparseBatch``); ``prev`` those fed to
        step t - 1."""
        pairs = batch.pairs
        force = None
        if teacher_forcing > 0.0:
            force = torch.rand(pairs.num_graphs, device=batch.lengths.device) < teacher_forcing  # (G,)
        nxt: dict[str, Tensor] = {}
        for f in enc.hint_fields:
            if self._follows(f):  # from the decoded pointer: forcing below replaces forced graphs' value
                choice = pointer_choice(preds[f.along[0]], self._hard_feedback, pairs)  # (P,) on j -> i: P(i -> j)
                weight = weight_input(enc.spec, "scalars_along_pointers")
                weights = batch.inputs[weight].to(choice.dtype)  # (P,) w(j -> i)
                fed = along_pointer_sparse(f, choice, prev[f.name].to(choice.dtype), weights, pairs)
            else:
                fed = sparse_postprocess(f, preds[f.name], self._hard_feedback, pairs)
            if force is not None:
                truth = sparse_features(f, batch.hints[f.name][:, t], pairs)
                rows = feature_graph(f, pairs)  # the graph of each row of the feature form
                where = force if rows is None else force[rows]
                fed = torch.where(_expand(where, fed), truth.to(fed.dtype), fed)
            nxt[f.name] = fed
        return nxt

    def _run(
        self, spec: AlgorithmSpec, enc: SpecEncoder, dec: SpecDecoder, batch: Batch, teacher_forcing: float
    ) -> Prediction:
        B, N = batch.node_mask.shape
        H = self.config.hidden
        last = (batch.lengths - 1).clamp(min=1) - 1  # (B,) step whose outputs count
        # Graphs sorted by length, longest first: at step t the graphs still running are a
        # prefix [:k_t] of the batch, so every step only computes on (views of) those.
        order = torch.argsort(last, descending=True, stable=True)
        identity = bool((order == torch.arange(B, device=order.device)).all())
        if not identity:
            batch = _take(batch, order)
        ends = last[order].tolist()
        S = ends[0] + 1
        running = [sum(1 for e in ends if e >= t) for t in range(S + 1)]  # k_t; k_S = 0

        node_mask = batch.node_mask
        adj = message_adjacency(spec, batch.inputs, node_mask)
        node_in, edge_in, graph_in = enc.encode_inputs(batch.inputs, node_mask)
        edges = EdgeFeatures(edge_in)
        hidden = torch.zeros(B, N, H, device=node_mask.device)

        slack = SlackDense(enc, batch, adj) if enc.slack_fields else None
        hints_t = {f.name: to_features(f, batch.hints[f.name][:, 0], N) for f in enc.hint_fields}
        hint_logits: dict[str, list[Tensor]] = {f.name: [] for f in dec.hint_fields}
        finished: list[dict[str, Tensor]] = []  # outputs of graphs [k_{t+1}:k_t], t descending
        for t in range(S):
            k = running[t]
            mask_k = _rows(node_mask, k)
            hidden_k = _rows(hidden, k)
            hints_k = {n: _rows(v, k) for n, v in hints_t.items()}
            step = enc.encode_hints(hints_k, mask_k, transpose_pairs, None if slack is None else slack(hints_k, k))
            node_k, graph_k = _rows(node_in, k), _rows(graph_in, k)
            node_fts = node_k if step.node is None else node_k + step.node  # (k, N, H)
            graph_fts = graph_k if step.graph is None else graph_k + step.graph  # (k, H)
            step_edges = edges.rows(0, k).with_step(step.edge_x, step.edge_w)  # (k, N, N, H), lazily
            nxt, proc_edges = self.processor(node_fts, step_edges, graph_fts, _rows(adj, k), hidden_k, mask_k)
            h = torch.cat([node_fts.to(nxt.dtype), hidden_k.to(nxt.dtype), nxt], dim=-1)  # (k, N, 3H)
            parts = [step_edges] if proc_edges is None else [step_edges, proc_edges]

            preds = dec("hints", h, parts, graph_fts, mask_k)
            for name, logits in preds.items():
                hint_logits[name].append(_pad_rows(logits.contiguous(), B))  # no view of the whole projection
            done = running[t + 1]  # graphs done:k end at this step
            if done < k:
                sub = [p.rows(done, k) if isinstance(p, EdgeFeatures) else p[done:k] for p in parts]
                finished.append(dec("outputs", h[done:k], sub, graph_fts[done:k], mask_k[done:k]))
            hidden = nxt if self.config.carry_hidden else torch.zeros_like(nxt)
            if t + 1 < S and enc.hint_fields:
                hints_t = self._next_hints(enc, preds, batch, t + 1, teacher_forcing, N, running[t + 1], hints_t)

        outputs = {name: torch.cat([f[name] for f in reversed(finished)]) for name in finished[0]}
        hints = {k: torch.stack(v, dim=1) for k, v in hint_logits.items()}
        if not identity:
            inverse = torch.argsort(order)
            outputs = {k: v[inverse] for k, v in outputs.items()}
            hints = {k: v[inverse] for k, v in hints.items()}
        return Prediction(outputs=outputs, hints=hints)

    @property
    def _hard_feedback(self) -> bool:
        """Whether decoded hints are fed back hard (argmax / threshold) rather than as probabilities."""
        mode = self.config.hint_feedback
        return mode == "hard" or (mode == "hard_on_eval" and not self.training)

    def _next_hints(
        self,
        enc: SpecEncoder,
        preds: dict[str, Tensor],
        batch: Batch,
        t: int,
        teacher_forcing: float,
        N: int,
        k: int,
        prev: dict[str, Tensor],
    ) -> dict[str, Tensor]:
        """Hints fed to step t, for the k graphs still running; ``prev`` those fed to step t - 1."""
        hard = self._hard_feedback
        force = None
        if teacher_forcing > 0.0:
            force = torch.rand(k, device=batch.node_mask.device) < teacher_forcing
        nxt: dict[str, Tensor] = {}
        for f in enc.hint_fields:
            if self._follows(f):  # from the decoded pointer: forcing below replaces forced graphs' value
                pointer = postprocess(enc.spec.field(f.along[0]), _rows(preds[f.along[0]], k), hard)  # (k, N, N)
                weight = weight_input(enc.spec, "scalars_along_pointers")
                weights = _rows(batch.inputs[weight], k).to(pointer.dtype)  # (k, N, N) [sender, receiver]
                fed = along_pointer_dense(f, pointer, _rows(prev[f.name], k).to(pointer.dtype), weights)
            else:
                fed = postprocess(f, _rows(preds[f.name], k), hard)
            if force is not None:
                truth = to_features(f, batch.hints[f.name][:k, t], N)
                fed = torch.where(_expand(force, fed), truth.to(fed.dtype), fed)
            nxt[f.name] = fed
        return nxt

    def _follows(self, f: Field) -> bool:
        """Whether ``f`` is fed back along its pointer (``scalars_along_pointers`` and ``Field.along``)."""
        return self.config.scalars_along_pointers and f.along is not None


def along_pointer_dense(f: Field, pointer: Tensor, prev: Tensor, weights: Tensor) -> Tensor:
    """``f``'s value as its pointer says (``Field.along``), dense: ``pointer`` (k, N_i, N_j) the fed
    pointer hint (one-hot or probabilities: i points to j), ``prev`` (k, N) the value fed to the previous
    step, ``weights`` (k, N_j, N_i) edge weights [sender, receiver]. Returns (k, N)."""
    value = (pointer * weights.transpose(1, 2)).sum(-1)  # sum_j p_ij w(j -> i)
    if f.along[1] == "path":
        value = value + torch.einsum("kij,kj->ki", pointer, prev)  # + sum_j p_ij prev_j
    return value


def along_pointer_sparse(f: Field, choice: Tensor, prev: Tensor, weights: Tensor, pairs: Pairs) -> Tensor:
    """``along_pointer_dense`` on a flat batch: ``choice`` (P,) on pair j -> i the probability that i points
    to j (``pointer_choice``), ``prev`` (V,), ``weights`` (P,) the weight of j -> i. Returns (V,). Needs no
    reverse pairs: a one-way edge's pointer is read on the edge itself."""
    term = choice * weights  # (P,)
    if f.along[1] == "path":
        term = term + choice * prev[pairs.senders]
    return torch.zeros_like(prev).index_add_(0, pairs.receivers, term)


def relaxation_slack(
    f: Field,
    value_sender: Tensor,
    value_receiver: Tensor,
    weights: Tensor,
    unit: Tensor,
    edge: Tensor,
    self_pair: Tensor,
) -> Tensor:
    """``along_slack``'s channel of ``f`` on pairs j -> i, any layout (dense (k, N_j, N_i) or flat (P,), the
    arguments broadcast to it): softsign((value via j - value_i) / unit), value via j = value_j + w(j -> i) for a
    path and w(j -> i) for an edge (``Field.along``); 1 on pairs that are no edge, 0 on the self pair."""
    via = weights + value_sender if f.along[1] == "path" else weights
    slack = F.softsign((via - value_receiver) / unit)
    return torch.where(edge, slack, torch.where(self_pair, 0.0, 1.0))


class SlackDense:
    """``along_slack``'s pair channels on a dense batch: ``self(hints, k)`` -> {field: (k, N_j, N_i)} for the
    first k graphs, [sender j, receiver i] as every dense pair feature."""

    def __init__(self, enc: SpecEncoder, batch: Batch, adj: Tensor) -> None:
        spec = enc.spec
        self.fields = enc.slack_fields
        self.weights = batch.inputs[weight_input(spec, "along_slack")].float()  # (B, N, N) w(j -> i)
        B, N, _ = self.weights.shape
        self.self_pair = torch.eye(N, dtype=torch.bool, device=adj.device)  # (N, N)
        self.edge = (batch.inputs[edge_mask_input(spec)] > 0.5) & adj & ~self.self_pair  # (B, N, N)
        graph = torch.arange(B, device=adj.device).view(B, 1, 1).expand(B, N, N)
        self.unit = mean_edge_weight(self.weights, self.edge, graph, B)  # (B,)

    def __call__(self, hints: dict[str, Tensor], k: int) -> dict[str, Tensor]:
        w, unit, edge = _rows(self.weights, k), _rows(self.unit, k)[:, None, None], _rows(self.edge, k)
        out = {}
        for f in self.fields:
            value = hints[f.name].float()  # (k, N)
            out[f.name] = relaxation_slack(f, value[:, :, None], value[:, None, :], w, unit, edge, self.self_pair)
        return out


class SlackSparse:
    """``along_slack``'s pair channels on a flat batch: ``self(hints)`` -> {field: (P,)} on pairs j -> i."""

    def __init__(self, enc: SpecEncoder, batch: SparseBatch) -> None:
        spec, pairs = enc.spec, batch.pairs
        self.fields, self.pairs = enc.slack_fields, pairs
        self.weights = batch.inputs[weight_input(spec, "along_slack")].float()  # (P,) w(j -> i)
        self.self_pair = pairs.senders == pairs.receivers  # (P,)
        self.edge = (batch.inputs[edge_mask_input(spec)] > 0.5) & ~self.self_pair  # (P,)
        self.pair_unit = mean_edge_weight(self.weights, self.edge, pairs.graph, pairs.num_graphs)[pairs.graph]

    def __call__(self, hints: dict[str, Tensor]) -> dict[str, Tensor]:
        pairs, out = self.pairs, {}
        for f in self.fields:
            value = hints[f.name].float()  # (V,)
            sender, receiver = value[pairs.senders], value[pairs.receivers]  # (P,)
            out[f.name] = relaxation_slack(f, sender, receiver, self.weights, self.pair_unit, self.edge, self.self_pair)
        return out


def _keep(new_rows: Tensor, new: Tensor, old: Tensor | None) -> Tensor:
    """``new`` where ``new_rows`` (rows,) is true, else ``old`` (zeros when None)."""
    return torch.where(_expand(new_rows, new), new, torch.zeros_like(new) if old is None else old)


def _rows(x: Tensor, k: int) -> Tensor:
    """The first k graphs; the tensor itself when that is all of them (a slice would cost a
    full-size zero fill and copy in the backward pass)."""
    return x if x.shape[0] == k else x[:k]


def _pad_rows(x: Tensor, rows: int) -> Tensor:
    """(k, ...) -> (rows, ...) with zeros for the graphs that no longer run (never scored)."""
    if x.shape[0] == rows:
        return x
    return torch.cat([x, x.new_zeros(rows - x.shape[0], *x.shape[1:])])


def _take(batch: Batch, index: Tensor) -> Batch:
    """The graphs of ``batch`` in the order ``index``."""

    def take(d: dict[str, Tensor]) -> dict[str, Tensor]:
        return {k: v[index] for k, v in d.items()}

    return Batch(
        algorithm=batch.algorithm,
        inputs=take(batch.inputs),
        hints=take(batch.hints),
        outputs=take(batch.outputs),
        node_mask=batch.node_mask[index],
        lengths=batch.lengths[index],
        num_nodes=batch.num_nodes[index],
    )


def _expand(mask: Tensor, like: Tensor) -> Tensor:
    """(B,) -> broadcastable to ``like`` (B, ...)."""
    return mask.view(-1, *([1] * (like.dim() - 1)))
