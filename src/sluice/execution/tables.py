"""Tables owned by the execution plane: work items, batches, step runs, outbox, rejected input.

Other planes read these only through :mod:`sluice.execution`'s functions.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from sluice.store import JSONType, UTCDateTime, metadata

__all__ = ["batches", "outbox", "rejected_events", "step_runs", "work_items"]

work_items = Table(
    "work_items",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("pipeline", String(100), nullable=False),
    # CloudEvents 1.0 envelope. source + event_id is the idempotency key.
    Column("source", String(512), nullable=False),
    Column("event_id", String(512), nullable=False),
    Column("type", String(256), nullable=False),
    Column("subject", String(512)),
    Column("event_time", UTCDateTime()),
    Column("datacontenttype", String(128)),
    Column("data", JSONType, nullable=False),
    Column("extensions", JSONType),
    # Scheduling. Lower priority value is served first (0 = urgent ... 3 = low).
    Column("priority", Integer, nullable=False, server_default=text("2")),
    Column("status", String(20), nullable=False),
    # Incremented by `sluice items retry`: the gate, review and action run again in the
    # new round; pipeline steps completed in any round are not run again.
    Column("round", Integer, nullable=False, server_default=text("0")),
    Column("batch_id", String(40)),
    # The item's OpenTelemetry trace id (32 hex digits), minted at intake so that spans
    # made by any process, on any day, join one trace (see sluice.execution.traces).
    Column("trace_id", String(32)),
    Column("result", JSONType),
    Column("error_type", String(100)),
    Column("error", Text),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("started_at", UTCDateTime()),
    Column("completed_at", UTCDateTime()),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("source", "event_id"),
    Index("ix_work_items_claim", "pipeline", "status", "priority", "created_at"),
    Index("ix_work_items_batch_id", "batch_id"),
)

batches = Table(
    "batches",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("pipeline", String(100), nullable=False),
    Column("workflow_id", String(100), nullable=False, unique=True),
    # enqueued -> done, via "settled" while the review tasks of its parked
    # items are being opened.
    Column("status", String(20), nullable=False),
    Column("size", Integer, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("executor_id", String(200)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Index("ix_batches_status", "status", "created_at"),
)

step_runs = Table(
    "step_runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("item_id", String(40), ForeignKey("work_items.id"), nullable=False),
    Column("batch_id", String(40)),
    Column("step", String(100), nullable=False),
    Column("round", Integer, nullable=False, server_default=text("0")),
    Column("attempt", Integer, nullable=False),
    Column("status", String(20), nullable=False),  # completed | failed | duplicate
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("batch_size", Integer, nullable=False, server_default=text("1")),
    Column("input_hash", String(64), nullable=False),
    Column("output", JSONType),
    Column("model_name", String(200)),
    Column("model_version", String(100)),
    Column("cost", Float, nullable=False, server_default=text("0")),
    # The model gateway's call records for this item (endpoint, version, route decision,
    # tokens, cost, cache): see sluice.models.CallRecord.
    Column("model_calls", JSONType),
    Column("retrieval", JSONType),
    Column("error_type", String(100)),
    Column("error", Text),
    Column("executor_id", String(200)),
    Index("ix_step_runs_item", "item_id", "started_at"),
    # At most one completed run per item, step and round: a step that completed for an
    # item is never recorded (or applied) twice, whatever happens to the process.
    Index(
        "uq_step_runs_completed",
        "item_id",
        "step",
        "round",
        unique=True,
        sqlite_where=text("status = 'completed'"),
        postgresql_where=text("status = 'completed'"),
    ),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", String(40), primary_key=True),
    # Exactly one action record per item, ever: the unique key makes a repeated write
    # (a re-run after a crash, two workers racing) a no-op instead of a duplicate.
    Column("item_id", String(40), ForeignKey("work_items.id"), nullable=False, unique=True),
    Column("pipeline", String(100), nullable=False),
    Column("action", String(100), nullable=False),
    Column("payload", JSONType, nullable=False),
    Column("decided_by", String(200), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("delivered_at", UTCDateTime()),
    Index("ix_outbox_created", "created_at"),
)

rejected_events = Table(
    "rejected_events",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("pipeline", String(100), nullable=False),
    Column("origin", String(1024), nullable=False),  # e.g. file path, "http"
    Column("line", Integer),
    Column("raw", Text, nullable=False),
    Column("raw_truncated", Integer, nullable=False, server_default=text("0")),
    Column("error_code", String(50), nullable=False),
    Column("error", Text, nullable=False),
    Column("field", String(200)),
    # rejected -> accepted (after a successful retry; item_id is then set)
    Column("status", String(20), nullable=False),
    Column("item_id", String(40)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_rejected_events_status", "pipeline", "status", "created_at"),
)
