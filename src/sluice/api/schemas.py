"""What crosses the HTTP boundary: request bodies and response documents."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AuditEstimateOut",
    "AuditReportOut",
    "ClaimIn",
    "DecisionIn",
    "DecisionOut",
    "EscalateIn",
    "ItemSummary",
    "LineItem",
    "ModelOut",
    "OutboxRecordOut",
    "StratumOut",
    "SubmitResponse",
    "SummaryOut",
    "TaskContext",
    "TaskOut",
    "WhoAmI",
]


class LineItem(BaseModel):
    """An event of a submission (its 1-based position) and its item."""

    line: int
    item_id: str


class SubmitResponse(BaseModel):
    """The outcome of ``POST /v1/events``: every event accounted for."""

    accepted: int
    duplicates: int
    rejected: int
    deferred: int
    items: list[LineItem]
    duplicate_items: list[LineItem]
    errors: list[dict[str, Any]] = Field(description="One per rejected event, with its line.")
    deferred_lines: list[int]


class ItemSummary(BaseModel):
    """One work item in a listing."""

    id: str
    pipeline: str
    source: str
    event_id: str
    status: str
    priority: int
    result: dict[str, Any] | None = None
    error_type: str | None = None
    error: str | None = None
    created_at: str
    completed_at: str | None = None


class TaskOut(BaseModel):
    """A review task."""

    id: str
    item_id: str
    pipeline: str
    kind: str
    queue: str
    priority: int
    state: str
    reason: str
    proposal: dict[str, Any]
    workflow_id: str | None = None
    created_at: str
    due_at: str
    escalated_at: str | None = None
    decided_at: str | None = None
    claimed_by: str | None = None
    claimed_at: str | None = None
    lease_until: str | None = None
    stratum: str | None = Field(
        default=None, description="Audit tasks: the stratum (intent) it was sampled from."
    )


class TaskContext(BaseModel):
    """What a decision needs: the task and the message; the decision once there is one."""

    task: TaskOut
    message: dict[str, Any] = Field(description="The event's data (the customer's message).")
    decision: DecisionOut | None = None


class ClaimIn(BaseModel):
    """Claim a task for a while."""

    model_config = ConfigDict(extra="forbid")
    lease_seconds: float = Field(default=600, gt=0, le=86_400)


class EscalateIn(BaseModel):
    """Hand a task up instead of deciding it."""

    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=2000)


class DecisionIn(BaseModel):
    """A reviewer's decision."""

    model_config = ConfigDict(extra="forbid")
    outcome: Literal["approve", "correct", "reject"]
    label: str | None = Field(default=None, min_length=1, max_length=200)
    reason: str | None = Field(default=None, max_length=2000)


class DecisionOut(BaseModel):
    """The one decision recorded on a task."""

    id: str
    task_id: str
    item_id: str
    reviewer: str
    outcome: str
    label: str | None = None
    reason: str | None = None
    decided_at: str


class ModelOut(BaseModel):
    """A registered model version."""

    name: str
    version: str
    kind: str
    stage: str
    sha256: str
    created_by: str | None = None
    created_at: str | None = None
    card: dict[str, Any] = Field(default_factory=dict)


class OutboxRecordOut(BaseModel):
    """An action decided for an item (one per item)."""

    id: str
    item_id: str
    pipeline: str
    action: str
    payload: dict[str, Any]
    decided_by: str
    created_at: str


class AuditReportOut(BaseModel):
    """The result of verifying the audit chain."""

    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    checkpoints: int
    unverified_checkpoints: int
    sealed_through: int
    unsealed: int
    first_break: dict[str, Any] | None = None
    unknown_keys: list[str] = Field(default_factory=list)


class SummaryOut(BaseModel):
    """Counts an operator looks at first."""

    items_by_status: dict[str, int]
    automation_rate: float | None = Field(
        description="Share of settled items handled automatically."
    )
    review_backlog: int
    oldest_open_task_age_seconds: float | None = None


class StratumOut(BaseModel):
    """Audited precision of one intent (or overall), with a 95% interval."""

    stratum: str
    auto_handled: int
    audited: int
    correct: int
    precision: float | None = None
    low: float | None = None
    high: float | None = None


class AuditEstimateOut(BaseModel):
    """What the sampling audits say about the precision of automated decisions."""

    pipeline: str
    overall: StratumOut
    strata: list[StratumOut]


class WhoAmI(BaseModel):
    """The authenticated caller."""

    actor: str
    role: str
    pipelines: list[str] | None = None
    queues: list[str] | None = None
    pii_clearance: bool


TaskContext.model_rebuild()
