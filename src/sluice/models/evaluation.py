"""The promotion gate: a candidate against the production version, on the same held-out set.

A version may leave ``candidate`` (or ``canary``) only with a passing evaluation against
the *current* production version (:mod:`sluice.models.registry`). This module computes
one for a classifier and records it.

The gate asks one question: **at the automation rate production reaches, is the
candidate's precision not worse?**

1. Production's automation rate is the share of held-out items at or above its own
   calibrated gate threshold (for ``SLUICE_TARGET_PRECISION``): ``k`` of ``n`` items.
   Production's precision is the share of those ``k`` it labels right.
2. The candidate automates the same number of items: its ``k`` most confident ones.
   Its precision is the share of those it labels right.
3. It passes when ``candidate_precision >= production_precision - tolerance``
   (``SLUICE_PROMOTION_PRECISION_TOLERANCE``, default 0).

Comparing at the same rate, not each at its own threshold, keeps a candidate from
"winning" by automating less: its calibration could be optimistic or pessimistic, but
the held-out set judges both on the same number of items. When production automates no
held-out item the comparison is empty and the gate does not pass (use a larger set).
With no production version yet, an evaluation passes trivially (its baseline is None).

Both versions' figures (:func:`evaluate_head`), the rate, both precisions, the tolerance,
the decision and why are kept in the evaluation's metrics. Embeddings of the held-out
texts are computed once and used for both heads.

Example:
    >>> holdout = read_labelled_csv(sample_path("test.csv"))  # doctest: +SKIP
    >>> record = evaluate_for_promotion(settings, registry, "support-intent", "2", holdout,
    ...                                 created_by="cli:ana")  # doctest: +SKIP
    >>> record.passed, record.metrics["gate"]["why"]  # doctest: +SKIP
    (True, 'candidate precision 0.9910 is not worse than ...')
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sluice.config import Settings
from sluice.errors import ModelNotFoundError, PromotionError
from sluice.models.classifier import LinearHead
from sluice.models.encoder import Encoder, load_encoder
from sluice.models.registry import EvaluationRecord, ModelRecord, ModelRegistry
from sluice.models.training import Calibration, LabelledData, load_classifier

__all__ = ["GATE_RULE", "evaluate_for_promotion", "evaluate_head"]

#: The gate's rule in words, recorded with every evaluation.
GATE_RULE = "candidate precision at production's automation rate >= production's - tolerance"


def evaluate_head(
    encoder: Encoder,
    head: LinearHead,
    calibration: Calibration,
    holdout: LabelledData,
    *,
    target_precision: float,
    embeddings: Any = None,
) -> dict[str, Any]:
    """Accuracy, macro-F1, and automation and precision at the model's own gate.

    Args:
        encoder: Encodes the held-out texts when ``embeddings`` is not given.
        head: The classifier head.
        calibration: Its out-of-fold calibration (gives its gate threshold).
        holdout: Held-out texts and labels.
        target_precision: Precision the gate threshold is chosen for.
        embeddings: The held-out texts' embeddings, if already computed.
    """
    from sklearn.metrics import f1_score

    vectors = encoder.encode(holdout.texts) if embeddings is None else embeddings
    predictions = head.predict(vectors, top=1)
    labels = [p.label for p in predictions]
    confidence = [p.confidence for p in predictions]
    threshold = calibration.threshold(target_precision)
    auto = [i for i, c in enumerate(confidence) if c >= threshold]
    right = [labels[i] == holdout.labels[i] for i in auto]
    return {
        "holdout": holdout.origin,
        "holdout_sha256": holdout.sha256,
        "holdout_rows": len(holdout.texts),
        "accuracy": round(
            sum(a == b for a, b in zip(labels, holdout.labels, strict=True)) / len(labels), 4
        ),
        "macro_f1": round(float(f1_score(holdout.labels, labels, average="macro")), 4),
        "threshold": threshold,
        "automation": round(len(auto) / len(labels), 4),
        "auto_precision": round(sum(right) / len(right), 4) if right else None,
    }


def evaluate_for_promotion(
    settings: Settings,
    registry: ModelRegistry,
    name: str,
    version: str,
    holdout: LabelledData,
    *,
    encoder: Encoder | None = None,
    embeddings: Any = None,
    created_by: str,
) -> EvaluationRecord:
    """Evaluate ``name@version`` against the production version and record the result.

    Args:
        settings: Runtime settings (target precision, promotion tolerance, encoder).
        registry: Where both versions are, and where the evaluation is recorded.
        name: Model name.
        version: The version to evaluate (a candidate or canary classifier).
        holdout: Held-out texts and labels, the same for both versions.
        encoder: Encoder to use (default: the packaged one).
        embeddings: The held-out texts' embeddings, if already computed.
        created_by: Who runs it (recorded and audited).

    Returns:
        The recorded evaluation; ``passed`` says whether the gate passed.

    Raises:
        ModelNotFoundError: No such version.
        PromotionError: The version is the production version itself, or not a
            classifier.
    """
    record = registry.get(name, version)
    try:
        production: ModelRecord | None = registry.production(name)
    except ModelNotFoundError:
        production = None
    if production is not None and production.version == version:
        raise PromotionError(
            f"{name}@{version} is the production version: there is nothing to compare it with",
            hint=f"evaluate a candidate or canary (`sluice models list --name {name}`)",
        )
    for checked in (record, production):
        if checked is not None and checked.kind != "classifier":
            raise PromotionError(
                f"{checked.name}@{checked.version} is a {checked.kind}; the promotion gate "
                "evaluates classifiers on a labelled held-out set",
                hint="record another kind's evaluation with ModelRegistry.record_evaluation",
            )
    encoder = encoder or load_encoder(settings)
    vectors = encoder.encode(holdout.texts) if embeddings is None else embeddings
    tolerance = settings.promotion_precision_tolerance
    _, head, calibration = load_classifier(registry, name, version)
    candidate = evaluate_head(
        encoder,
        head,
        calibration,
        holdout,
        target_precision=settings.target_precision,
        embeddings=vectors,
    )
    metrics: dict[str, Any] = {
        "holdout": holdout.origin,
        "holdout_sha256": holdout.sha256,
        "holdout_rows": len(holdout.texts),
        "target_precision": settings.target_precision,
        "candidate": candidate,
        "production": None,
    }
    if production is None:
        metrics["gate"] = {
            "rule": GATE_RULE,
            "tolerance": tolerance,
            "passed": True,
            "why": "no production version to compare with: the gate passes trivially",
        }
    else:
        _, prod_head, prod_calibration = load_classifier(registry, name, production.version)
        metrics["production"] = evaluate_head(
            encoder,
            prod_head,
            prod_calibration,
            holdout,
            target_precision=settings.target_precision,
            embeddings=vectors,
        )
        metrics["gate"] = _gate(
            _scores(head, vectors, holdout.labels),
            _scores(prod_head, vectors, holdout.labels),
            production_threshold=prod_calibration.threshold(settings.target_precision),
            tolerance=tolerance,
        )
    return registry.record_evaluation(
        name,
        version,
        baseline_version=production.version if production else None,
        holdout_sha256=holdout.sha256,
        metrics=metrics,
        passed=bool(metrics["gate"]["passed"]),
        created_by=created_by,
    )


def _scores(head: LinearHead, vectors: Any, gold: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each item's top confidence, and whether its top label is right."""
    predictions = head.predict(vectors, top=1)
    confidence = np.array([p.confidence for p in predictions], dtype=np.float64)
    correct = np.array([p.label == g for p, g in zip(predictions, gold, strict=True)])
    return confidence, correct


