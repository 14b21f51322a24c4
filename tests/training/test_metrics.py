"""CLRS score definitions, exact on hand-made cases."""

from __future__ import annotations

import torch

from nar.algorithms import AlgorithmSpec, Field, Location, Stage, Type
from nar.data.batching import Batch
from nar.models import Prediction
from nar.training.metrics import (
    Scores,
    categorical_accuracy,
    mask_f1,
    pointer_accuracy,
    scalar_mse,
)

T = torch.tensor


def test_pointer_accuracy_counts_real_nodes_only():
    pred = T([[1, 0, 2, 0], [0, 0, 0, 0]])
    target = T([[1, 1, 2, 3], [0, 2, 0, 0]])
    valid = T([[True, True, True, False], [True, True, False, False]])
    # graph 0: nodes 0, 2 right, node 1 wrong (node 3 padded); graph 1: node 0 right, node 1 wrong
    assert pointer_accuracy(pred, target, valid) == 3 / 5


def test_mask_f1_matches_hand_computation():
    pred = T([1.0, 1.0, 0.0, 0.0, 1.0, 1.0])
    target = T([1.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    valid = T([True, True, True, True, True, False])  # last entry ignored
    tp, fp, fn = 2, 1, 1
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert abs(mask_f1(pred, target, valid) - 2 * precision * recall / (precision + recall)) < 1e-12


def test_mask_f1_edge_cases_follow_clrs():
    valid = T([True, True])
    assert mask_f1(T([0.0, 0.0]), T([0.0, 0.0]), valid) == 1.0  # nothing to find, nothing found
    assert mask_f1(T([1.0, 0.0]), T([0.0, 0.0]), valid) == 0.0  # precision 0, recall 1 -> F1 0
    assert mask_f1(T([0.0, 0.0]), T([1.0, 0.0]), valid) == 0.0


def test_categorical_and_mask_one_accuracy_use_the_argmax():
    pred = T([[[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]])
    target = T([[[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]], [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]])
    valid = T([[True, True], [True, False]])
    assert categorical_accuracy(pred, target, valid) == 2 / 3


def test_scalar_mse():
    assert scalar_mse(T([1.0, 2.0, 5.0]), T([0.0, 2.0, 0.0]), T([True, True, False])) == 0.5


def _one_field_batch(name: str, outputs, hints, node_mask, lengths) -> Batch:
    return Batch(
        algorithm="toy",
        inputs={},
        hints=hints,
        outputs=outputs,
        node_mask=node_mask,
        lengths=lengths,
        num_nodes=node_mask.sum(1),
    )


def test_scores_pool_over_batches_and_score_hints_by_step():
    spec = AlgorithmSpec(
        name="toy",
        fields=(
            Field("pos", Stage.INPUT, Location.NODE, Type.SCALAR),
            Field("h", Stage.HINT, Location.NODE, Type.POINTER),
            Field("pi", Stage.OUTPUT, Location.NODE, Type.POINTER),
        ),
    )
    mask = T([[True, True, True]])
    # hint truth over 3 steps; the model predicts steps 1 and 2 (S = 2)
    hint_truth = T([[[0, 1, 2], [1, 1, 2], [1, 0, 0]]])
    hint_logits = torch.full((1, 2, 3, 3), -5.0)
    for t, row in enumerate([[1, 1, 0], [1, 0, 0]]):  # step 1: 2/3 right; step 2: 3/3 right
        for i, j in enumerate(row):
            hint_logits[0, t, i, j] = 5.0
    out_logits = torch.full((1, 3, 3), -5.0)
    out_logits[0, [0, 1, 2], [1, 0, 2]] = 5.0  # 2 of 3 right against pi = [1, 0, 0]
    batch = _one_field_batch("toy", {"pi": T([[1, 0, 0]])}, {"h": hint_truth}, mask, T([3]))
    pred = Prediction(outputs={"pi": out_logits}, hints={"h": hint_logits})
    scores = Scores(spec)
    scores.update(pred, batch)
    scores.update(pred, batch)  # pooled: the same ratios
    result = scores.compute()
    assert result["output/pi"] == 2 / 3 and result["score"] == 2 / 3
    assert result["hint/h"] == 5 / 6
    # a trajectory of length 2 scores only the first predicted step
    short = _one_field_batch("toy", {"pi": T([[1, 0, 0]])}, {"h": hint_truth}, mask, T([2]))
    s2 = Scores(spec)
    s2.update(pred, short)
    assert s2.compute()["hint/h"] == 2 / 3


def test_evaluate_in_small_pieces_gives_the_same_scores():
    from random_batches import all_types_spec, random_batch

    from nar.models import EncodeProcessDecode, ModelConfig, ProcessorConfig
    from nar.training.metrics import evaluate

    spec = all_types_spec()
    torch.manual_seed(0)
    model = EncodeProcessDecode([spec], ModelConfig(processor=ProcessorConfig(kind="mpnn", hidden=8)))
    batches = [random_batch(spec, sizes=[5, 8, 3, 6], lengths=[3, 2, 4, 1], seed=s) for s in range(2)]
    whole = evaluate(model, batches, spec, budget=1 << 30)
    pieces = evaluate(model, batches, spec, budget=1)  # one graph per forward
    assert whole.keys() == pieces.keys()
    for k in whole:
        assert abs(whole[k] - pieces[k]) < 1e-6, k
