"""Claiming review tasks: a reviewer holds a task for a while, nobody else decides it.

A claim is a lease: ``claimed_by`` and ``lease_until`` on the task. While the lease runs,
another reviewer can neither claim nor decide the task; when it runs out (a reviewer
closed the tab), anyone may claim it again. The claim's start is where the reviewer's
time on the task is counted from (``seconds_to_decide`` on the decision).

Example:
    >>> task = claim(store, "tsk_...", reviewer="ana", lease_s=600)  # doctest: +SKIP
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from sluice.errors import NotFoundError, TaskStateError
from sluice.governance import AuditEvent, append
from sluice.review.tables import review_tasks
from sluice.review.tasks import ReviewTask, get_task
from sluice.store import Store, utcnow

__all__ = ["DEFAULT_LEASE_S", "claim", "escalate_task", "release"]

#: How long a claim holds a task unless the caller says otherwise (10 minutes).
DEFAULT_LEASE_S = 600.0
_CLAIMABLE = ("open", "claimed", "escalated", "expired")


def claim(
    store: Store, task_id: str, *, reviewer: str, lease_s: float = DEFAULT_LEASE_S
) -> ReviewTask:
    """Claim (or renew the claim on) a task for ``lease_s`` seconds.

    Raises:
        NotFoundError: No such task.
        TaskStateError: The task is decided, or another reviewer's lease is running.
    """
    if lease_s <= 0:
        raise TaskStateError("a lease must last more than 0 seconds")
    now = utcnow()
    with store.begin() as conn:
        query = select(review_tasks).where(review_tasks.c.id == task_id)
        if store.dialect == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).one_or_none()
        if row is None:
            raise NotFoundError(f"no review task {task_id!r}")
        if row.state not in _CLAIMABLE:
            raise TaskStateError(f"task {task_id} is {row.state} and cannot be claimed")
        if row.claimed_by not in (None, reviewer) and row.lease_until and row.lease_until > now:
            raise TaskStateError(
                f"task {task_id} is claimed by {row.claimed_by} until "
                f"{row.lease_until.isoformat(timespec='seconds')}",
                hint="pick another task, or wait for the lease to run out",
            )
        renewing = row.claimed_by == reviewer and row.lease_until and row.lease_until > now
        conn.execute(
            update(review_tasks)
            .where(review_tasks.c.id == task_id)
            .values(
                state="claimed" if row.state == "open" else row.state,
                claimed_by=reviewer,
                claimed_at=row.claimed_at if renewing else now,
                lease_until=now + timedelta(seconds=lease_s),
            )
        )
        if not renewing:
            append(
                conn,
                [
                    AuditEvent(
                        f"reviewer:{reviewer}", "review.claimed", row.item_id, {"task_id": task_id}
                    )
                ],
            )
    return get_task(store, task_id)


def release(store: Store, task_id: str, *, reviewer: str) -> ReviewTask:
    """Give a claimed task back to the queue (only its holder can).

    Raises:
        NotFoundError: No such task.
        TaskStateError: The task is not claimed by ``reviewer``.
    """
    with store.begin() as conn:
        done = conn.execute(
            update(review_tasks)
            .where(review_tasks.c.id == task_id, review_tasks.c.claimed_by == reviewer)
            .where(review_tasks.c.state != "decided")
            .values(
                state="open",
                claimed_by=None,
                claimed_at=None,
                lease_until=None,
            )
        ).rowcount
        if not done:
            get_task(store, task_id)  # NotFoundError if it does not exist
            raise TaskStateError(f"task {task_id} is not claimed by {reviewer}")
        append(conn, [AuditEvent(f"reviewer:{reviewer}", "review.released", task_id)])
    return get_task(store, task_id)


def escalate_task(
    store: Store, task_id: str, *, reviewer: str, queue: str, reason: str | None = None
) -> ReviewTask:
    """A reviewer hands a task up to ``queue`` (a lead's) instead of deciding it.

    Any claim on it ends; the item keeps waiting for a decision.

    Raises:
        NotFoundError: No such task.
        TaskStateError: The task is decided, or someone else holds a live claim.
    """
    now = utcnow()
    with store.begin() as conn:
        query = select(review_tasks).where(review_tasks.c.id == task_id)
        if store.dialect == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).one_or_none()
        if row is None:
            raise NotFoundError(f"no review task {task_id!r}")
        if row.state == "decided":
            raise TaskStateError(f"task {task_id} is decided and cannot be escalated")
        if row.claimed_by not in (None, reviewer) and row.lease_until and row.lease_until > now:
            raise TaskStateError(f"task {task_id} is claimed by {row.claimed_by}")
        conn.execute(
            update(review_tasks)
            .where(review_tasks.c.id == task_id)
            .values(
                state="escalated",
                queue=queue,
                escalated_at=now,
                claimed_by=None,
                claimed_at=None,
                lease_until=None,
            )
        )
        append(
            conn,
            [
                AuditEvent(
                    f"reviewer:{reviewer}",
                    "review.escalated",
                    task_id,
                    {"queue": queue, "reason": reason, "by": "reviewer"},
                )
            ],
        )
    return get_task(store, task_id)
