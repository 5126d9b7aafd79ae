"""Classifiers (ground floor): definitions, training loop, metrics, safe checkpoints."""

from xmark_core.nets.checkpoint import LoadedModel, load_checkpoint, save_checkpoint
from xmark_core.nets.classifiers import ARCHS, build_classifier, default_cam_layer
from xmark_core.nets.metrics import Metrics
from xmark_core.nets.train import (
    TrainConfig,
    TrainResult,
    evaluate,
    predict_proba,
    train_classifier,
)

__all__ = [
    "ARCHS",
    "LoadedModel",
    "Metrics",
    "TrainConfig",
    "TrainResult",
    "build_classifier",
    "default_cam_layer",
    "evaluate",
    "load_checkpoint",
    "predict_proba",
    "save_checkpoint",
    "train_classifier",
]
