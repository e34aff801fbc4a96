"""Tables owned by the review plane: review tasks and the decisions on them."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text, UniqueConstraint

from sluice.store import JSONType, UTCDateTime, metadata

__all__ = ["audit_strata", "decisions", "review_tasks"]

review_tasks = Table(
    "review_tasks",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("item_id", String(40), nullable=False),
    Column("pipeline", String(100), nullable=False),
    Column("kind", String(20), nullable=False),  # gate (the item waits) | audit (sampled)
    Column("queue", String(100), nullable=False),
    Column("priority", Integer, nullable=False),
    # open -> claimed -> decided; open/claimed -> escalated -> expired
    Column("state", String(20), nullable=False),
    Column("reason", Text, nullable=False),
    Column("proposal", JSONType, nullable=False),
    Column("workflow_id", String(100)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("due_at", UTCDateTime(), nullable=False),
    Column("escalated_at", UTCDateTime()),
    Column("claimed_by", String(200)),
    Column("claimed_at", UTCDateTime()),
    Column("lease_until", UTCDateTime()),
    Column("decided_at", UTCDateTime()),
    # Audit tasks: the stratum (e.g. the intent) the item was sampled from.
    Column("stratum", String(200)),
    UniqueConstraint("item_id", "kind"),
    Index("ix_review_tasks_queue", "state", "queue", "priority", "created_at"),
)

decisions = Table(
    "decisions",
    metadata,
    Column("id", String(40), primary_key=True),
    # One decision per task: a second reviewer's click is refused by this key.
    Column("task_id", String(40), nullable=False, unique=True),
    Column("item_id", String(40), nullable=False),
    Column("reviewer", String(200), nullable=False),
    Column("outcome", String(20), nullable=False),  # approve | correct | reject
    Column("label", String(200)),
    Column("reason", Text),
    Column("decided_at", UTCDateTime(), nullable=False),
    # Claim to decision, and the time the review screen was in front of the reviewer.
    Column("seconds_to_decide", Float),
    Column("active_seconds", Float),
    Column("applied_at", UTCDateTime()),
    Index("ix_decisions_item", "item_id"),
)

#: How many auto-handled items of each stratum (pipeline + intent) sampling has seen, and
#: how many it sampled: a systematic sample needs the count to pick every k-th.
audit_strata = Table(
    "audit_strata",
    metadata,
    Column("pipeline", String(100), primary_key=True),
    Column("stratum", String(200), primary_key=True),
    Column("seen", Integer, nullable=False),
    Column("sampled", Integer, nullable=False),
)
