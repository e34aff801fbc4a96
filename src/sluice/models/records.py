"""What the model registry hands out: versions, their stages, history and evaluations.

Plain frozen dataclasses, JSON-ready through ``to_dict``; the registry
(:mod:`sluice.models.registry`) builds them from its tables and re-exports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "EvaluationRecord",
    "ModelRecord",
    "ModelRef",
    "Serving",
    "Stage",
    "StageChange",
    "evaluation_from_row",
    "record_from_row",
    "stage_change_from_row",
]

#: Where a version is in its life (see :mod:`sluice.models.registry`).
Stage = Literal["candidate", "canary", "production", "retired"]


@dataclass(frozen=True)
class ModelRef:
    """A model by name and version, as recorded in lineage.

    >>> str(ModelRef("support-intent", "3"))
    'support-intent@3'
    """

    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class ModelRecord:
    """A model version in the registry (without its artifact bytes).

    A *stored* version carries its artifact in the registry; a *catalogued* one runs
    elsewhere (:attr:`endpoint`) and is recorded only by its sha256 and card.
    """

    name: str
    version: str
    kind: str
    sha256: str
    card: Mapping[str, Any]
    stage: Stage
    created_by: str
    created_at: datetime

    @property
    def ref(self) -> ModelRef:
        """This version's :class:`ModelRef`."""
        return ModelRef(self.name, self.version)

    @property
    def catalogued(self) -> bool:
        """Whether it is served, not stored (see :meth:`ModelRegistry.catalogue`)."""
        return bool(self.card.get("catalogued"))

    @property
    def endpoint(self) -> str | None:
        """Where a catalogued version runs (``local:/path``, ``http://...``); else None."""
        endpoint = self.card.get("endpoint")
        return str(endpoint) if self.catalogued and endpoint else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``sluice models list --json``)."""
        return {
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "sha256": self.sha256,
            "stage": self.stage,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "card": dict(self.card),
        }


@dataclass(frozen=True)
class Serving:
    """The versions of a name that serve calls: production, and the canary if any.

    Attributes:
        production: The production version.
        canary: The canary version, or None.
    """

    production: ModelRecord
    canary: ModelRecord | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "production": self.production.to_dict(),
            "canary": self.canary.to_dict() if self.canary else None,
        }


@dataclass(frozen=True)
class StageChange:
    """One change of a version's stage (a row of the history).

    Attributes:
        id: Position in the registry's history (all names), increasing.
        name: Model name.
        version: The version whose stage changed.
        from_stage: Its stage before; None when it was registered.
        to_stage: Its stage after.
        actor: Who changed it (``cli:ana``, ``token:tok_...``).
        reason: Why, in words (``registered``, ``superseded by m@3``, a person's note).
        evaluation_id: The passing evaluation a promotion relied on.
        changed_at: When.
    """

    id: int
    name: str
    version: str
    from_stage: Stage | None
    to_stage: Stage
    actor: str
    reason: str | None
    evaluation_id: str | None
    changed_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "from_stage": self.from_stage,
            "to_stage": self.to_stage,
            "actor": self.actor,
            "reason": self.reason,
            "evaluation_id": self.evaluation_id,
            "changed_at": self.changed_at.isoformat(),
        }


@dataclass(frozen=True)
class EvaluationRecord:
    """A recorded evaluation of a version against a baseline on a held-out set.

    Attributes:
        id: ``eval_...``.
        name: Model name.
        version: The evaluated version.
        baseline_version: The production version it was compared with (None: there was
            none).
        holdout_sha256: sha256 of the held-out data.
        metrics: Every figure, the gate's decision and why (JSON).
        passed: Whether the promotion gate passed.
        created_by: Who ran it.
        created_at: When.
    """

    id: str
    name: str
    version: str
    baseline_version: str | None
    holdout_sha256: str
    metrics: Mapping[str, Any]
    passed: bool
    created_by: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "baseline_version": self.baseline_version,
            "holdout_sha256": self.holdout_sha256,
            "metrics": dict(self.metrics),
            "passed": self.passed,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }


def record_from_row(row: Any) -> ModelRecord:
    """A :class:`ModelRecord` from a ``model_versions`` row (without the artifact)."""
    return ModelRecord(
        name=row.name,
        version=row.version,
        kind=row.kind,
        sha256=row.sha256,
        card=row.card,
        stage=row.stage,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def stage_change_from_row(row: Any) -> StageChange:
    """A :class:`StageChange` from a ``model_stage_changes`` row."""
    return StageChange(
        id=int(row.id),
        name=row.name,
        version=row.version,
        from_stage=row.from_stage,
        to_stage=row.to_stage,
        actor=row.actor,
        reason=row.reason,
        evaluation_id=row.evaluation_id,
        changed_at=row.changed_at,
    )


def evaluation_from_row(row: Any) -> EvaluationRecord:
    """An :class:`EvaluationRecord` from a ``model_evaluations`` row."""
    return EvaluationRecord(
        id=row.id,
        name=row.name,
        version=row.version,
        baseline_version=row.baseline_version,
        holdout_sha256=row.holdout_sha256,
        metrics=row.metrics,
        passed=bool(row.passed),
        created_by=row.created_by,
        created_at=row.created_at,
    )
