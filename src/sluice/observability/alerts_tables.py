"""The observability plane's ``alerts`` table (read through :mod:`.alerts`)."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text

from sluice.store import JSONType, UTCDateTime, metadata

__all__ = ["alerts"]

#: One row per alert raised (drift monitors, budget alerts ...), with its webhook delivery.
alerts = Table(
    "alerts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kind", String(40), nullable=False),  # drift | budget
    Column("name", String(100), nullable=False),  # the monitor, or budget_soft_limit
    # What the alert is about: a pipeline name, or a budget scope (task:x, tenant:y).
    Column("subject", String(300), nullable=False),
    Column("severity", String(20), nullable=False),  # warning | critical
    Column("message", Text, nullable=False),
    Column("value", Float),
    Column("threshold", Float),
    Column("details", JSONType, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    # none (no webhook configured) | pending | delivered | failed
    Column("webhook_status", String(20), nullable=False),
    Column("webhook_attempts", Integer, nullable=False),
    Column("webhook_error", Text),
    Column("delivered_at", UTCDateTime()),
    Index("ix_alerts_created", "created_at"),
    Index("ix_alerts_subject", "kind", "name", "subject", "created_at"),
)