def _gate(
    candidate: tuple[np.ndarray, np.ndarray],
    production: tuple[np.ndarray, np.ndarray],
    *,
    production_threshold: float,
    tolerance: float,
) -> dict[str, Any]:
    """The gate's figures and decision (module docs)."""
    prod_confidence, prod_correct = production
    cand_confidence, cand_correct = candidate
    rows = len(prod_confidence)
    automated = prod_confidence >= production_threshold
    items = int(automated.sum())
    figures: dict[str, Any] = {
        "rule": GATE_RULE,
        "production_threshold": production_threshold,
        "automation_rate": round(items / rows, 6) if rows else 0.0,
        "items": items,
        "tolerance": tolerance,
    }
    if items == 0:
        return figures | {
            "production_precision": None,
            "candidate_precision": None,
            "candidate_confidence_at_rate": None,
            "passed": False,
            "why": (
                f"production automates no held-out item at its gate (threshold "
                f"{production_threshold:.4f}): there is no precision to compare; "
                "evaluate on a larger held-out set"
            ),
        }
    prod_precision = float(prod_correct[automated].mean())
    # The candidate's `items` most confident items; ties keep the held-out order.
    top = np.argsort(-cand_confidence, kind="stable")[:items]
    cand_precision = float(cand_correct[top].mean())
    # Equal counts give equal floats; the epsilon only absorbs the tolerance's rounding.
    passed = cand_precision >= prod_precision - tolerance - 1e-12
    at = (
        f"on the {items} most confident of {rows} held-out items "
        f"({items / rows:.1%}, production's automation rate)"
    )
    allowance = f" minus the tolerance {tolerance:g}" if tolerance else ""
    why = (
        f"candidate precision {cand_precision:.4f} is not worse than production's "
        f"{prod_precision:.4f}{allowance} {at}"
        if passed
        else f"candidate precision {cand_precision:.4f} is below production's "
        f"{prod_precision:.4f}{allowance} {at}"
    )
    return figures | {
        "production_precision": round(prod_precision, 6),
        "candidate_precision": round(cand_precision, 6),
        "candidate_confidence_at_rate": round(float(cand_confidence[top[-1]]), 6),
        "passed": bool(passed),
        "why": why,
    }
