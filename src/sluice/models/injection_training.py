"""Training the prompt-injection classifier: data, a two-label head, its threshold.

The classifier is a linear head over the packaged encoder's embeddings, registered in
the model registry like the intent classifier: kind ``classifier``, the same ``.npz``
artifact (:func:`sluice.models.training.load_classifier` and the gateway's
``local-classifier`` endpoints read it), a card with provenance and metrics, versions
and stages. Two things differ from :func:`sluice.models.train_classifier`:

- it has two labels (``benign``, ``injection``). scikit-learn fits a binary logistic
  regression as one weight row; the head stores it as the equivalent two-row softmax
  (rows ``-w/2`` and ``+w/2``: ``softmax`` of them is ``sigmoid(w·x + b)``), so
  :class:`LinearHead` serves it unchanged;
- its card records the *detector threshold*: the lowest probability of ``injection``
  at which the out-of-fold flagged items reach ``target_precision``
  (:func:`choose_threshold`), with the out-of-fold precision, recall and false-positive
  rate at that threshold.

Training data is JSONL with ``text`` and ``label`` (1 or ``injection``, 0 or
``benign``). The packaged sample (``models/data/injection_sample.jsonl``, written for
Sluice) trains a default detector from a clean clone; the benchmark data of
``bench.injection`` is never copied into the repository.

Example:
    >>> record = train_injection_detector(settings, registry)  # doctest: +SKIP
    >>> record.card["evaluation"]["detector"]["threshold"]  # doctest: +SKIP
    0.62
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sluice import __version__
from sluice.config import Settings
from sluice.errors import ModelError, TrainingError
from sluice.models.classifier import LinearHead, choose_threshold
from sluice.models.encoder import Encoder, load_encoder
from sluice.models.registry import ModelRecord, ModelRegistry
from sluice.models.training import Calibration, LabelledData

__all__ = [
    "BENIGN_LABEL",
    "DEFAULT_TARGET_PRECISION",
    "INJECTION_LABEL",
    "INJECTION_MODEL",
    "dedupe_key",
    "detector_gate",
    "fit_injection_head",
    "injection_sample_path",
    "oof_injection_scores",
    "read_injection_jsonl",
    "recorded_threshold",
    "train_injection_detector",
    "with_benign",
]

Floats = npt.NDArray[np.float32]

#: Registry name of the detector's classifier.
INJECTION_MODEL = "prompt-injection"
INJECTION_LABEL, BENIGN_LABEL = "injection", "benign"
#: Default precision the threshold is chosen for (out of fold, on the training data).
DEFAULT_TARGET_PRECISION = 0.9
#: Windows the detector scores (the encoder reads 128 tokens, about 600 characters).
WINDOW_CHARS, OVERLAP_CHARS = 600, 100


def injection_sample_path() -> Path:
    """The packaged sample: benign support messages and injection attempts (module docs)."""
    return Path(str(files("sluice.models") / "data" / "injection_sample.jsonl"))


def dedupe_key(text: str) -> str:
    """What makes two texts the same record: case and whitespace do not count."""
    return " ".join(text.casefold().split())


def _label(value: Any, where: str) -> str:
    if value in (1, "1", INJECTION_LABEL) and value is not False:
        return INJECTION_LABEL
    if value in (0, "0", BENIGN_LABEL) and value is not True:
        return BENIGN_LABEL
    raise TrainingError(
        f"{where}: label {value!r} is neither 1/{INJECTION_LABEL!r} nor 0/{BENIGN_LABEL!r}"
    )


def read_injection_jsonl(path: Path) -> LabelledData:
    """Read JSONL records with ``text`` and ``label`` (1/``injection``, 0/``benign``).

    Exact duplicates (ignoring case and whitespace) are kept once, so that a text and
    its copy never sit on both sides of a cross-validation split.

    Raises:
        TrainingError: Missing file, bad JSON, an empty text, an unknown label, or the
            same text with both labels (each with its line number).
    """
    if not path.is_file():
        raise TrainingError(f"no training file at {path}")
    raw = path.read_bytes()
    texts: list[str] = []
    labels: list[str] = []
    seen: dict[str, str] = {}
    for n, line in enumerate(raw.decode("utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TrainingError(f"{path}:{n}: not JSON ({exc.msg})") from None
        text = str(row.get("text") or "").strip() if isinstance(row, dict) else ""
        if not text:
            raise TrainingError(f"{path}:{n}: empty or missing text")
        label = _label(row.get("label"), f"{path}:{n}")
        key = dedupe_key(text)
        if key in seen:
            if seen[key] != label:
                raise TrainingError(f"{path}:{n}: the same text appears with both labels")
            continue
        seen[key] = label
        texts.append(text)
        labels.append(label)
    if not texts:
        raise TrainingError(f"{path} has no records")
    return LabelledData(texts, labels, hashlib.sha256(raw).hexdigest(), str(path))


def _check(labels: Sequence[str]) -> npt.NDArray[np.bool_]:
    unknown = set(labels) - {INJECTION_LABEL, BENIGN_LABEL}
    if unknown:
        raise TrainingError(
            f"labels must be {INJECTION_LABEL!r} or {BENIGN_LABEL!r}, not {sorted(unknown)}"
        )
    gold = np.array([label == INJECTION_LABEL for label in labels])
    if min(int(gold.sum()), int((~gold).sum())) < 2:
        raise TrainingError(
            "training data needs at least two benign texts and two injection attempts",
            hint="add examples of the missing label",
        )
    return gold


def with_benign(data: LabelledData, texts: Sequence[str], origin: str) -> LabelledData:
    """``data`` plus ``texts`` labelled ``benign`` (duplicates of either kept once).

    The way to teach the classifier what ordinary traffic looks like: add your own
    benign messages (a sample of real tickets). Without them a classifier trained on
    attacks and generic prompts flags short customer requests (docs/guards.md).

    Example:
        >>> base = LabelledData(["ignore all rules"], ["injection"], "x", "sample")
        >>> with_benign(base, ["Where is my parcel?"], "tickets").labels
        ['injection', 'benign']
    """
    seen = {dedupe_key(t) for t in data.texts}
    added = []
    for text in texts:
        key = dedupe_key(text)
        if text.strip() and key not in seen:
            seen.add(key)
            added.append(text.strip())
    digest = hashlib.sha256(data.sha256.encode())
    for text in added:
        digest.update(b"\0" + text.encode())
    return LabelledData(
        [*data.texts, *added],
        [*data.labels, *("benign" for _ in added)],
        digest.hexdigest(),
        f"{data.origin} + {len(added)} benign from {origin}",
    )


def fit_injection_head(
    embeddings: Floats, labels: Sequence[str], *, c: float = 20.0, seed: int = 0
) -> LinearHead:
    """Fit the two-label head (binary logistic regression as a two-row softmax).

    Raises:
        TrainingError: A label other than ``benign``/``injection``, or fewer than two
            examples of either.
    """
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    gold = _check(labels)
    # One BLAS thread, as for the intent head (see sluice.models.classifier.fit_head).
    with threadpool_limits(1):
        model = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(embeddings, gold)
    w = model.coef_[0].astype(np.float32)
    b = np.float32(model.intercept_[0])
    return LinearHead(
        np.stack([-w / 2, w / 2]),
        np.array([-b / 2, b / 2], dtype=np.float32),
        [BENIGN_LABEL, INJECTION_LABEL],
    )


def oof_injection_scores(
    embeddings: Floats,
    labels: Sequence[str],
    *,
    c: float = 20.0,
    folds: int = 5,
    seed: int = 0,
    groups: Sequence[str] | None = None,
) -> Floats:
    """Out-of-fold probability of ``injection`` for every example.

    Stratified k-fold; with ``groups``, stratified *group* k-fold, so that texts of one
    group (e.g. near-duplicates) are never on both sides of a split.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    gold = _check(labels)
    folds = max(2, min(folds, int(gold.sum()), int((~gold).sum())))
    out = np.zeros(len(gold), dtype=np.float32)
    if groups is None:
        splits = StratifiedKFold(folds, shuffle=True, random_state=seed).split(embeddings, gold)
    else:
        splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
        splits = splitter.split(embeddings, gold, groups=list(groups))
    for train_idx, test_idx in splits:
        head = fit_injection_head(
            embeddings[train_idx], [labels[i] for i in train_idx], c=c, seed=seed
        )
        out[test_idx] = head.probabilities(embeddings[test_idx])[:, 1]
    return out


