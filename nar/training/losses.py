"""Losses per field type, as CLRS-30 defines them, masked by padding and trajectory length.

=============  ==============================================  =======================
type           loss per entry                                  an entry is
=============  ==============================================  =======================
scalar         squared error                                   a node / edge / graph
mask           binary cross-entropy on the logit               a node / edge / graph
mask_one       cross-entropy of the softmax over nodes         a graph
categorical    cross-entropy of the softmax over categories    a node / edge / graph
pointer        cross-entropy of the softmax over nodes         a node / edge
=============  ==============================================  =======================

Each field's loss is the mean over its valid entries: real nodes (both ends real for edges)
and, for hints, the steps t + 1 < T_b of each graph (the prediction of step t + 1 comes
from processor step t). total = sum of output losses + sum of hint losses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from nar.algorithms.spec import AlgorithmSpec, Field, Location, Type
from nar.data.batching import Batch
from nar.models.model import Prediction


def entry_mask(f: Field, node_mask: Tensor) -> Tensor:
    """Bool mask over the entries of one step of ``f``: (B, N), (B, N, N) or (B,)."""
    if f.type == Type.MASK_ONE or f.location == Location.GRAPH:
        return torch.ones(node_mask.shape[0], dtype=torch.bool, device=node_mask.device)
    if f.location == Location.NODE:
        return node_mask
    return node_mask.unsqueeze(2) & node_mask.unsqueeze(1)


def hint_step_mask(lengths: Tensor, steps: int) -> Tensor:
    """(B, S) bool: prediction t (of hint step t + 1) is scored if t + 1 < T_b."""
    t = torch.arange(steps, device=lengths.device)
    return (t[None, :] + 1) < lengths[:, None]


def entry_losses(f: Field, logits: Tensor, target: Tensor) -> Tensor:
    """Unreduced loss per entry (shape of ``entry_mask``, with any leading time axis)."""
    if f.type == Type.SCALAR:
        return (logits - target) ** 2
    if f.type == Type.MASK:
        return F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    if f.type == Type.POINTER:
        return -torch.log_softmax(logits, dim=-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
    # mask_one (softmax over nodes) and categorical (softmax over categories), one-hot targets
    return -(target * torch.log_softmax(logits, dim=-1)).sum(-1)


def masked_mean(values: Tensor, valid: Tensor) -> Tensor:
    valid = valid.expand_as(values)
    return torch.where(valid, values, 0.0).sum() / valid.sum().clamp(min=1)


def field_loss(f: Field, logits: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Mean loss of one field over its valid entries."""
    return masked_mean(entry_losses(f, logits, target), valid)


def in_model_units(f: Field, target: Tensor, pred: Prediction) -> Tensor:
    """Targets of a weight-unit field divided by the model's per-graph weight scale, if it has one
    (``ModelConfig.weight_scale``): losses compare in the units the model predicts in."""
    if not f.weight_unit or pred.weight_scale is None:
        return target
    return target / pred.weight_scale.view(-1, *([1] * (target.dim() - 1))).to(target.dtype)


def output_losses(spec: AlgorithmSpec, pred: Prediction, batch: Batch) -> dict[str, Tensor]:
    return {
        f.name: field_loss(
            f, pred.outputs[f.name], in_model_units(f, batch.outputs[f.name], pred), entry_mask(f, batch.node_mask)
        )
        for f in spec.outputs
    }


def hint_targets(f: Field, batch: Batch, steps: int) -> Tensor:
    """Ground truth of hint steps 1..S as (B, S, ...); trajectories of one step repeat step 0."""
    h = batch.hints[f.name]
    target = h[:, 1 : steps + 1]
    if target.shape[1] < steps:  # T = 1: nothing to predict, any value will be masked out
        target = h[:, :1].expand(-1, steps, *h.shape[2:])
    return target


def hint_losses(spec: AlgorithmSpec, pred: Prediction, batch: Batch) -> dict[str, Tensor]:
    losses = {}
    for f in spec.hints:
        if f.name not in pred.hints:
            continue
        logits = pred.hints[f.name]  # (B, S, ...)
        S = logits.shape[1]
        valid = _with_time(entry_mask(f, batch.node_mask), hint_step_mask(batch.lengths, S))
        losses[f.name] = field_loss(f, logits, in_model_units(f, hint_targets(f, batch, S), pred), valid)
    return losses


def _with_time(entries: Tensor, steps: Tensor) -> Tensor:
    """(B, ...) entries and (B, S) steps -> (B, S, ...)."""
    return entries.unsqueeze(1) & steps.view(*steps.shape, *([1] * (entries.dim() - 1)))


def total_loss(
    spec: AlgorithmSpec, pred: Prediction, batch: Batch, scalar_weight: float = 1.0
) -> tuple[Tensor, dict[str, Tensor]]:
    """output loss + hint loss, and every term by name (``output/<f>``, ``hint/<f>``).

    scalar_weight multiplies the squared errors of scalar fields (1 in CLRS). Distances are
    learnt to about 1e-2 by plain MSE, while out-of-distribution graphs (n = 64) need a
    finer comparison of near-equal paths; a larger weight buys that precision.
    """
    parts = {f"output/{k}": v for k, v in output_losses(spec, pred, batch).items()}
    parts.update({f"hint/{k}": v for k, v in hint_losses(spec, pred, batch).items()})
    terms = [v * scalar_weight if spec.field(k.split("/", 1)[1]).type == Type.SCALAR else v for k, v in parts.items()]
    return torch.stack(terms).sum(), parts
