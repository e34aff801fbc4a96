"""Data that crosses the execution plane's boundary: what steps see and return."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "Action",
    "Auto",
    "ItemStatus",
    "ItemView",
    "Resolution",
    "Review",
    "StepOutput",
    "SubmitReport",
    "Verdict",
]

ItemStatus = Literal["queued", "running", "waiting_review", "completed", "rejected", "failed"]
JSON = Any


@dataclass(frozen=True)
class ItemView:
    """A work item as a step sees it: the event, its validated data, earlier outputs.

    Attributes:
        id: Sluice's item id.
        pipeline: Name of the pipeline the item runs through.
        source: CloudEvent ``source``.
        event_id: CloudEvent ``id``.
        type: CloudEvent ``type``.
        subject: CloudEvent ``subject``, if any.
        data: The event's ``data``, already validated by the pipeline's data model.
        priority: 0 (urgent) to 3 (low).
        created_at: When the item was submitted.
        round: How many times the item was retried (``sluice items retry``).
        outputs: Output of every completed step so far, by step name.
        trace_id: The item's OpenTelemetry trace id (32 hex digits), minted at intake;
            None for items submitted before traces existed.
    """

    id: str
    pipeline: str
    source: str
    event_id: str
    type: str
    subject: str | None
    data: Mapping[str, JSON]
    priority: int
    created_at: datetime
    round: int = 0
    outputs: Mapping[str, Mapping[str, JSON]] = field(default_factory=dict)
    trace_id: str | None = None


@dataclass(frozen=True)
class StepOutput:
    """What a step returns for one item.

    Attributes:
        value: JSON-serializable result; later steps read it as ``item.outputs[step]``.
        model_name: The model that produced it, if any (recorded in the step's lineage).
        model_version: That model's version.
        cost: Cost of producing it, in the configured currency (0 for local models).
        model_calls: The model gateway's call records for this item, as JSON
            (``CallRecord.to_dict()``): endpoint, version, route decision, tokens, cost,
            cache. They are stored with the step run and covered by its audit digest.
        retrieval: The knowledge lookups behind this output, as JSON
            (``SearchResult.lineage()``): the index version that answered and the cited
            passages. Stored with the step run and covered by its audit digest.
    """

    value: Mapping[str, JSON]
    model_name: str | None = None
    model_version: str | None = None
    cost: float = 0.0
    model_calls: tuple[Mapping[str, JSON], ...] = ()
    retrieval: tuple[Mapping[str, JSON], ...] = ()


@dataclass(frozen=True)
class Auto:
    """Gate verdict: confident enough to act without a human."""

    proposal: Mapping[str, JSON]


@dataclass(frozen=True)
class Review:
    """Gate verdict: park the item until a human decides.

    Attributes:
        reason: Why it needs a human (shown on the review screen).
        proposal: The model's proposal (e.g. label, confidence, alternatives).
        queue: Review queue that receives the task.
        priority: Task priority, 0 (urgent) to 3 (low); defaults to the item's.
    """

    reason: str
    proposal: Mapping[str, JSON]
    queue: str = "default"
    priority: int | None = None


Verdict = Auto | Review


@dataclass(frozen=True)
class Resolution:
    """How an item was settled, handed to the pipeline's action.

    Attributes:
        outcome: ``auto`` (gate passed), or the reviewer's ``approve``/``correct``/``reject``.
        decided_by: ``auto`` or ``reviewer:<name>``.
        proposal: The proposal the gate produced.
        label: The final label: the proposal's, or the reviewer's correction.
        reason: The reviewer's reason, if given.
        detail: Facts about the decision for the lineage (task and decision ids, times).
    """

    outcome: Literal["auto", "approve", "correct", "reject"]
    decided_by: str
    proposal: Mapping[str, JSON]
    label: str | None = None
    reason: str | None = None
    detail: Mapping[str, JSON] = field(default_factory=dict)


@dataclass(frozen=True)
class Action:
    """An effect to apply, written to the outbox exactly once per item."""

    action: str
    payload: Mapping[str, JSON]


@dataclass
class SubmitReport:
    """Outcome of submitting events: new items, duplicates, rejected lines.

    Attributes:
        accepted: ``(line, item_id)`` of each new item.
        duplicates: ``(line, existing item_id)`` of events already submitted.
        rejected: ``(line, rejection id, error dict)`` of each invalid event, kept in the
            store with its error so it can be fixed and retried.
        deferred: Lines not submitted because the queue was full (retry later; lines
            already accepted are skipped as duplicates then).
    """

    accepted: list[tuple[int, str]] = field(default_factory=list)
    duplicates: list[tuple[int, str]] = field(default_factory=list)
    rejected: list[tuple[int, str, dict[str, JSON]]] = field(default_factory=list)
    deferred: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, JSON]:
        """JSON-ready summary for ``--json`` output and the API."""
        return {
            "accepted": len(self.accepted),
            "duplicates": len(self.duplicates),
            "rejected": len(self.rejected),
            "deferred": len(self.deferred),
            "items": [{"line": ln, "item_id": i} for ln, i in self.accepted],
            "duplicate_items": [{"line": ln, "item_id": i} for ln, i in self.duplicates],
            "errors": [{"line": ln, "rejection_id": r, **e} for ln, r, e in self.rejected],
            "deferred_lines": self.deferred,
        }
