"""Review tasks and decisions: the human side of the review gate.

A task is opened by the gate's durable wait for every parked item. A reviewer decides it
once: ``approve`` the proposal, ``correct`` it with another label, or ``reject`` it. The
decision and the message that wakes the waiting item commit in one transaction, and the
decisions table keeps exactly one decision per task, so two reviewers clicking at once
produce one decision and one clear refusal.

Example:
    >>> tasks = list_tasks(store, state="open")  # doctest: +SKIP
    >>> decide(store, tasks[0].id, reviewer="ana", outcome="correct", label="refund_status")
    ... # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, func, select, update
from sqlalchemy.exc import IntegrityError

from sluice.errors import (
    DecisionConflictError,
    InvalidDecisionError,
    NotFoundError,
    TaskStateError,
)
from sluice.execution import ItemView, Resolution, Review, send_in_transaction
from sluice.governance import AuditEvent, append
from sluice.review.tables import decisions, review_tasks
from sluice.review.traces import decision_spans
from sluice.store import Store, new_id, utcnow

__all__ = [
    "Decision",
    "Outcome",
    "ReviewTask",
    "TaskDesk",
    "backlog",
    "decide",
    "get_decision",
    "get_task",
    "list_tasks",
]

Outcome = Literal["approve", "correct", "reject"]
_OPEN_STATES = ("open", "claimed", "escalated", "expired")


@dataclass(frozen=True)
class ReviewTask:
    """A request for a human decision on one item."""

    id: str
    item_id: str
    pipeline: str
    kind: str
    queue: str
    priority: int
    state: str
    reason: str
    proposal: Mapping[str, Any]
    workflow_id: str | None
    created_at: datetime
    due_at: datetime
    escalated_at: datetime | None
    decided_at: datetime | None
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    lease_until: datetime | None = None
    stratum: str | None = None

    @property
    def blind(self) -> bool:
        """An undecided audit task: the model's answer must not be shown yet."""
        return self.kind == "audit" and self.state != "decided"

    def public_dict(self) -> dict[str, Any]:
        """:meth:`to_dict`, with the proposal withheld while the task is graded blind."""
        out = self.to_dict()
        if self.blind:
            out["proposal"] = {"labels": list(self.proposal.get("labels") or [])}
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = dict(self.__dict__)
        for key in (
            "created_at",
            "due_at",
            "escalated_at",
            "decided_at",
            "claimed_at",
            "lease_until",
        ):
            out[key] = out[key].isoformat() if out[key] else None
        out["proposal"] = dict(self.proposal)
        return out


@dataclass(frozen=True)
class Decision:
    """A reviewer's decision on a task."""

    id: str
    task_id: str
    item_id: str
    reviewer: str
    outcome: Outcome
    label: str | None
    reason: str | None
    decided_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__) | {"decided_at": self.decided_at.isoformat()}


def _task(row: Any) -> ReviewTask:
    return ReviewTask(
        id=row.id,
        item_id=row.item_id,
        pipeline=row.pipeline,
        kind=row.kind,
        queue=row.queue,
        priority=row.priority,
        state=row.state,
        reason=row.reason,
        proposal=row.proposal,
        workflow_id=row.workflow_id,
        created_at=row.created_at,
        due_at=row.due_at,
        escalated_at=row.escalated_at,
        decided_at=row.decided_at,
        claimed_by=row.claimed_by,
        claimed_at=row.claimed_at,
        lease_until=row.lease_until,
        stratum=row.stratum,
    )


def list_tasks(
    store: Store,
    *,
    state: str | None = "open",
    queue: str | None = None,
    pipeline: str | None = None,
    limit: int = 50,
) -> list[ReviewTask]:
    """Tasks by priority then age. ``state="open"`` also lists escalated and expired ones."""
    query = select(review_tasks).order_by(review_tasks.c.priority, review_tasks.c.created_at)
    if state == "open":
        query = query.where(review_tasks.c.state.in_(_OPEN_STATES))
    elif state:
        query = query.where(review_tasks.c.state == state)
    if queue:
        query = query.where(review_tasks.c.queue == queue)
    if pipeline:
        query = query.where(review_tasks.c.pipeline == pipeline)
    with store.read() as conn:
        return [_task(r) for r in conn.execute(query.limit(limit))]


def get_decision(store: Store, task_id: str) -> Decision | None:
    """The decision on a task, or None while it is undecided."""
    with store.read() as conn:
        row = conn.execute(select(decisions).where(decisions.c.task_id == task_id)).one_or_none()
    if row is None:
        return None
    return Decision(
        row.id,
        row.task_id,
        row.item_id,
        row.reviewer,
        row.outcome,
        row.label,
        row.reason,
        row.decided_at,
    )


