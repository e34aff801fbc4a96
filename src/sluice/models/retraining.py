"""Feedback into training: a candidate trained on the data plus the reviewers' labels.

Every human decision with a label (a correction, an approval, a graded audit) is a
labelled example with provenance: which decision, which reviewer, which item. A retrain
trains a candidate on the original training data plus those examples, evaluates it and
the production version on the same held-out set, and registers the candidate - as a
*candidate*, with its evaluation in its card. The same comparison is recorded as the
candidate's promotion evaluation (:func:`~sluice.models.evaluation.evaluate_for_promotion`),
so ``sluice models promote`` can follow at once when it passed. It never promotes
itself; promotion is a person's decision.

Examples whose text is also in the held-out set are left out of training: they would
make the evaluation look better than it is.

Example:
    >>> result = retrain_with_corrections(settings, registry, "support-intent", base,
    ...                                   corrections, holdout)  # doctest: +SKIP
    >>> result.candidate.stage  # doctest: +SKIP
    'candidate'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sluice.config import Settings
from sluice.errors import TrainingError
from sluice.models.classifier import LinearHead
from sluice.models.encoder import load_encoder
from sluice.models.evaluation import evaluate_for_promotion, evaluate_head
from sluice.models.registry import EvaluationRecord, ModelRecord, ModelRegistry
from sluice.models.training import (
    Calibration,
    LabelledData,
    load_classifier,
    train_classifier,
)

__all__ = ["Correction", "RetrainResult", "evaluate_head", "retrain_with_corrections"]


@dataclass(frozen=True)
class Correction:
    """A labelled example from a human decision, with where it came from."""

    text: str
    label: str
    provenance: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RetrainResult:
    """The candidate, both evaluations, and which corrections were used.

    Attributes:
        candidate: The registered candidate.
        candidate_evaluation: Its figures on the held-out set.
        production_evaluation: The production version's, or None without one.
        corrections_used: Corrections added to the training data.
        corrections_left_out: Corrections left out (their text is held out).
        evaluation: The recorded promotion evaluation (None when the "candidate" is an
            identical version that is already production).
    """

    candidate: ModelRecord
    candidate_evaluation: Mapping[str, Any]
    production_evaluation: Mapping[str, Any] | None
    corrections_used: int
    corrections_left_out: int
    evaluation: EvaluationRecord | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "candidate": self.candidate.to_dict(),
            "candidate_evaluation": dict(self.candidate_evaluation),
            "production_evaluation": (
                dict(self.production_evaluation) if self.production_evaluation else None
            ),
            "corrections_used": self.corrections_used,
            "corrections_left_out": self.corrections_left_out,
            "evaluation": self.evaluation.to_dict() if self.evaluation else None,
        }


def retrain_with_corrections(
    settings: Settings,
    registry: ModelRegistry,
    name: str,
    base: LabelledData,
    corrections: Sequence[Correction],
    holdout: LabelledData,
    *,
    created_by: str = "local-admin",
) -> RetrainResult:
    """Train, evaluate and register a candidate, and record its promotion evaluation.

    Args:
        settings: Runtime settings.
        registry: Where the candidate is registered and evaluated.
        name: Model name.
        base: The original training data.
        corrections: Labelled examples from reviewers' decisions.
        holdout: Held-out set both versions are evaluated on.
        created_by: Who retrains (recorded as author and evaluator).

    Raises:
        TrainingError: No usable correction, or a label the base data does not know.
    """
    held_out = set(holdout.texts)
    usable = [c for c in corrections if c.text not in held_out]
    if not usable:
        raise TrainingError(
            f"no corrections to learn from ({len(corrections)} found, "
            f"{len(corrections) - len(usable)} of them in the held-out set)",
            hint="decide some review tasks first, or evaluate on another --holdout",
        )
    known = set(base.labels)
    unknown = sorted({c.label for c in usable} - known)
    if unknown:
        raise TrainingError(f"corrections use labels the training data lacks: {', '.join(unknown)}")
    provenance = [dict(c.provenance) for c in usable]
    digest = hashlib.sha256(
        json.dumps([[c.text, c.label] for c in usable], sort_keys=True).encode()
    ).hexdigest()
    data = LabelledData(
        texts=[*base.texts, *(c.text for c in usable)],
        labels=[*base.labels, *(c.label for c in usable)],
        sha256=hashlib.sha256(f"{base.sha256}+{digest}".encode()).hexdigest(),
        origin=f"{base.origin} + {len(usable)} reviewer corrections",
    )
    encoder = load_encoder(settings)
    holdout_vectors = encoder.encode(holdout.texts)
    try:
        _, prod_head, prod_calibration = load_classifier(registry, name)
        production = evaluate_head(
            encoder,
            prod_head,
            prod_calibration,
            holdout,
            target_precision=settings.target_precision,
            embeddings=holdout_vectors,
        )
    except Exception as exc:  # no production version yet: nothing to compare against
        from sluice.errors import ModelNotFoundError

        if not isinstance(exc, ModelNotFoundError):
            raise
        production = None
    evaluation: dict[str, Any] = {}

    def evaluate(head: LinearHead, calibration: Calibration) -> Mapping[str, Any]:
        evaluation.update(
            evaluate_head(
                encoder,
                head,
                calibration,
                holdout,
                target_precision=settings.target_precision,
                embeddings=holdout_vectors,
            )
        )
        return {"candidate": dict(evaluation), "production": production}

    candidate = train_classifier(
        settings,
        registry,
        name,
        data,
        encoder=encoder,
        promote=False,
        created_by=created_by,
        card_extra={
            "corrections": {
                "count": len(usable),
                "sha256": digest,
                "decisions": [p.get("decision_id") for p in provenance],
                "reviewers": sorted({str(p.get("reviewer")) for p in provenance}),
            }
        },
        evaluate=evaluate,
    )
    if not evaluation:  # an identical candidate existed: take its recorded evaluation
        evaluation.update(dict(candidate.card.get("evaluation", {}).get("candidate", {})))
    gate = None
    if candidate.stage != "production":
        gate = evaluate_for_promotion(
            settings,
            registry,
            name,
            candidate.version,
            holdout,
            encoder=encoder,
            embeddings=holdout_vectors,
            created_by=created_by,
        )
    return RetrainResult(
        candidate, evaluation, production, len(usable), len(corrections) - len(usable), gate
    )
