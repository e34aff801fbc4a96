"""Reading items, their step runs and the outbox; putting failed items back in the queue."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update

from sluice.errors import NotFoundError, TaskStateError
from sluice.execution.tables import outbox, step_runs, work_items
from sluice.governance import AuditEvent, append
from sluice.store import Store, utcnow

__all__ = [
    "decided_by_counts",
    "get_item",
    "item_outcomes",
    "list_items",
    "list_outbox",
    "retry_items",
    "run_window",
    "step_latencies",
    "step_outputs",
    "work_summary",
]

_ITEM_SUMMARY = [
    work_items.c.id,
    work_items.c.pipeline,
    work_items.c.source,
    work_items.c.event_id,
    work_items.c.status,
    work_items.c.priority,
    work_items.c.result,
    work_items.c.error_type,
    work_items.c.error,
    work_items.c.created_at,
    work_items.c.completed_at,
]


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _row_dict(row: Any) -> dict[str, Any]:
    return {k: _iso(v) for k, v in row._mapping.items()}


def list_items(
    store: Store,
    *,
    pipeline: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Items, newest first, optionally filtered by pipeline and status."""
    query = select(*_ITEM_SUMMARY).order_by(work_items.c.created_at.desc(), work_items.c.id.desc())
    if pipeline:
        query = query.where(work_items.c.pipeline == pipeline)
    if status:
        query = query.where(work_items.c.status == status)
    with store.read() as conn:
        return [_row_dict(r) for r in conn.execute(query.limit(limit).offset(offset))]


def get_item(store: Store, item_id: str) -> dict[str, Any]:
    """The whole record of an item: the event, its state, every step run, its outbox row.

    Raises:
        NotFoundError: No such item.
    """
    with store.read() as conn:
        row = conn.execute(select(work_items).where(work_items.c.id == item_id)).one_or_none()
        if row is None:
            raise NotFoundError(f"no item {item_id!r}", hint="list items with `sluice items list`")
        runs = conn.execute(
            select(step_runs)
            .where(step_runs.c.item_id == item_id)
            .order_by(step_runs.c.started_at, step_runs.c.attempt)
        ).all()
        action = conn.execute(select(outbox).where(outbox.c.item_id == item_id)).one_or_none()
    item = _row_dict(row)
    item["event"] = {
        "specversion": "1.0",
        "id": item.pop("event_id"),
        "source": item.pop("source"),
        "type": item.pop("type"),
        "subject": item.pop("subject"),
        "time": item.pop("event_time"),
        "datacontenttype": item.pop("datacontenttype"),
        "data": item.pop("data"),
        **(item.pop("extensions") or {}),
    }
    item["steps"] = [_row_dict(r) for r in runs]
    item["outbox"] = _row_dict(action) if action else None
    return item


def list_outbox(
    store: Store, *, pipeline: str | None = None, limit: int = 50, offset: int = 0
) -> list[dict[str, Any]]:
    """Outbox records, newest first."""
    query = select(outbox).order_by(outbox.c.created_at.desc(), outbox.c.id.desc())
    if pipeline:
        query = query.where(outbox.c.pipeline == pipeline)
    with store.read() as conn:
        return [_row_dict(r) for r in conn.execute(query.limit(limit).offset(offset))]


def retry_items(store: Store, item_ids: Sequence[str], *, actor: str = "cli") -> list[str]:
    """Put failed items back in the queue, in a new round.

    The pipeline steps they completed are not run again; the gate, a review decision
    already made and the action are (see ``SETTLING_STEPS``).

    Raises:
        NotFoundError: An id does not exist.
        TaskStateError: An item is not ``failed``.
    """
    with store.begin() as conn:
        rows = {
            r.id: r.status
            for r in conn.execute(
                select(work_items.c.id, work_items.c.status).where(work_items.c.id.in_(item_ids))
            )
        }
        for item_id in item_ids:
            if item_id not in rows:
                raise NotFoundError(f"no item {item_id!r}")
            if rows[item_id] != "failed":
                raise TaskStateError(
                    f"item {item_id} is {rows[item_id]}, only failed items can be retried"
                )
        conn.execute(
            update(work_items)
            .where(work_items.c.id.in_(item_ids))
            .values(
                status="queued",
                round=work_items.c.round + 1,
                batch_id=None,
                error=None,
                error_type=None,
                completed_at=None,
                updated_at=utcnow(),
            )
        )
        append(conn, [AuditEvent(actor, "item.retried", item_id) for item_id in item_ids])
    return list(item_ids)


def decided_by_counts(store: Store, *, pipelines: Sequence[str] | None = None) -> dict[str, int]:
    """Outbox records by who decided them: ``auto``, and ``human`` for every reviewer."""
    query = select(outbox.c.decided_by, func.count()).group_by(outbox.c.decided_by)
    if pipelines is not None:
        query = query.where(outbox.c.pipeline.in_(list(pipelines)))
    counts: dict[str, int] = {}
    with store.read() as conn:
        for decided_by, n in conn.execute(query):
            key = "auto" if decided_by == "auto" else "human"
            counts[key] = counts.get(key, 0) + int(n)
    return counts


