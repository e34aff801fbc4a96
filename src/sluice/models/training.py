"""Training an intent classifier: encoder embeddings + a linear head + a calibrated gate.

Input is a CSV with columns ``text`` and ``category`` (the Banking77 layout; the shipped
support sample uses it too). The trained head, its out-of-fold calibration data and a
card with provenance and metrics are registered as one model version.

Example:
    >>> data = read_labelled_csv(Path("train.csv"))  # doctest: +SKIP
    >>> record = train_classifier(settings, registry, "support-intent", data)  # doctest: +SKIP
    >>> record.card["gate"]["threshold"]  # doctest: +SKIP
    0.83
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sluice import __version__
from sluice.config import Settings
from sluice.errors import TrainingError
from sluice.models.classifier import (
    LinearHead,
    choose_threshold,
    cross_validated_probabilities,
    fit_head,
)
from sluice.models.encoder import Encoder, load_encoder
from sluice.models.registry import ModelRecord, ModelRegistry

__all__ = [
    "Calibration",
    "LabelledData",
    "load_classifier",
    "read_labelled_csv",
    "train_classifier",
]

_MAX_TEXT = 20_000


@dataclass(frozen=True)
class LabelledData:
    """Texts with their labels, and a hash that identifies the data set."""

    texts: list[str]
    labels: list[str]
    sha256: str
    origin: str


def read_labelled_csv(path: Path) -> LabelledData:
    """Read a ``text,category`` CSV.

    Raises:
        TrainingError: Missing file or columns, or an empty text or label (with its line).
    """
    if not path.is_file():
        raise TrainingError(f"no training file at {path}")
    raw = path.read_bytes()
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8-sig")))
    missing = {"text", "category"} - set(reader.fieldnames or [])
    if missing:
        raise TrainingError(
            f"{path}: missing column(s) {', '.join(sorted(missing))}",
            hint="the CSV needs a header with `text` and `category`",
        )
    texts, labels = [], []
    for row in reader:
        text, label = (row["text"] or "").strip(), (row["category"] or "").strip()
        if not text or not label:
            raise TrainingError(f"{path}:{reader.line_num}: empty text or category")
        texts.append(text[:_MAX_TEXT])
        labels.append(label)
    if not texts:
        raise TrainingError(f"{path} has no rows")
    return LabelledData(texts, labels, hashlib.sha256(raw).hexdigest(), str(path))


@dataclass(frozen=True)
class Calibration:
    """Out-of-fold confidence and correctness: picks the gate threshold for any target."""

    confidence: np.ndarray
    correct: np.ndarray

    def threshold(self, target_precision: float) -> float:
        """Lowest confidence at which auto-handled items reach ``target_precision``."""
        return choose_threshold(self.confidence, self.correct, target_precision)

    def automation(self, threshold: float) -> float:
        """Share of the calibration items at or above ``threshold``."""
        return float((self.confidence >= threshold).mean())


def _macro_f1(gold: list[str], predicted: list[str]) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(gold, predicted, average="macro"))


def train_classifier(
    settings: Settings,
    registry: ModelRegistry,
    name: str,
    data: LabelledData,
    *,
    c: float = 20.0,
    folds: int = 5,
    seed: int = 0,
    encoder: Encoder | None = None,
    promote: bool | None = None,
    force: bool = False,
    created_by: str = "local-admin",
    progress: Callable[[str, int, int], Any] | None = None,
    card_extra: Mapping[str, Any] | None = None,
    evaluate: Callable[[LinearHead, Calibration], Mapping[str, Any]] | None = None,
) -> ModelRecord:
    """Train, calibrate and register a classifier; reuse an identical earlier version.

    A version trained on the same data (by hash) with the same encoder and parameters
    is returned as-is unless ``force`` is set.

    Args:
        settings: Runtime settings (target precision, encoder threads, model cache).
        registry: Where the version is registered.
        name: Model name, e.g. ``support-intent``.
        data: Training data.
        c: Inverse regularization strength of the logistic regression.
        folds: Folds for the out-of-fold calibration.
        seed: Seed for the fold split and the solver.
        encoder: Encoder to use (default: the packaged int8 encoder).
        promote: Make the new version production (default: only if none exists).
        force: Train even if an identical version exists.
        created_by: Recorded as the version's author.
        progress: Called as ``progress(phase, done, total)``.
        card_extra: More provenance for the model card (e.g. the corrections used).
        evaluate: Called with the trained head before it is registered; its result is
            recorded in the card as ``evaluation`` (so a version carries the evidence it
            was registered with).
    """
    encoder = encoder or load_encoder(settings)
    params = {"c": c, "folds": folds, "seed": seed, "max_length": 128}
    if not force:
        existing = registry.find(
            name,
            training_sha256=data.sha256,
            encoder=f"{encoder.name}@{encoder.version}",
            params=params,
        )
        if existing is not None:
            return existing

    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress("encode", done, len(data.texts))

    embeddings = encoder.encode(data.texts, progress=tick)
    if progress:
        progress("calibrate", 0, folds + 1)
    oof, classes = cross_validated_probabilities(
        embeddings, data.labels, c=c, folds=folds, seed=seed
    )
    oof_pred = [classes[i] for i in oof.argmax(axis=1)]
    calibration = Calibration(
        confidence=oof.max(axis=1).astype(np.float32),
        correct=np.array([p == g for p, g in zip(oof_pred, data.labels, strict=True)]),
    )
    if progress:
        progress("fit", folds, folds + 1)
    head = fit_head(embeddings, data.labels, c=c, seed=seed)
    threshold = calibration.threshold(settings.target_precision)
    card = {
        "task": "intent-classification",
        "encoder": f"{encoder.name}@{encoder.version}",
        "encoder_sha256": encoder.model_sha256,
        "training_data": data.origin,
        "training_sha256": data.sha256,
        "training_rows": len(data.texts),
        "labels": head.labels,
        "params": params,
        "code_version": __version__,
        "metrics": {
            "cv_accuracy": round(float(calibration.correct.mean()), 4),
            "cv_macro_f1": round(_macro_f1(data.labels, oof_pred), 4),
        },
        "gate": {
            "target_precision": settings.target_precision,
            "threshold": threshold,
            "cv_automation": round(calibration.automation(threshold), 4),
        },
    }
    card.update(card_extra or {})
    if evaluate is not None:
        card["evaluation"] = dict(evaluate(head, calibration))
    artifact = _pack(head, calibration)
    if progress:
        progress("fit", folds + 1, folds + 1)
    return registry.register(
        name, "classifier", artifact, card, created_by=created_by, promote=promote
    )


def _pack(head: LinearHead, calibration: Calibration) -> bytes:
    buf = io.BytesIO()
    np.savez(
        buf,
        coef=head.coef,
        intercept=head.intercept,
        labels=np.array(head.labels),
        oof_confidence=calibration.confidence,
        oof_correct=calibration.correct,
    )
    return buf.getvalue()


def load_classifier(
    registry: ModelRegistry, name: str, version: str | None = None
) -> tuple[ModelRecord, LinearHead, Calibration]:
    """Load a registered classifier (production when ``version`` is omitted)."""
    record = registry.get(name, version)
    blob = registry.artifact_path(record.name, record.version).read_bytes()
    with np.load(io.BytesIO(blob), allow_pickle=False) as packed:
        head = LinearHead(packed["coef"], packed["intercept"], [str(x) for x in packed["labels"]])
        calibration = Calibration(packed["oof_confidence"], packed["oof_correct"])
    return record, head, calibration
