"""A linear classifier head over frozen sentence embeddings, with a calibrated gate.

Training fits a multinomial logistic regression (scikit-learn) on embeddings, then picks
the confidence threshold of the auto/review gate from *out-of-fold* predictions on the
training data: the lowest threshold at which the items above it reach the target
precision. Nothing about the threshold is hard-coded; a different target precision or
different data gives a different threshold.

At run time the head is plain NumPy (``softmax(X @ W.T + b)``): no scikit-learn, no
pickle. The artifact is an ``.npz`` file with ``coef``, ``intercept`` and ``labels``.

Example:
    >>> import numpy as np
    >>> head = LinearHead(np.eye(2, dtype=np.float32), np.zeros(2, np.float32), ["a", "b"])
    >>> head.predict(np.array([[0.1, 2.0]], dtype=np.float32))[0].label
    'b'
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sluice.errors import TrainingError

__all__ = [
    "LinearHead",
    "Prediction",
    "choose_threshold",
    "cross_validated_probabilities",
    "fit_head",
]

Floats = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Prediction:
    """One item's prediction: the top label, its probability, and the runners-up."""

    label: str
    confidence: float
    alternatives: tuple[tuple[str, float], ...]


class LinearHead:
    """Multinomial logistic regression weights, applied with NumPy."""

    def __init__(self, coef: Floats, intercept: Floats, labels: Sequence[str]) -> None:
        if coef.shape[0] != len(labels) or intercept.shape[0] != len(labels):
            raise TrainingError(f"weights of shape {coef.shape} do not match {len(labels)} labels")
        self.coef = coef.astype(np.float32)
        self.intercept = intercept.astype(np.float32)
        self.labels = list(labels)

    def probabilities(self, embeddings: Floats) -> Floats:
        """Class probabilities, one row per embedding."""
        logits = embeddings @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        return logits

    def predict(self, embeddings: Floats, *, top: int = 3) -> list[Prediction]:
        """Top label, confidence and ``top - 1`` alternatives per embedding."""
        probs = self.probabilities(embeddings)
        order = np.argsort(-probs, axis=1)[:, :top]
        out = []
        for row, idx in zip(probs, order, strict=True):
            ranked = [(self.labels[i], float(row[i])) for i in idx]
            out.append(Prediction(ranked[0][0], ranked[0][1], tuple(ranked[1:])))
        return out

    def to_bytes(self) -> bytes:
        """Serialize as ``.npz`` (no pickle)."""
        buf = io.BytesIO()
        np.savez(buf, coef=self.coef, intercept=self.intercept, labels=np.array(self.labels))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> LinearHead:
        """Load what :meth:`to_bytes` wrote."""
        with np.load(io.BytesIO(blob), allow_pickle=False) as data:
            return cls(data["coef"], data["intercept"], [str(x) for x in data["labels"]])


def _logistic_regression(c: float, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=2000, random_state=seed)


def fit_head(
    embeddings: Floats, labels: Sequence[str], *, c: float = 20.0, seed: int = 0
) -> LinearHead:
    """Fit the head on all the given examples.

    Raises:
        TrainingError: Fewer than two labels, or a label with a single example.
    """
    from threadpoolctl import threadpool_limits

    _check_labels(labels)
    # One BLAS thread: measured here, lbfgs on 10k x 384 takes 1.3-1.8 s on one thread
    # and 3.6-30 s on two, where OpenBLAS spins against whatever else runs.
    with threadpool_limits(1):
        model = _logistic_regression(c, seed).fit(embeddings, np.asarray(labels))
    return LinearHead(
        model.coef_.astype(np.float32),
        model.intercept_.astype(np.float32),
        [str(x) for x in model.classes_],
    )


def cross_validated_probabilities(
    embeddings: Floats, labels: Sequence[str], *, c: float = 20.0, folds: int = 5, seed: int = 0
) -> tuple[Floats, list[str]]:
    """Out-of-fold class probabilities for every training example (stratified k-fold).

    Returns:
        The probability matrix (rows aligned with ``labels``) and its column labels.
    """
    from sklearn.model_selection import StratifiedKFold

    _check_labels(labels)
    y = np.asarray(labels)
    classes = sorted(set(labels))
    smallest = min(int((y == c_).sum()) for c_ in classes)
    folds = max(2, min(folds, smallest))
    out = np.zeros((len(y), len(classes)), dtype=np.float32)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train_idx, test_idx in splitter.split(embeddings, y):
        head = fit_head(embeddings[train_idx], list(y[train_idx]), c=c, seed=seed)
        probs = head.probabilities(embeddings[test_idx])
        columns = [classes.index(label) for label in head.labels]
        out[np.ix_(test_idx, columns)] = probs
    return out, classes


def choose_threshold(confidence: Floats, correct: npt.NDArray[np.bool_], target: float) -> float:
    """The lowest confidence threshold whose accepted items reach ``target`` precision.

    Items are sorted by confidence; the threshold is the confidence of the last item in
    the longest prefix whose precision is at least ``target``. If no prefix reaches the
    target the threshold is above every confidence (automate nothing).

    >>> conf = np.array([0.99, 0.95, 0.9, 0.6], dtype=np.float32)
    >>> round(choose_threshold(conf, np.array([True, True, False, True]), 0.9), 6)
    0.95
    """
    if confidence.shape != correct.shape or confidence.ndim != 1:
        raise TrainingError("confidence and correctness must be 1-D arrays of the same length")
    order = np.argsort(-confidence, kind="stable")
    ranked = confidence[order]
    precision = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    # A threshold admits a whole group of tied confidences, so only the end of a tie
    # group is a possible cut.
    group_end = np.append(ranked[1:] != ranked[:-1], True)
    ok = np.nonzero((precision >= target) & group_end)[0]
    if len(ok) == 0:
        return 1.01  # above every probability: automate nothing
    # Not rounded: a threshold rounded up would exclude the very item that set it.
    return float(ranked[ok[-1]])


def _check_labels(labels: Sequence[str]) -> None:
    values, counts = np.unique(np.asarray(labels), return_counts=True)
    if len(values) < 2:
        raise TrainingError("training data needs at least two labels")
    lonely = [str(v) for v, n in zip(values, counts, strict=True) if n < 2]
    if lonely:
        raise TrainingError(
            f"labels with a single example cannot be validated: {', '.join(lonely[:10])}",
            hint="add examples or drop those labels",
        )
