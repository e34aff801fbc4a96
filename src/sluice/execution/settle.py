"""Settling items after their steps: the gate, the action, the outbox, parking for review.

Auto-handled items get their action written to the outbox and are completed in one
transaction per batch; the outbox's unique key on the item makes a repeated write a
no-op, so there is exactly one outbox record per item, ever. Items the gate sends to
review are parked (``waiting_review``) with the gate's verdict recorded; their review
runs then open the task and wait for the decision.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from sluice.execution.pipeline import StepContext
from sluice.execution.records import (
    StepRecord,
    input_hash,
    insert_ignore,
    load_views,
    write_step_runs,
)
from sluice.execution.tables import outbox, work_items
from sluice.execution.types import Action, Auto, ItemView, Resolution, Review
from sluice.store import Store, new_id, utcnow

__all__ = ["apply_resolution", "parked_items", "review_from_gate", "settle_batch"]

log = logging.getLogger("sluice.execution")


def _record(
    item: ItemView,
    step: str,
    started: datetime,
    t0: float,
    *,
    batch_id: str | None,
    executor_id: str,
    output: Mapping[str, Any] | None = None,
    error: Exception | None = None,
) -> StepRecord:
    return StepRecord(
        item_id=item.id,
        step=step,
        attempt=1,
        status="failed" if error else "completed",
        started_at=started,
        finished_at=utcnow(),
        latency_ms=(time.perf_counter() - t0) * 1000,
        input_hash=input_hash(item),
        output=output,
        batch_id=batch_id,
        error_type=type(error).__name__ if error else None,
        error=str(error)[:4000] if error else None,
        executor_id=executor_id,
    )


def apply_resolution(
    store: Store,
    conn: Connection,
    ctx: StepContext[Any],
    item: ItemView,
    resolution: Resolution,
    *,
    executor_id: str,
    batch_id: str | None = None,
) -> None:
    """Run the pipeline's action for a settled item and complete it, in ``conn``'s transaction.

    The outbox row is keyed by item, so calling this twice for an item writes one row.
    """
    assert ctx.pipeline.action_fn is not None
    started, t0 = utcnow(), time.perf_counter()
    if resolution.outcome != "auto":  # the human decision joins the item's lineage
        write_step_runs(
            store,
            conn,
            [
                _record(
                    item,
                    "review",
                    started,
                    t0,
                    batch_id=batch_id,
                    executor_id=executor_id,
                    output={
                        "decided_by": resolution.decided_by,
                        "outcome": resolution.outcome,
                        "label": resolution.label,
                        "reason": resolution.reason,
                        "decision": dict(resolution.detail),
                    },
                )
            ],
        )
    action: Action | None = ctx.pipeline.action_fn(ctx, item, resolution)
    outbox_id = None
    if action is not None:
        outbox_id = new_id("obx")
        conn.execute(
            insert_ignore(store, outbox)
            .values(
                id=outbox_id,
                item_id=item.id,
                pipeline=item.pipeline,
                action=action.action,
                payload=dict(action.payload),
                decided_by=resolution.decided_by,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing()
        )
    result = {
        "outcome": resolution.outcome,
        "label": resolution.label,
        "decided_by": resolution.decided_by,
        "action": action.action if action else None,
    }
    write_step_runs(
        store,
        conn,
        [
            _record(
                item,
                "action",
                started,
                t0,
                batch_id=batch_id,
                executor_id=executor_id,
                output=result | {"payload": dict(action.payload) if action else None},
            )
        ],
    )
    now = utcnow()
    conn.execute(
        update(work_items)
        .where(work_items.c.id == item.id, work_items.c.status.in_(["running", "waiting_review"]))
        .values(
            status="completed" if action is not None else "rejected",
            result=result,
            completed_at=now,
            updated_at=now,
        )
    )


def settle_batch(store: Store, ctx: StepContext[Any], batch_id: str, *, executor_id: str) -> int:
    """Gate every running item of the batch: act on the confident, park the rest.

    Returns:
        The number of items auto-handled by this call.
    """
    assert ctx.pipeline.gate_fn is not None
    with store.read() as conn:
        items = load_views(conn, batch_id=batch_id, status="running")
    if not items:
        return 0
    auto = 0
    with store.begin() as conn:
        for item in items:
            started, t0 = utcnow(), time.perf_counter()
            phase = "gate"
            try:
                # A savepoint per item: a failing gate or action undoes only its own
                # writes and fails only its own item.
                with conn.begin_nested():
                    verdict = ctx.pipeline.gate_fn(ctx, item)
                    write_step_runs(
                        store,
                        conn,
                        [
                            _record(
                                item,
                                "gate",
                                started,
                                t0,
                                batch_id=batch_id,
                                executor_id=executor_id,
                                output=_gate_output(item, verdict),
                            )
                        ],
                    )
                    if isinstance(verdict, Auto):
                        phase = "action"
                        resolution = Resolution(
                            "auto",
                            "auto",
                            dict(verdict.proposal),
                            label=verdict.proposal.get("label"),
                        )
                        apply_resolution(
                            store,
                            conn,
                            ctx,
                            item,
                            resolution,
                            executor_id=executor_id,
                            batch_id=batch_id,
                        )
                        auto += 1
                    else:
                        conn.execute(
                            update(work_items)
                            .where(work_items.c.id == item.id, work_items.c.status == "running")
                            .values(status="waiting_review", updated_at=utcnow())
                        )
            except Exception as exc:
                log.exception("%s failed for item %s", phase, item.id)
                write_step_runs(
                    store,
                    conn,
                    [
                        _record(
                            item,
                            phase,
                            started,
                            t0,
                            batch_id=batch_id,
                            executor_id=executor_id,
                            error=exc,
                        )
                    ],
                )
                _fail(conn, item.id, exc)
    return auto


def _gate_output(item: ItemView, verdict: Auto | Review) -> dict[str, Any]:
    output: dict[str, Any] = {"proposal": dict(verdict.proposal)}
    if isinstance(verdict, Auto):
        return output | {"verdict": "auto"}
    if not isinstance(verdict, Review):
        raise TypeError(f"a gate must return Auto or Review, not {type(verdict).__name__}")
    priority = item.priority if verdict.priority is None else verdict.priority
    return output | {
        "verdict": "review",
        "reason": verdict.reason,
        "queue": verdict.queue,
        "priority": priority,
    }


def _fail(conn: Connection, item_id: str, exc: Exception) -> None:
    now = utcnow()
    conn.execute(
        update(work_items)
        .where(work_items.c.id == item_id)
        .values(
            status="failed",
            error_type=type(exc).__name__,
            error=str(exc)[:4000],
            completed_at=now,
            updated_at=now,
        )
    )


def parked_items(store: Store, batch_id: str) -> list[str]:
    """Ids of the batch's items waiting for review."""
    with store.read() as conn:
        return list(
            conn.execute(
                select(work_items.c.id)
                .where(work_items.c.batch_id == batch_id, work_items.c.status == "waiting_review")
                .order_by(work_items.c.priority, work_items.c.created_at)
            ).scalars()
        )


def review_from_gate(item: ItemView) -> Review:
    """The gate's recorded :class:`Review` verdict of a parked item."""
    gate = item.outputs["gate"]
    return Review(
        reason=gate["reason"],
        proposal=gate["proposal"],
        queue=gate["queue"],
        priority=gate["priority"],
    )