def backlog(store: Store, *, pipelines: Sequence[str] | None = None) -> tuple[int, datetime | None]:
    """Open tasks (of ``pipelines``, or all) and when the oldest of them was opened."""
    query = select(func.count(), func.min(review_tasks.c.created_at)).where(
        review_tasks.c.state.in_(_OPEN_STATES)
    )
    if pipelines is not None:
        query = query.where(review_tasks.c.pipeline.in_(list(pipelines)))
    with store.read() as conn:
        count, oldest = conn.execute(query).one()
    if isinstance(oldest, str):  # aggregates bypass the column type on SQLite
        oldest = datetime.fromisoformat(oldest)
    if oldest is not None and oldest.tzinfo is None:
        from datetime import UTC

        oldest = oldest.replace(tzinfo=UTC)
    return int(count), oldest


def get_task(store: Store, task_id: str) -> ReviewTask:
    """One task.

    Raises:
        NotFoundError: No such task.
    """
    with store.read() as conn:
        row = conn.execute(select(review_tasks).where(review_tasks.c.id == task_id)).one_or_none()
    if row is None:
        raise NotFoundError(
            f"no review task {task_id!r}", hint="list open tasks with `sluice review list`"
        )
    return _task(row)


def decide(
    store: Store,
    task_id: str,
    *,
    reviewer: str,
    outcome: Outcome,
    label: str | None = None,
    reason: str | None = None,
    active_seconds: float | None = None,
) -> Decision:
    """Record the one decision on a task and wake the item waiting for it.

    Args:
        store: The store.
        task_id: The task.
        reviewer: Who decides (recorded in the lineage).
        outcome: ``approve`` the proposal, ``correct`` it with ``label``, or ``reject``.
        label: The corrected label (required for ``correct``).
        reason: Optional free-text reason.
        active_seconds: Time the reviewer spent on the task's screen, when measured.

    Raises:
        NotFoundError: No such task.
        TaskStateError: A ``correct`` without a label, or a label the task does not allow.
        DecisionConflictError: The task already has a decision.
    """
    started_ns = time.time_ns()
    if outcome not in ("approve", "correct", "reject"):
        raise InvalidDecisionError(
            f"unknown outcome {outcome!r}", hint="approve, correct or reject"
        )
    task = get_task(store, task_id)
    proposal = task.proposal
    if task.kind == "audit" and (outcome != "correct" or not label):
        # Graded blind: the reviewer names the right label; approving a proposal they
        # were not shown would count as a grade without one.
        raise InvalidDecisionError(
            f"task {task_id} is a blind audit: give the right label",
            hint="decide it with outcome 'correct' and a label",
        )
    if outcome == "correct":
        allowed = proposal.get("labels")
        if not label:
            raise InvalidDecisionError("a correction needs the corrected label")
        if allowed and label not in allowed:
            raise InvalidDecisionError(
                f"label {label!r} is not one of this task's labels",
                hint=f"choose one of: {', '.join(allowed)}",
            )
        if label == proposal.get("label"):
            outcome = "approve"  # correcting to the proposed label is an approval
    final_label = (
        label if outcome == "correct" else (proposal.get("label") if outcome == "approve" else None)
    )
    now = utcnow()
    decision = Decision(
        new_id("dec"), task_id, task.item_id, reviewer, outcome, final_label, reason, now
    )
    try:
        with store.begin() as conn:
            current = _locked_state(store, conn, task_id)
            if current == "decided":
                raise DecisionConflictError(f"task {task_id} already has a decision")
            if current not in _OPEN_STATES:
                raise TaskStateError(f"task {task_id} is {current} and cannot be decided")
            held = conn.execute(
                select(
                    review_tasks.c.claimed_at, review_tasks.c.claimed_by, review_tasks.c.lease_until
                ).where(review_tasks.c.id == task_id)
            ).one()
            if (
                held.claimed_by not in (None, reviewer)
                and held.lease_until
                and held.lease_until > now
            ):
                raise TaskStateError(
                    f"task {task_id} is claimed by {held.claimed_by}",
                    hint="only the reviewer holding the claim can decide it until the lease ends",
                )
            started = held.claimed_at if held.claimed_by == reviewer else None
            conn.execute(
                decisions.insert().values(
                    id=decision.id,
                    task_id=task_id,
                    item_id=task.item_id,
                    reviewer=reviewer,
                    outcome=outcome,
                    label=final_label,
                    reason=reason,
                    decided_at=now,
                    seconds_to_decide=(now - started).total_seconds() if started else None,
                    active_seconds=active_seconds,
                )
            )
            conn.execute(
                update(review_tasks)
                .where(review_tasks.c.id == task_id)
                .values(state="decided", decided_at=now)
            )
            if task.workflow_id:
                send_in_transaction(
                    store, conn, task.workflow_id, {"decision_id": decision.id, "task_id": task_id}
                )
            append(
                conn,
                [
                    AuditEvent(
                        f"reviewer:{reviewer}",
                        "review.decided",
                        task.item_id,
                        {
                            "task_id": task_id,
                            "decision_id": decision.id,
                            "outcome": outcome,
                            "label": final_label,
                            "reason": reason,
                        },
                    )
                ],
            )
    except IntegrityError as exc:  # a concurrent decision won the unique key
        raise DecisionConflictError(f"task {task_id} already has a decision") from exc
    decision_spans(store, task, decision, started_ns)
    return decision


