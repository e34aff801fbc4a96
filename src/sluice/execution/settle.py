"""Settling items after their steps: the gate, the action, the outbox, parking for review.

Settling happens in two phases. First the pipeline's gate and action run for every item
in plain Python, writing nothing, and everything they produced is checked to be JSON; an
item whose gate or action raises or returns something unstorable is failed on its own.
Then everything is written in one transaction per batch with bulk statements. Writes go
only to items still in the state this settling expects (``running`` for a batch,
``waiting_review`` for a decision), locked for the transaction, so a duplicate or stale
run can never act twice on an item. The outbox's unique key on the item backs that up:
one outbox record per item, ever. Items the gate sends to review are parked
(``waiting_review``) with the gate's verdict recorded; their review wait then opens the
tasks and applies the decisions.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from sluice.execution import traces
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
from sluice.governance import AuditEvent, append, digest, require_allowed_action
from sluice.store import Store, new_id, utcnow

__all__ = ["apply_resolution", "fail_items", "parked_items", "review_from_gate", "settle_batch"]

log = logging.getLogger("sluice.execution")


@dataclass
class _Settlement:
    """What to write for one item (phase 1's output, phase 2's input)."""

    item: ItemView
    status: str  # completed | rejected | waiting_review | failed
    records: list[StepRecord] = field(default_factory=list)
    action: Action | None = None
    decided_by: str | None = None
    result: dict[str, Any] | None = None
    error: Exception | None = None


class _Clock:
    """Start time of one item's phase, for its step-run rows."""

    def __init__(self) -> None:
        self.started, self.t0 = utcnow(), time.perf_counter()

    def record(
        self,
        item: ItemView,
        step: str,
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
            started_at=self.started,
            finished_at=utcnow(),
            latency_ms=(time.perf_counter() - self.t0) * 1000,
            input_hash=input_hash(item),
            output=output,
            batch_id=batch_id,
            error_type=type(error).__name__ if error else None,
            error=str(error)[:4000] if error else None,
            executor_id=executor_id,
            round=item.round,
        )