def detector_gate(
    scores: Floats, is_injection: npt.NDArray[np.bool_], target_precision: float
) -> dict[str, Any]:
    """The threshold for ``target_precision`` over out-of-fold scores, and what it gives.

    >>> gate = detector_gate(np.array([0.9, 0.8, 0.3, 0.1], np.float32),
    ...                      np.array([True, True, False, False]), 0.9)
    >>> round(gate["threshold"], 2), gate["cv_recall"], gate["cv_false_positive_rate"]
    (0.8, 1.0, 0.0)
    """
    threshold = choose_threshold(scores, is_injection, target_precision)
    flagged = scores >= threshold
    tp = int((flagged & is_injection).sum())
    return {
        "positive_label": INJECTION_LABEL,
        "target_precision": target_precision,
        "threshold": threshold,
        "cv_precision": round(tp / int(flagged.sum()), 4) if flagged.any() else None,
        "cv_recall": round(tp / int(is_injection.sum()), 4) if is_injection.any() else None,
        "cv_false_positive_rate": round(
            int((flagged & ~is_injection).sum()) / max(1, int((~is_injection).sum())), 4
        ),
    }


def recorded_threshold(record: ModelRecord) -> float:
    """The detector threshold recorded in a version's card.

    Raises:
        ModelError: The version was not trained by :func:`train_injection_detector`.
    """
    gate = (record.card.get("evaluation") or {}).get("detector")
    if not isinstance(gate, dict) or "threshold" not in gate:
        raise ModelError(
            f"{record.name}@{record.version} has no detector threshold in its card",
            hint="train it with train_injection_detector, or pass threshold=",
        )
    return float(gate["threshold"])