def _locked_state(store: Store, conn: Connection, task_id: str) -> str:
    query = select(review_tasks.c.state).where(review_tasks.c.id == task_id)
    if store.dialect == "postgresql":
        query = query.with_for_update()
    return str(conn.execute(query).scalar_one())


class TaskDesk:
    """The review plane's side of the review gate (:class:`sluice.execution.ReviewDesk`)."""

    def open_tasks(
        self,
        conn: Connection,
        parked: Sequence[tuple[ItemView, Review]],
        *,
        workflow_id: str,
        due_at: datetime,
    ) -> dict[str, str]:
        """Open the gate task of each parked item once; return task ids by item id."""
        ids = [item.id for item, _ in parked]
        existing = {
            row.item_id: row.id
            for row in conn.execute(
                select(review_tasks.c.item_id, review_tasks.c.id).where(
                    review_tasks.c.item_id.in_(ids), review_tasks.c.kind == "gate"
                )
            )
        }
        now = utcnow()
        rows = [
            {
                "id": new_id("tsk"),
                "item_id": item.id,
                "pipeline": item.pipeline,
                "kind": "gate",
                "queue": verdict.queue,
                "priority": item.priority if verdict.priority is None else verdict.priority,
                "state": "open",
                "reason": verdict.reason,
                "proposal": dict(verdict.proposal),
                "workflow_id": workflow_id,
                "created_at": now,
                "due_at": due_at,
                "escalated_at": None,
                "claimed_by": None,
                "claimed_at": None,
                "lease_until": None,
                "decided_at": None,
            }
            for item, verdict in parked
            if item.id not in existing
        ]
        if rows:
            conn.execute(review_tasks.insert(), rows)
            append(
                conn,
                [
                    AuditEvent(
                        "worker",
                        "review.opened",
                        str(row["item_id"]),
                        {"task_id": row["id"], "queue": row["queue"], "reason": row["reason"]},
                    )
                    for row in rows
                ],
            )
        return existing | {row["item_id"]: row["id"] for row in rows}

    def resolution(self, conn: Connection, task_id: str) -> Resolution | None:
        """The task's decision as a :class:`Resolution`."""
        row = conn.execute(
            select(decisions, review_tasks.c.proposal)
            .join(review_tasks, review_tasks.c.id == decisions.c.task_id)
            .where(decisions.c.task_id == task_id)
        ).one_or_none()
        if row is None:
            return None
        return Resolution(
            outcome=row.outcome,
            decided_by=f"reviewer:{row.reviewer}",
            proposal=row.proposal,
            label=row.label,
            reason=row.reason,
            detail={
                "task_id": task_id,
                "decision_id": row.id,
                "decided_at": row.decided_at.isoformat(),
                "seconds_to_decide": row.seconds_to_decide,
            },
        )

    def mark_applied(self, conn: Connection, task_id: str) -> None:
        """Record when the decision's action was applied."""
        conn.execute(
            update(decisions)
            .where(decisions.c.task_id == task_id, decisions.c.applied_at.is_(None))
            .values(applied_at=utcnow())
        )

    def escalate(
        self, conn: Connection, task_ids: Sequence[str], *, queue: str, due_at: datetime
    ) -> None:
        """Move undecided tasks past their SLA to the escalation queue.

        One statement for all the tasks and one audit append after it: the chain's lock
        is taken last (a claim or decision takes a task's row lock, then the chain's).
        """
        if not task_ids:
            return
        conn.execute(
            update(review_tasks)
            .where(
                review_tasks.c.id.in_(list(task_ids)), review_tasks.c.state.in_(("open", "claimed"))
            )
            .values(
                state="escalated",
                queue=queue,
                due_at=due_at,
                escalated_at=utcnow(),
                claimed_by=None,
                lease_until=None,
            )
        )
        append(
            conn,
            [AuditEvent("worker", "review.escalated", t, {"queue": queue}) for t in task_ids],
        )

    def sample_audits(
        self,
        conn: Connection,
        settled: Sequence[tuple[ItemView, Mapping[str, Any]]],
        *,
        rate: float,
        stratum: str,
        queue: str,
        due_at: datetime,
    ) -> list[str]:
        """Sample auto-handled items into blind audit tasks (see :mod:`.audits`)."""
        from sluice.review.audits import sample_audits

        return sample_audits(conn, settled, rate=rate, stratum=stratum, queue=queue, due_at=due_at)

    def expire(self, conn: Connection, task_ids: Sequence[str]) -> None:
        """Mark escalated tasks as expired (a decision is still accepted)."""
        if not task_ids:
            return
        conn.execute(
            update(review_tasks)
            .where(review_tasks.c.id.in_(list(task_ids)), review_tasks.c.state == "escalated")
            .values(state="expired")
        )
        append(conn, [AuditEvent("worker", "review.expired", t) for t in task_ids])
