"""Tables the model gateway owns: call records, the result cache, and daily spend."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from sluice.store import JSONType, UTCDateTime, metadata

__all__ = ["model_cache", "model_calls", "model_spend"]

#: One row per provider invocation (a batch of inputs is one row), failed ones included,
#: and one per group of cache hits. Latency percentiles per endpoint come from here.
model_calls = Table(
    "model_calls",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("call_id", String(40), nullable=False),
    Column("task", String(200), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("endpoint", String(200), nullable=False),
    Column("model", String(200), nullable=False),
    Column("version", String(100), nullable=False),
    Column("tenant", String(200)),
    Column("inputs", Integer, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("cost", Float, nullable=False),
    Column("cache", String(10), nullable=False),
    Column("tier", Integer, nullable=False),
    Column("canary", Boolean, nullable=False),
    Column("fallbacks", JSONType),
    Column("error_kind", String(30)),
    Column("error", Text),
    Column("started_at", UTCDateTime(), nullable=False),
    Index("ix_model_calls_endpoint", "endpoint", "started_at"),
    Index("ix_model_calls_task", "task", "started_at"),
)

#: Exact and semantic cache entries. The key covers model name, version, normalized
#: input and parameters, so a new model version never reads an old version's answers.
model_cache = Table(
    "model_cache",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("kind", String(20), nullable=False),  # embedding | chat | semantic
    Column("scope", String(300), nullable=False),  # model@version (+ parameters hash)
    Column("value", LargeBinary, nullable=False),
    Column("vector", LargeBinary),  # semantic entries: the question's embedding
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("last_used_at", UTCDateTime(), nullable=False),
    Column("hits", Integer, nullable=False),
    Index("ix_model_cache_scope", "kind", "scope"),
    Index("ix_model_cache_used", "last_used_at"),
)

#: What each budget scope spent per UTC day. Paid calls reserve their worst case here
#: before they go out (refused if it would pass the hard limit) and settle after.
model_spend = Table(
    "model_spend",
    metadata,
    Column("day", String(10), nullable=False),
    Column("scope", String(300), nullable=False),  # task:<name> | tenant:<name>
    Column("spent", Float, nullable=False),
    Column("soft_alerted", Boolean, nullable=False),
    PrimaryKeyConstraint("day", "scope", name="pk_model_spend"),
)