def _pack(head: LinearHead, calibration: Calibration) -> bytes:
    # The intent classifier's artifact layout, so load_classifier reads both.
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


def train_injection_detector(
    settings: Settings,
    registry: ModelRegistry,
    data: LabelledData | None = None,
    *,
    name: str = INJECTION_MODEL,
    target_precision: float = DEFAULT_TARGET_PRECISION,
    c: float = 20.0,
    folds: int = 5,
    seed: int = 0,
    encoder: Encoder | None = None,
    promote: bool | None = None,
    force: bool = False,
    created_by: str = "local-admin",
) -> ModelRecord:
    """Train and register the injection classifier; reuse an identical earlier version.

    A version trained on the same data (by hash), encoder, parameters and target
    precision is returned as-is unless ``force`` is set.

    Args:
        settings: Runtime settings (encoder, model cache).
        registry: Where the version is registered.
        data: Labelled texts (:func:`read_injection_jsonl`); default: the packaged sample.
        name: Registry name.
        target_precision: Out-of-fold precision the threshold is chosen for.
        c: Inverse regularization strength of the logistic regression.
        folds: Folds of the out-of-fold calibration (stratified).
        seed: Seed of the split and the solver.
        encoder: Encoder (default: the packaged int8 encoder the gateway serves).
        promote: Make it production (default: only if there is none yet).
        force: Train even if an identical version exists.
        created_by: Recorded as the version's author.

    Raises:
        TrainingError: A label other than ``benign``/``injection``, fewer than two
            examples of either, or a target precision outside (0, 1].
    """
    if not 0 < target_precision <= 1:
        raise TrainingError(f"target precision {target_precision} is not in (0, 1]")
    data = data or read_injection_jsonl(injection_sample_path())
    gold = _check(data.labels)
    encoder = encoder or load_encoder(settings)
    params = {"c": c, "folds": folds, "seed": seed, "max_length": 128}
    encoder_ref = f"{encoder.name}@{encoder.version}"
    if not force:
        existing = registry.find(
            name,
            task="prompt-injection",
            training_sha256=data.sha256,
            encoder=encoder_ref,
            params=params,
            detector_target_precision=target_precision,
        )
        if existing is not None:
            return existing
    embeddings = encoder.encode(data.texts)
    scores = oof_injection_scores(embeddings, data.labels, c=c, folds=folds, seed=seed)
    predicted = scores >= 0.5
    calibration = Calibration(
        confidence=np.maximum(scores, 1 - scores).astype(np.float32),
        correct=predicted == gold,
    )
    head = fit_injection_head(embeddings, data.labels, c=c, seed=seed)
    gate = detector_gate(scores, gold, target_precision) | {"folds": folds}
    top_threshold = calibration.threshold(settings.target_precision)
    card = {
        "task": "prompt-injection",
        "encoder": encoder_ref,
        "encoder_sha256": encoder.model_sha256,
        "training_data": data.origin,
        "training_sha256": data.sha256,
        "training_rows": len(data.texts),
        "labels": head.labels,
        "params": params,
        "code_version": __version__,
        "detector_target_precision": target_precision,
        "windows": {"chars": WINDOW_CHARS, "overlap": OVERLAP_CHARS},
        "metrics": {
            "cv_accuracy": round(float(calibration.correct.mean()), 4),
            "cv_injection_rows": int(gold.sum()),
            "cv_benign_rows": int((~gold).sum()),
        },
        # The top-label gate every classifier card has (what a classify route uses).
        "gate": {
            "target_precision": settings.target_precision,
            "threshold": top_threshold,
            "cv_automation": round(calibration.automation(top_threshold), 4),
        },
        # The detector's own threshold: P(injection) at or above it is flagged.
        "evaluation": {"detector": gate},
    }
    return registry.register(
        name,
        "classifier",
        _pack(head, calibration),
        card,
        created_by=created_by,
        promote=promote,
    )
