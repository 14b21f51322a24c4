"""Scores as CLRS-30 defines them, over outputs and per hint.

==============  =========================================================================
type            score (over every valid entry of an evaluation set, pooled)
==============  =========================================================================
pointer         accuracy: fraction of (real) nodes / edges whose argmax pointer is right
mask            F1 of (logit > 0) against the truth; precision (recall) is 1 when nothing
                is predicted (present), F1 is 0 when both are 0
mask_one        accuracy of the argmax over nodes, one entry per graph
categorical     accuracy of the argmax over categories
scalar          mean squared error (lower is better)
==============  =========================================================================

An algorithm's ``score`` is the mean of its output fields' scores (CLRS). Hint scores pool
every scored step (t + 1 < T_b) of every graph. ``Scores`` accumulates counts batch by
batch, so a pooled score over many batches equals the score of one big batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator

import torch
from torch import Tensor

from nar.algorithms.spec import AlgorithmSpec, Field, Location, Stage, Type
from nar.data.batching import Batch
from nar.models.decoders import prediction
from nar.models.model import Prediction
from nar.training.losses import _with_time, entry_mask, hint_step_mask, hint_targets, in_model_units


def field_counts(f: Field, pred: Tensor, target: Tensor, valid: Tensor) -> dict[str, float]:
    """Sufficient statistics of one field's score.

    pred: hard predictions (``nar.models.prediction``): pointer indices, 0/1 masks,
    one-hots over nodes (mask_one) or categories, scalar values. target: batch data.
    valid: bool mask over entries, broadcastable.
    """
    if f.type == Type.SCALAR:
        v = valid.expand_as(pred)
        return {"sse": float(torch.where(v, (pred - target) ** 2, 0.0).sum()), "count": float(v.sum())}
    if f.type == Type.MASK:
        v = valid.expand_as(pred)
        p, t = (pred > 0.5) & v, (target > 0.5) & v
        return {"tp": float((p & t).sum()), "fp": float((p & ~t).sum()), "fn": float((~p & t).sum())}
    if f.type == Type.POINTER:
        hit = pred == target
    else:  # mask_one, categorical: argmax over the last axis
        hit = pred.argmax(-1) == target.argmax(-1)
    v = valid.expand_as(hit)
    return {"correct": float((hit & v).sum()), "total": float(v.sum())}


def score_from_counts(f: Field, c: dict[str, float]) -> float:
    if f.type == Type.SCALAR:
        return c["sse"] / c["count"] if c["count"] else 0.0
    if f.type == Type.MASK:
        tp, fp, fn = c["tp"], c["fp"], c["fn"]
        precision = tp / (tp + fp) if tp + fp > 0 else 1.0
        recall = tp / (tp + fn) if tp + fn > 0 else 1.0
        return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return c["correct"] / c["total"] if c["total"] else 0.0


# Plain functions for single tensors (used by tests and notebooks).
def pointer_accuracy(pred: Tensor, target: Tensor, valid: Tensor) -> float:
    return score_from_counts(_F_POINTER, field_counts(_F_POINTER, pred, target, valid))


def mask_f1(pred: Tensor, target: Tensor, valid: Tensor) -> float:
    return score_from_counts(_F_MASK, field_counts(_F_MASK, pred, target, valid))


def categorical_accuracy(pred: Tensor, target: Tensor, valid: Tensor) -> float:
    return score_from_counts(_F_MASK_ONE, field_counts(_F_MASK_ONE, pred, target, valid))


def scalar_mse(pred: Tensor, target: Tensor, valid: Tensor) -> float:
    return score_from_counts(_F_SCALAR, field_counts(_F_SCALAR, pred, target, valid))


def _field(t: Type) -> Field:
    return Field("_", Stage.OUTPUT, Location.NODE, t)


_F_POINTER, _F_MASK, _F_MASK_ONE, _F_SCALAR = (_field(t) for t in (Type.POINTER, Type.MASK, Type.MASK_ONE, Type.SCALAR))


class Scores:
    """Pooled scores of one algorithm over many batches."""

    def __init__(self, spec: AlgorithmSpec) -> None:
        self.spec = spec
        self.counts: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def _add(self, key: str, c: dict[str, float]) -> None:
        for k, v in c.items():
            self.counts[key][k] += v

    def update(self, pred: Prediction, batch: Batch) -> None:
        for f in self.spec.outputs:
            hard = prediction(f, pred.outputs[f.name])
            target = in_model_units(f, batch.outputs[f.name], pred)
            self._add(f"output/{f.name}", field_counts(f, hard, target, entry_mask(f, batch.node_mask)))
        for f in self.spec.hints:
            if f.name not in pred.hints:
                continue
            logits = pred.hints[f.name]
            S = logits.shape[1]
            valid = _with_time(entry_mask(f, batch.node_mask), hint_step_mask(batch.lengths, S))
            hard = prediction(f, logits)
            target = in_model_units(f, hint_targets(f, batch, S), pred)
            self._add(f"hint/{f.name}", field_counts(f, hard, target, valid))

    def compute(self) -> dict[str, float]:
        """``score`` (mean over outputs), ``output/<name>`` and ``hint/<name>``."""
        fields = {f"output/{f.name}": f for f in self.spec.outputs}
        fields.update({f"hint/{f.name}": f for f in self.spec.hints})
        result = {k: score_from_counts(fields[k], c) for k, c in self.counts.items()}
        outs = [result[f"output/{f.name}"] for f in self.spec.outputs if f"output/{f.name}" in result]
        result["score"] = sum(outs) / len(outs) if outs else 0.0
        return dict(sorted(result.items()))


def _trim(f: Field, v: Tensor, rows: slice, n: int, t: int | None) -> Tensor:
    """One field of a batch, for graphs ``rows``, cut to n nodes (and t steps for hints)."""
    v = v[rows]
    axis = 1
    if t is not None:
        v, axis = v[:, :t], 2
    if f.location == Location.NODE:
        return v.narrow(axis, 0, n)
    if f.location == Location.EDGE:
        return v.narrow(axis, 0, n).narrow(axis + 1, 0, n)
    return v


def split_batch(spec: AlgorithmSpec, batch: Batch, size: int) -> list[Batch]:
    """Batches of at most ``size`` graphs, each trimmed to its own largest graph and trajectory."""
    if size >= batch.batch_size:
        return [batch]
    parts = []
    for start in range(0, batch.batch_size, size):
        rows = slice(start, start + size)
        n, t = int(batch.num_nodes[rows].max()), int(batch.lengths[rows].max())
        parts.append(
            Batch(
                algorithm=batch.algorithm,
                inputs={f.name: _trim(f, batch.inputs[f.name], rows, n, None) for f in spec.inputs},
                hints={f.name: _trim(f, batch.hints[f.name], rows, n, t) for f in spec.hints},
                outputs={f.name: _trim(f, batch.outputs[f.name], rows, n, None) for f in spec.outputs},
                node_mask=batch.node_mask[rows, :n],
                lengths=batch.lengths[rows],
                num_nodes=batch.num_nodes[rows],
            )
        )
    return parts


#: graphs per forward at inference: (graphs × N² × H) stays under this many elements, so the
#: (B, N, N, H) message tensors stay in cache instead of streaming through memory.
INFERENCE_PAIR_BUDGET = 1 << 20


def predict_chunks(
    model: torch.nn.Module, batch: Batch, spec: AlgorithmSpec, budget: int = INFERENCE_PAIR_BUDGET
) -> Iterator[tuple[Batch, Prediction]]:
    """Yield (sub-batch, Prediction) over ``batch`` split into cache-sized pieces (inference mode)."""
    from nar.runtime import tune_malloc

    tune_malloc()  # 1.5-1.9x faster at n = 64 (nar.runtime)
    hidden = model.config.hidden
    per_graph = batch.max_nodes**2 * hidden
    for part in split_batch(spec, batch, max(1, budget // per_graph)):
        yield part, model(part)


def evaluate(
    model: torch.nn.Module,
    batches: Iterable[Batch],
    spec: AlgorithmSpec,
    device: torch.device | str | None = None,
    budget: int = INFERENCE_PAIR_BUDGET,
) -> dict[str, float]:
    """Scores of ``model`` on ``batches`` of one algorithm (inference mode, no teacher forcing).

    Batches are split into pieces of about ``budget`` (graph, node, node, hidden) elements;
    scores pool counts, so the split does not change them.
    """
    scores = Scores(spec)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in batches:
                if device is not None:
                    batch = batch.to(device)
                for part, pred in predict_chunks(model, batch, spec, budget):
                    scores.update(pred, part)
    finally:
        model.train(was_training)
    return scores.compute()