def work_summary(store: Store, *, pipelines: Sequence[str] | None = None) -> dict[str, Any]:
    """Items by status, automation rate, recent throughput, model cost.

    The automation rate is the share of the items that reached the gate (settled or
    waiting for review) that were handled without a human, as in the demo's report.
    """
    from datetime import timedelta

    counts = {}
    with store.read() as conn:
        for status, n in conn.execute(
            select(work_items.c.status, func.count()).group_by(work_items.c.status)
        ):
            counts[status] = int(n)
        hour_ago = utcnow() - timedelta(hours=1)
        last_hour = conn.execute(
            select(func.count())
            .select_from(work_items)
            .where(work_items.c.completed_at >= hour_ago)
        ).scalar_one()
        model_cost = conn.execute(
            select(func.coalesce(func.sum(step_runs.c.cost), 0.0))
        ).scalar_one()
    decided = decided_by_counts(store)
    gated = sum(counts.get(s, 0) for s in ("completed", "rejected", "waiting_review"))
    return {
        "items_by_status": counts,
        "automation_rate": round(decided.get("auto", 0) / gated, 4) if gated else None,
        "last_hour": int(last_hour),
        "model_cost": float(model_cost),
    }


def item_outcomes(store: Store, *, source: str) -> list[dict[str, Any]]:
    """Every item of one event source with its status, result, timing and outbox payload."""
    query = (
        select(
            work_items.c.id,
            work_items.c.event_id,
            work_items.c.status,
            work_items.c.result,
            work_items.c.error_type,
            work_items.c.created_at,
            work_items.c.completed_at,
            outbox.c.payload,
            outbox.c.decided_by,
        )
        .select_from(work_items.outerjoin(outbox, outbox.c.item_id == work_items.c.id))
        .where(work_items.c.source == source)
    )
    with store.read() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def step_latencies(store: Store, *, source: str) -> dict[str, list[float]]:
    """Latency (ms) of every completed step run of one source's items, by step.

    A batch step records the batch's latency on each of its items, so these are the
    latencies an item saw, not the cost per item.
    """
    query = (
        select(step_runs.c.step, step_runs.c.latency_ms)
        .join(work_items, work_items.c.id == step_runs.c.item_id)
        .where(work_items.c.source == source, step_runs.c.status == "completed")
    )
    out: dict[str, list[float]] = {}
    with store.read() as conn:
        for step, latency in conn.execute(query):
            out.setdefault(step, []).append(float(latency))
    return out


def model_costs(store: Store, *, source: str) -> dict[str, float]:
    """Cost of the completed step runs of one source's items, by ``model@version``.

    Steps without a model (rules) cost nothing and are left out.
    """
    query = (
        select(step_runs.c.model_name, step_runs.c.model_version, func.sum(step_runs.c.cost))
        .join(work_items, work_items.c.id == step_runs.c.item_id)
        .where(
            work_items.c.source == source,
            step_runs.c.status == "completed",
            step_runs.c.model_name.is_not(None),
        )
        .group_by(step_runs.c.model_name, step_runs.c.model_version)
    )
    with store.read() as conn:
        return {
            f"{name}@{version}": float(total or 0.0) for name, version, total in conn.execute(query)
        }


def step_outputs(
    store: Store,
    *,
    pipeline: str,
    step: str,
    limit: int = 200,
    offset: int = 0,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """The latest completed runs of one step of a pipeline, newest first, with the event data.

    Each row has ``item_id``, ``event_id``, ``data`` (the event's data), ``output``,
    ``model_name``, ``model_version``, ``model_calls`` and ``finished_at``. The drift
    monitors read their windows here.
    """
    query = (
        select(
            step_runs.c.item_id,
            work_items.c.event_id,
            work_items.c.data,
            step_runs.c.output,
            step_runs.c.model_name,
            step_runs.c.model_version,
            step_runs.c.model_calls,
            step_runs.c.finished_at,
        )
        .join(work_items, work_items.c.id == step_runs.c.item_id)
        .where(
            work_items.c.pipeline == pipeline,
            step_runs.c.step == step,
            step_runs.c.status == "completed",
        )
        .order_by(step_runs.c.finished_at.desc(), step_runs.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    if since is not None:
        query = query.where(step_runs.c.finished_at >= since)
    if until is not None:
        query = query.where(step_runs.c.finished_at < until)
    with store.read() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def run_window(store: Store, *, source: str) -> tuple[datetime, datetime] | None:
    """First step start and last step finish over one source's items (None if no runs).

    The steady-state throughput of a run is its items over this window: it leaves out
    the engine's start-up and the time a draining worker takes to notice it is done.
    """
    query = (
        select(func.min(step_runs.c.started_at), func.max(step_runs.c.finished_at))
        .join(work_items, work_items.c.id == step_runs.c.item_id)
        .where(work_items.c.source == source)
    )
    with store.read() as conn:
        first, last = conn.execute(query).one()
    if first is None or last is None:
        return None
    return _utc(first), _utc(last)


def _utc(value: Any) -> datetime:
    # Aggregates bypass the column type on SQLite and come back as naive UTC text.
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(moment, datetime)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
