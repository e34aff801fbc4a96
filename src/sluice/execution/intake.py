"""Intake: validated CloudEvents become work items, exactly once per ``source`` + ``id``.

Every edge (CLI files, HTTP, brokers) ends here. An event that fails validation is kept
in ``rejected_events`` with its error and line, so nothing is silently dropped and it can
be retried once fixed; an accepted event becomes one ``queued`` work item. Each event is
all-or-nothing; a file is processed in chunks, so one bad line never blocks the rest.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from sluice.errors import BackpressureError, EventValidationError, NotFoundError
from sluice.execution import traces
from sluice.execution.events import CloudEvent, ParsedLine, parse_event_json, priority_value
from sluice.execution.pipeline import Pipeline, get_pipeline
from sluice.execution.records import event_digest
from sluice.execution.tables import rejected_events, work_items
from sluice.execution.types import SubmitReport
from sluice.governance import AuditEvent, append
from sluice.store import Store, new_id, utcnow

__all__ = ["Rejection", "list_rejections", "retry_rejection", "submit_events", "submit_lines"]

_CHUNK = 500
_MAX_RAW_KEPT = 1024 * 1024  # bytes of an invalid line kept for diagnosis and retry


@dataclass(frozen=True)
class Rejection:
    """An event that was refused at intake, kept with its error."""

    id: str
    pipeline: str
    origin: str
    line: int | None
    error_code: str
    error: str
    field: str | None
    status: str
    item_id: str | None
    raw: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {k: v for k, v in self.__dict__.items() if k != "raw"} | {"raw": self.raw[:2000]}


def _insert(store: Store, table: Any) -> Any:
    return (pg_insert if store.dialect == "postgresql" else sqlite_insert)(table)


def _queued_count(conn: Connection, pipeline: str) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(work_items)
            .where(work_items.c.pipeline == pipeline, work_items.c.status == "queued")
        ).scalar_one()
    )


def submit_lines(
    store: Store,
    pipeline: Pipeline,
    lines: Iterable[ParsedLine],
    *,
    origin: str,
    actor: str | None = None,
    progress: Callable[[int], Any] | None = None,
) -> SubmitReport:
    """Submit parsed JSONL lines (see :func:`sluice.execution.events.parse_jsonl`).

    Valid events become items (or are reported as duplicates); invalid ones are stored
    as rejections with their line number. Lines are written in chunks of 500, each in
    one transaction. Once the pipeline's queue is full, the remaining lines are reported
    as deferred (resubmit the file later: accepted lines are skipped as duplicates).
    ``progress`` is called with the number of lines handled after each chunk. Every new
    item and every rejection is audited as done by ``actor`` (default ``intake:<origin>``).

    Raises:
        BackpressureError: The queue was full before any line could be accepted.
        StoreError: The store is unreachable (nothing of the failed chunk is written).
    """
    report = SubmitReport()
    who = actor or f"intake:{origin}"
    chunk: list[ParsedLine] = []
    for parsed in lines:
        chunk.append(parsed)
        if len(chunk) >= _CHUNK:
            _submit_or_defer(store, pipeline, chunk, origin, who, report)
            if progress:
                progress(len(chunk))
            chunk = []
    if chunk:
        _submit_or_defer(store, pipeline, chunk, origin, who, report)
        if progress:
            progress(len(chunk))
    if report.deferred and not report.accepted and not report.duplicates:
        # Nothing fitted: say so as an error the caller can retry, not as a silent no-op.
        raise BackpressureError(
            f"pipeline {pipeline.name!r} has {store.settings.max_queued_items} items queued",
            hint="start more workers or retry later; resubmitting is safe (idempotent)",
        )
    return report


def _submit_or_defer(
    store: Store,
    pipeline: Pipeline,
    chunk: Sequence[ParsedLine],
    origin: str,
    actor: str,
    report: SubmitReport,
) -> None:
    if report.deferred:  # the queue filled up earlier in this submission
        report.deferred.extend(p.line for p in chunk)
        return
    _submit_chunk(store, pipeline, chunk, origin, actor, report)


def submit_events(
    store: Store,
    pipeline: Pipeline,
    events: Sequence[CloudEvent],
    *,
    origin: str = "api",
    actor: str | None = None,
) -> SubmitReport:
    """Submit already-parsed events; positions in ``events`` are reported as 1-based lines."""
    parsed = [ParsedLine(i, "", event=e) for i, e in enumerate(events, start=1)]
    return submit_lines(store, pipeline, parsed, origin=origin, actor=actor)


def _submit_chunk(
    store: Store,
    pipeline: Pipeline,
    chunk: Sequence[ParsedLine],
    origin: str,
    actor: str,
    report: SubmitReport,
) -> None:
    now = utcnow()
    started_ns = time.time_ns()
    audits: list[AuditEvent] = []
    rows: list[dict[str, Any]] = []
    new_rows: list[dict[str, Any]] = []
    rejections: list[tuple[ParsedLine, EventValidationError]] = []
    lines_by_key: dict[tuple[str, str], int] = {}
    repeats: list[tuple[int, tuple[str, str]]] = []  # the same event twice in this chunk
    for parsed in chunk:
        if parsed.error is not None:
            rejections.append((parsed, parsed.error))
            continue
        event = parsed.event
        assert event is not None
        try:
            data = pipeline.validate_data(event, line=parsed.line)
        except EventValidationError as exc:
            rejections.append((parsed, exc))
            continue
        key = (event.source, event.id)
        if key in lines_by_key:
            repeats.append((parsed.line, key))
            continue
        lines_by_key[key] = parsed.line
        rows.append(_item_row(pipeline, event, data, now))

    item_for_key: dict[tuple[str, str], str] = {}
    with store.begin() as conn:
        if rows:
            room = store.settings.max_queued_items - _queued_count(conn, pipeline.name)
            if room < len(rows):
                keep = max(room, 0)
                for row in rows[keep:]:
                    report.deferred.append(lines_by_key[(row["source"], row["event_id"])])
                rows = rows[:keep]
        if rows:
            inserted = set(
                conn.execute(
                    _insert(store, work_items)
                    .on_conflict_do_nothing(index_elements=["source", "event_id"])
                    .returning(work_items.c.id),
                    rows,
                ).scalars()
            )
            existing = _existing_ids(conn, [(r["source"], r["event_id"]) for r in rows])
            for row in rows:
                key = (row["source"], row["event_id"])
                item_for_key[key] = existing[key]
                if row["id"] in inserted:
                    report.accepted.append((lines_by_key[key], row["id"]))
                    audits.append(_created(actor, origin, row))
                    new_rows.append(row)
                else:
                    report.duplicates.append((lines_by_key[key], existing[key]))
        for parsed, error in rejections:
            rejection_id = new_id("rej")
            raw = parsed.raw
            truncated = len(raw.encode("utf-8")) > _MAX_RAW_KEPT
            if truncated:
                raw = raw.encode("utf-8")[:_MAX_RAW_KEPT].decode("utf-8", "ignore")
            conn.execute(
                rejected_events.insert().values(
                    id=rejection_id,
                    pipeline=pipeline.name,
                    origin=origin,
                    line=parsed.line,
                    raw=raw,
                    raw_truncated=int(truncated),
                    error_code=error.code,
                    error=error.message,
                    field=error.field,
                    status="rejected",
                    created_at=now,
                    updated_at=now,
                )
            )
            report.rejected.append((parsed.line, rejection_id, error.to_dict()))
            audits.append(
                AuditEvent(
                    actor,
                    "event.rejected",
                    rejection_id,
                    {
                        "pipeline": pipeline.name,
                        "origin": origin,
                        "line": parsed.line,
                        "error_code": error.code,
                        "raw_sha256": hashlib.sha256(parsed.raw.encode()).hexdigest(),
                    },
                )
            )
        append(conn, audits)  # last in the transaction (see governance.audit)
    if new_rows and traces.enabled():  # committed: each new item's trace starts here
        traces.intake_spans(new_rows, origin, started_ns, time.time_ns())
    for line, key in repeats:
        if key in item_for_key:
            report.duplicates.append((line, item_for_key[key]))
        else:  # its first occurrence was deferred by backpressure
            report.deferred.append(line)


def _created(actor: str, origin: str, row: Mapping[str, Any]) -> AuditEvent:
    """The audit event of a new item; its digest covers the event as stored."""
    return AuditEvent(
        actor,
        "item.created",
        row["id"],
        {
            "pipeline": row["pipeline"],
            "origin": origin,
            "source": row["source"],
            "event_id": row["event_id"],
            "event_sha256": event_digest(row),
        },
    )


def _existing_ids(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    found: dict[tuple[str, str], str] = {}
    for start in range(0, len(keys), 200):
        part = keys[start : start + 200]
        for row in conn.execute(
            select(work_items.c.source, work_items.c.event_id, work_items.c.id).where(
                tuple_(work_items.c.source, work_items.c.event_id).in_(part)
            )
        ):
            found[(row.source, row.event_id)] = row.id
    return found


def _item_row(
    pipeline: Pipeline, event: CloudEvent, data: dict[str, Any], now: Any
) -> dict[str, Any]:
    item_id = new_id("itm")
    return {
        "id": item_id,
        "trace_id": traces.trace_id_for(item_id),
        "pipeline": pipeline.name,
        "source": event.source,
        "event_id": event.id,
        "type": event.type,
        "subject": event.subject,
        "event_time": event.time,
        "datacontenttype": event.datacontenttype,
        "data": data,
        "extensions": event.extensions or None,
        "priority": priority_value(event),
        "status": "queued",
        "created_at": now,
        "updated_at": now,
    }


def list_rejections(
    store: Store, *, pipeline: str | None = None, status: str | None = "rejected", limit: int = 100
) -> list[Rejection]:
    """Rejected events, newest first."""
    query = select(rejected_events).order_by(rejected_events.c.created_at.desc()).limit(limit)
    if pipeline:
        query = query.where(rejected_events.c.pipeline == pipeline)
    if status:
        query = query.where(rejected_events.c.status == status)
    with store.read() as conn:
        return [_rejection(r) for r in conn.execute(query)]


def _rejection(row: Any) -> Rejection:
    return Rejection(
        id=row.id,
        pipeline=row.pipeline,
        origin=row.origin,
        line=row.line,
        error_code=row.error_code,
        error=row.error,
        field=row.field,
        status=row.status,
        item_id=row.item_id,
        raw=row.raw,
    )


def retry_rejection(store: Store, rejection_id: str, *, raw: str | None = None) -> SubmitReport:
    """Validate a rejected event again (optionally with corrected JSON) and submit it.

    On success the rejection is marked ``accepted`` and points at its item; on failure it
    stays ``rejected`` with the new error.

    Raises:
        NotFoundError: No rejection with that id.
    """
    with store.read() as conn:
        row = conn.execute(
            select(rejected_events).where(rejected_events.c.id == rejection_id)
        ).one_or_none()
    if row is None:
        raise NotFoundError(
            f"no rejected event {rejection_id!r}", hint="list them with `sluice rejects list`"
        )
    pipeline = get_pipeline(row.pipeline)
    text = raw if raw is not None else row.raw
    report = SubmitReport()
    try:
        event = parse_event_json(text, max_bytes=store.settings.max_event_bytes, line=row.line)
        parsed = ParsedLine(row.line or 1, text, event=event)
        report = submit_lines(store, pipeline, [parsed], origin=row.origin)
    except EventValidationError as exc:
        with store.begin() as conn:
            conn.execute(
                update(rejected_events)
                .where(rejected_events.c.id == rejection_id)
                .values(
                    error=exc.message,
                    error_code=exc.code,
                    field=exc.field,
                    raw=text,
                    updated_at=utcnow(),
                )
            )
        report.rejected.append((row.line or 1, rejection_id, exc.to_dict()))
        return report
    if report.rejected:
        # The retry itself was rejected and stored as a new rejection; keep one record.
        _, new_rejection, error = report.rejected[0]
        with store.begin() as conn:
            conn.execute(rejected_events.delete().where(rejected_events.c.id == new_rejection))
            conn.execute(
                update(rejected_events)
                .where(rejected_events.c.id == rejection_id)
                .values(
                    error=error["message"],
                    error_code=error["code"],
                    field=error.get("field"),
                    raw=text,
                    updated_at=utcnow(),
                )
            )
        report.rejected = [(row.line or 1, rejection_id, error)]
        return report
    item_id = (report.accepted or report.duplicates)[0][1]
    with store.begin() as conn:
        conn.execute(
            update(rejected_events)
            .where(rejected_events.c.id == rejection_id)
            .values(status="accepted", item_id=item_id, raw=text, updated_at=utcnow())
        )
    return report