def _storable(what: str, value: Any) -> None:
    """Raise TypeError unless ``value`` is strict JSON (no NaN, no datetimes, no sets)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} is not storable as JSON: {exc}") from None


def _resolve(
    ctx: StepContext[Any],
    item: ItemView,
    resolution: Resolution,
    settlement: _Settlement,
    *,
    batch_id: str | None,
    executor_id: str,
) -> None:
    """Phase 1 of a settled item: the review record (if human), the action, the result."""
    assert ctx.pipeline.action_fn is not None
    clock = _Clock()
    if resolution.outcome != "auto":  # the human decision joins the item's lineage
        settlement.records.append(
            clock.record(
                item,
                "review",
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
        )
    action = ctx.pipeline.action_fn(ctx, item, resolution)
    if action is not None and not isinstance(action, Action):
        raise TypeError(f"an action must return Action or None, not {type(action).__name__}")
    if action is not None and ctx.pipeline.actions is not None:
        require_allowed_action(action.action, ctx.pipeline.actions)
    result = {
        "outcome": resolution.outcome,
        "label": resolution.label,
        "decided_by": resolution.decided_by,
        "action": action.action if action else None,
    }
    output = result | {"payload": dict(action.payload) if action else None}
    _storable("the action's result", output)
    settlement.action = action
    settlement.decided_by = resolution.decided_by
    settlement.status = "completed" if action is not None else "rejected"
    settlement.result = result
    settlement.records.append(
        clock.record(item, "action", batch_id=batch_id, executor_id=executor_id, output=output)
    )


def _gate_output(item: ItemView, verdict: Auto | Review) -> dict[str, Any]:
    if not isinstance(verdict, Auto | Review):
        raise TypeError(f"a gate must return Auto or Review, not {type(verdict).__name__}")
    output: dict[str, Any] = {"proposal": dict(verdict.proposal)}
    if isinstance(verdict, Auto):
        output["verdict"] = "auto"
    else:
        priority = item.priority if verdict.priority is None else verdict.priority
        output |= {
            "verdict": "review",
            "reason": verdict.reason,
            "queue": verdict.queue,
            "priority": priority,
        }
    _storable("the gate's verdict", output)
    return output


def _plan(ctx: StepContext[Any], item: ItemView, *, batch_id: str, executor_id: str) -> _Settlement:
    """Phase 1 for one item of a batch: gate, then (if automatic) action. Writes nothing."""
    assert ctx.pipeline.gate_fn is not None
    settlement = _Settlement(item, status="failed")
    clock, phase = _Clock(), "gate"
    try:
        verdict = ctx.pipeline.gate_fn(ctx, item)
        settlement.records.append(
            clock.record(
                item,
                "gate",
                batch_id=batch_id,
                executor_id=executor_id,
                output=_gate_output(item, verdict),
            )
        )
        if isinstance(verdict, Review):
            settlement.status = "waiting_review"
            return settlement
        phase = "action"
        resolution = Resolution(
            "auto", "auto", dict(verdict.proposal), label=verdict.proposal.get("label")
        )
        _resolve(ctx, item, resolution, settlement, batch_id=batch_id, executor_id=executor_id)
    except Exception as exc:  # a gate or action bug fails this item, not the batch
        log.exception("%s failed for item %s", phase, item.id)
        gate = [r for r in settlement.records if r.step == "gate"]
        failed = clock.record(item, phase, batch_id=batch_id, executor_id=executor_id, error=exc)
        settlement = _Settlement(item, status="failed", error=exc, records=[*gate, failed])
    return settlement


def _lock_in_state(store: Store, conn: Connection, ids: Sequence[str], state: str) -> set[str]:
    """Ids among ``ids`` whose item is in ``state``, locked until the transaction ends."""
    query = select(work_items.c.id).where(
        work_items.c.id.in_(list(ids)), work_items.c.status == state
    )
    if store.dialect == "postgresql":
        query = query.with_for_update()
    return set(conn.execute(query).scalars())


def _outbox_digest(row: Mapping[str, Any]) -> str:
    """Digest of an outbox record as written (the fields an action is made of)."""
    return digest({k: row[k] for k in ("id", "item_id", "pipeline", "action", "payload")})


def _write(
    store: Store,
    conn: Connection,
    settlements: Sequence[_Settlement],
    expected: str,
    *,
    executor_id: str,
    before_audit: Callable[[Connection, list[_Settlement]], None] | None = None,
) -> list[_Settlement]:
    """Phase 2: the rows of the settlements whose item is still ``expected``, in bulk.

    ``before_audit`` writes whatever else belongs to this transaction, before the audit
    entries take the chain's lock (it must be the last lock a transaction takes).
    Returns the settlements that were written.
    """
    live = _lock_in_state(store, conn, [s.item.id for s in settlements], expected)
    written = [s for s in settlements if s.item.id in live]
    if len(written) < len(settlements):
        log.warning(
            "%d item(s) had left state %r; their settling was skipped",
            len(settlements) - len(written),
            expected,
        )
    if not written:
        return written
    now = utcnow()
    actions = [
        {
            "id": new_id("obx"),
            "item_id": s.item.id,
            "pipeline": s.item.pipeline,
            "action": s.action.action,
            "payload": dict(s.action.payload),
            "decided_by": s.decided_by,
            "created_at": now,
        }
        for s in written
        if s.action is not None
    ]
    if actions:
        conn.execute(insert_ignore(store, outbox).on_conflict_do_nothing(), actions)
    conn.execute(
        update(work_items)
        .where(work_items.c.id == bindparam("item"))
        .values(
            status=bindparam("new_status"),
            result=bindparam("result"),
            error_type=bindparam("error_type"),
            error=bindparam("error"),
            completed_at=bindparam("completed_at"),
            updated_at=now,
        ),
        [
            {
                "item": s.item.id,
                "new_status": s.status,
                "result": s.result,
                "error_type": type(s.error).__name__ if s.error else None,
                "error": str(s.error)[:4000] if s.error else None,
                "completed_at": None if s.status == "waiting_review" else now,
            }
            for s in written
        ],
    )
    if before_audit is not None:
        before_audit(conn, written)
    # Audited last (the chain's lock is held to commit): the step runs, then the outcome
    # of every item with a digest of its outbox record.
    write_step_runs(store, conn, [r for s in written for r in s.records])
    by_item = {a["item_id"]: a for a in actions}
    batch = next((r.batch_id for s in written for r in s.records if r.batch_id), None)
    append(
        conn,
        [
            AuditEvent(
                f"worker:{executor_id}",
                "items.settled",
                batch or written[0].item.id,
                {
                    "items": {
                        s.item.id: {
                            "status": s.status,
                            "round": s.item.round,
                            "outbox": _outbox_digest(by_item[s.item.id])
                            if s.item.id in by_item
                            else None,
                        }
                        for s in written
                    }
                },
            )
        ],
    )
    return written


def _trace(written: Sequence[_Settlement]) -> None:
    """The spans of the settling phases written (gate, review, action), in each item's trace."""
    if written and traces.enabled():
        traces.record_spans([s.item for s in written], [r for s in written for r in s.records])


