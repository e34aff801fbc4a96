"""The model plane: encoders, classifiers and the registry that versions them.

It answers calls and knows nothing of workflows or reviews. Heavy runtimes (onnxruntime,
tokenizers, scikit-learn) are imported only when a model is built, loaded or trained.
"""

from sluice.models.classifier import LinearHead, Prediction, choose_threshold
from sluice.models.encoder import ENCODER_NAME, Encoder, load_encoder
from sluice.models.registry import ModelRecord, ModelRef, ModelRegistry, Stage
from sluice.models.retraining import (
    Correction,
    RetrainResult,
    evaluate_head,
    retrain_with_corrections,
)
from sluice.models.training import (
    Calibration,
    LabelledData,
    load_classifier,
    read_labelled_csv,
    train_classifier,
)

__all__ = [
    "ENCODER_NAME",
    "Calibration",
    "Correction",
    "Encoder",
    "LabelledData",
    "LinearHead",
    "ModelRecord",
    "ModelRef",
    "ModelRegistry",
    "Prediction",
    "RetrainResult",
    "Stage",
    "choose_threshold",
    "evaluate_head",
    "load_classifier",
    "load_encoder",
    "read_labelled_csv",
    "retrain_with_corrections",
    "train_classifier",
]
