"""Losses, scores, checkpoints and the training loop.

``train(model_config, TrainConfig(...), train_data, val_data, test_data, out_dir)`` returns a
:class:`TrainResult` (history, best validation scores, test scores of the best checkpoint).
"""

from nar.training.checkpoint import load_checkpoint, save_checkpoint
from nar.training.loop import (
    TrainConfig,
    TrainingDiverged,
    TrainResult,
    build_model,
    load_model,
    resolve_device,
    train,
)
from nar.training.losses import total_loss
from nar.training.metrics import Scores, evaluate

__all__ = [
    "Scores",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "build_model",
    "evaluate",
    "load_checkpoint",
    "load_model",
    "resolve_device",
    "save_checkpoint",
    "total_loss",
    "train",
]
