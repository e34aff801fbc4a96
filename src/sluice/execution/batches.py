"""Forming batches: queued items are claimed, highest priority first, into durable runs.

A worker claims up to ``batch_size`` queued items of one pipeline, records the batch and
enqueues the batch's durable run, all in one transaction (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so many workers never claim the same item; the write lock on SQLite). So
there is never a claimed batch without its run, nor a run without its batch.

A batch is ``enqueued`` until its run has settled every item; then ``done``, or
``settled`` while the review tasks of its parked items are being opened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, func, select, update

from sluice.execution.tables import batches, work_items
from sluice.governance import AuditEvent, append
from sluice.store import Store, new_id, utcnow

__all__ = [
    "Batch",
    "abandon_batch",
    "claim_batch",
    "finish_batch",
    "open_batch_count",
    "reviews_opened",
    "stale_batches",
]


@dataclass(frozen=True)
class Batch:
    """A claimed set of items that runs as one durable workflow."""

    id: str
    pipeline: str
    workflow_id: str
    size: int
    priority: int


def workflow_id_for(batch_id: str) -> str:
    """The durable run id of a batch."""
    return f"sluice-batch-{batch_id}"


def claim_batch(
    store: Store,
    pipeline: str,
    size: int,
    executor_id: str,
    enqueue: Callable[[Connection, Batch], None],
) -> Batch | None:
    """Claim up to ``size`` queued items into a new batch and enqueue its run, or None.

    ``enqueue`` is called inside the claiming transaction with the batch.
    """
    batch_id = new_id("bat")
    now = utcnow()
    with store.begin() as conn:
        candidates = (
            select(work_items.c.id)
            .where(work_items.c.pipeline == pipeline, work_items.c.status == "queued")
            .order_by(work_items.c.priority, work_items.c.created_at, work_items.c.id)
            .limit(size)
        )
        if store.dialect == "postgresql":
            candidates = candidates.with_for_update(skip_locked=True)
        ids = list(conn.execute(candidates).scalars())
        if not ids:
            return None
        conn.execute(
            update(work_items)
            .where(work_items.c.id.in_(ids), work_items.c.status == "queued")
            .values(status="running", batch_id=batch_id, started_at=now, updated_at=now)
        )
        priority = conn.execute(
            select(func.min(work_items.c.priority)).where(work_items.c.id.in_(ids))
        ).scalar_one()
        batch = Batch(batch_id, pipeline, workflow_id_for(batch_id), len(ids), int(priority))
        conn.execute(
            batches.insert().values(
                id=batch.id,
                pipeline=pipeline,
                workflow_id=batch.workflow_id,
                status="enqueued",
                size=batch.size,
                priority=batch.priority,
                executor_id=executor_id,
                created_at=now,
            )
        )
        enqueue(conn, batch)
    return batch


def finish_batch(store: Store, batch_id: str, *, reviews_pending: bool = False) -> None:
    """Record that the batch's run settled every item (or parked it for review).

    With ``reviews_pending`` the batch is ``settled`` until its review wait has opened
    the review tasks (:func:`reviews_opened`), then ``done``.
    """
    with store.begin() as conn:
        conn.execute(
            update(batches)
            .where(batches.c.id == batch_id, batches.c.status == "enqueued")
            .values(status="settled" if reviews_pending else "done", finished_at=utcnow())
        )


def reviews_opened(store: Store, batch_id: str) -> None:
    """Record that the review tasks of the batch's parked items exist."""
    with store.begin() as conn:
        conn.execute(
            update(batches)
            .where(batches.c.id == batch_id, batches.c.status == "settled")
            .values(status="done")
        )


def abandon_batch(store: Store, batch_id: str, error_type: str, error: str) -> int:
    """Fail the batch's unsettled items with ``error`` and close the batch."""
    now = utcnow()
    with store.begin() as conn:
        failed = conn.execute(
            update(work_items)
            .where(work_items.c.batch_id == batch_id, work_items.c.status == "running")
            .values(
                status="failed",
                error_type=error_type,
                error=error,
                completed_at=now,
                updated_at=now,
            )
        ).rowcount
        conn.execute(
            update(batches)
            .where(batches.c.id == batch_id, batches.c.status != "done")
            .values(status="done", finished_at=now)
        )
        if failed:
            append(
                conn,
                [
                    AuditEvent(
                        "worker",
                        "batch.abandoned",
                        batch_id,
                        {"failed_items": int(failed), "error_type": error_type},
                    )
                ],
            )
    return int(failed)


def open_batch_count(
    store: Store, pipeline: str | None = None, *, executor_id: str | None = None
) -> int:
    """Batches not done yet, optionally of one pipeline or claimed by one executor."""
    query = select(func.count()).select_from(batches).where(batches.c.status != "done")
    if pipeline:
        query = query.where(batches.c.pipeline == pipeline)
    if executor_id:
        query = query.where(batches.c.executor_id == executor_id)
    with store.read() as conn:
        return int(conn.execute(query).scalar_one())


def stale_batches(store: Store, *, older_than_s: float) -> list[Batch]:
    """Batches still open after ``older_than_s`` seconds (candidates for a health check)."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    with store.read() as conn:
        rows = conn.execute(
            select(batches).where(batches.c.status != "done", batches.c.created_at < cutoff)
        ).all()
    return [Batch(r.id, r.pipeline, r.workflow_id, r.size, r.priority) for r in rows]
