"""Tables of the governance plane: the audit log (append-only) and API tokens."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, String, Table, Text, false

from sluice.store import JSONType, UTCDateTime, metadata

__all__ = ["API_TOKENS", "AUDIT_LOG", "api_tokens", "audit_log"]

AUDIT_LOG = "audit_log"
API_TOKENS = "api_tokens"

#: One row per audited event, chained by hash (see :mod:`sluice.governance.audit`).
#: The database refuses UPDATE and DELETE on it (triggers, migration 0003).
audit_log = Table(
    AUDIT_LOG,
    metadata,
    # 1, 2, 3 ... without gaps: the position in the chain, assigned under a lock.
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    # What the entry is about: an item id, a batch id, a task id, a model name ...
    Column("target", String(200), nullable=False),
    # The canonical JSON text of the details, exactly as hashed (JSONB would re-encode).
    Column("details", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_log_target", "target"),
    Index("ix_audit_log_action", "action", "seq"),
)

#: API tokens: only a hash of each token is kept (see :mod:`sluice.governance.tokens`).
api_tokens = Table(
    API_TOKENS,
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(40), nullable=False),
    # Pipelines the token may act on; null means every pipeline.
    Column("pipelines", JSONType),
    # Review queues a reviewer token may work; null means every queue.
    Column("queues", JSONType),
    Column("pii_clearance", Boolean, nullable=False, server_default=false()),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime()),
    Column("revoked_at", UTCDateTime()),
    Column("last_used_at", UTCDateTime()),
)