def settle_batch(store: Store, ctx: StepContext[Any], batch_id: str, *, executor_id: str) -> int:
    """Gate every running item of the batch: act on the confident, park the rest.

    Returns:
        The number of items auto-handled by this call.
    """
    with store.read() as conn:
        items = load_views(conn, batch_id=batch_id, status="running")
    settlements = [_plan(ctx, item, batch_id=batch_id, executor_id=executor_id) for item in items]
    if not settlements:
        return 0

    def sample(conn: Connection, written: list[_Settlement]) -> None:
        _sample_audits(conn, ctx, [s for s in written if s.decided_by == "auto"])

    with store.begin() as conn:
        written = _write(
            store, conn, settlements, "running", executor_id=executor_id, before_audit=sample
        )
    _trace(written)
    return sum(s.decided_by == "auto" for s in written)


def _gate_proposal(settlement: _Settlement) -> dict[str, Any]:
    gate = next((r for r in settlement.records if r.step == "gate"), None)
    output = dict(gate.output or {}) if gate else {}
    return dict(output.get("proposal") or {})


def _sample_audits(conn: Connection, ctx: StepContext[Any], auto: Sequence[_Settlement]) -> None:
    """Hand a sample of the auto-handled items to the review desk for a blind audit."""
    review = ctx.pipeline.review
    rate = ctx.settings.audit_sample_rate if review.audit_rate is None else review.audit_rate
    if rate <= 0 or not auto:
        return
    from datetime import timedelta

    from sluice.execution.desk import get_review_desk

    sla = review.sla_s or ctx.settings.review_sla_seconds
    get_review_desk().sample_audits(
        conn,
        [(s.item, _gate_proposal(s)) for s in auto],
        rate=rate,
        stratum=review.audit_stratum,
        queue=review.audit_queue,
        due_at=utcnow() + timedelta(seconds=sla),
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
    on_applied: Callable[[Connection], None] | None = None,
) -> bool:
    """Apply a reviewer's resolution to a parked item, in ``conn``'s transaction.

    ``on_applied`` runs in the transaction when the action was applied (before the audit
    entries, which must come last).

    Returns True when the action was applied (or the item was already settled); False
    when the action failed, in which case the item is failed with the error
    (``sluice items retry`` runs it again, and the decision is applied again then).
    """
    settlement = _Settlement(item, status="failed")
    try:
        _resolve(ctx, item, resolution, settlement, batch_id=batch_id, executor_id=executor_id)
    except Exception as exc:
        log.exception("action failed for item %s", item.id)
        failed = _Clock().record(
            item, "action", batch_id=batch_id, executor_id=executor_id, error=exc
        )
        settlement = _Settlement(
            item,
            status="failed",
            error=exc,
            records=[*[r for r in settlement.records if r.step == "review"], failed],
        )
    applied = settlement.status != "failed"

    def record(conn: Connection, written: list[_Settlement]) -> None:
        if on_applied is not None and applied and written:
            on_applied(conn)

    written = _write(
        store, conn, [settlement], "waiting_review", executor_id=executor_id, before_audit=record
    )
    _trace(written)
    return applied


def fail_items(
    conn: Connection,
    item_ids: Sequence[str],
    error_type: str,
    error: str,
    *,
    status: str,
    actor: str = "worker",
) -> int:
    """Fail the given items that are in ``status`` with an error; returns how many."""
    now = utcnow()
    ids = list(
        conn.execute(
            select(work_items.c.id).where(
                work_items.c.id.in_(list(item_ids)), work_items.c.status == status
            )
        ).scalars()
    )
    failed = int(
        conn.execute(
            update(work_items)
            .where(work_items.c.id.in_(ids), work_items.c.status == status)
            .values(
                status="failed",
                error_type=error_type,
                error=error,
                completed_at=now,
                updated_at=now,
            )
        ).rowcount
    )
    if failed:
        append(
            conn,
            [
                AuditEvent(actor, "item.failed", item_id, {"error_type": error_type})
                for item_id in ids
            ],
        )
    return failed


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
