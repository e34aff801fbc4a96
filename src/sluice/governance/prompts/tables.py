"""Tables of versioned prompts: every version proposed, and the history of activations.

``prompt_versions`` holds each version's whole file (``content``, canonical text) and its
sha256, so any worker renders exactly what was approved, from the store alone. A
version is never edited: only its lifecycle columns change (state, evaluation,
approval). ``prompt_activations`` is the order in which versions became active, which
is what a rollback reads.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table, Text, UniqueConstraint

from sluice.store import JSONType, UTCDateTime, metadata

__all__ = ["prompt_activations", "prompt_versions"]

#: One row per version of a prompt. ``state``: proposed -> passed | failed (evaluated)
#: -> approved -> active -> retired (a retired version can be active again). ``cases``
#: are the evaluation cases read when it was proposed; ``evaluation`` the latest
#: result of running them.
prompt_versions = Table(
    "prompt_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("version", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("description", Text, nullable=False),
    Column("content", Text, nullable=False),
    Column("cases", JSONType, nullable=False),
    Column("author", String(200), nullable=False),
    Column("proposed_at", UTCDateTime(), nullable=False),
    Column("state", String(20), nullable=False),
    Column("evaluation", JSONType),
    Column("evaluated_by", String(200)),
    Column("evaluated_at", UTCDateTime()),
    Column("approver", String(200)),
    Column("approved_at", UTCDateTime()),
    UniqueConstraint("name", "version"),
    UniqueConstraint("name", "sha256"),
)

#: Every activation and rollback, in order (audited as well).
prompt_activations = Table(
    "prompt_activations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("action", String(20), nullable=False),  # activate | rollback
    Column("version", Integer, nullable=False),
    Column("previous", Integer),
    Column("actor", String(200), nullable=False),
    Column("reason", Text),
    Column("at", UTCDateTime(), nullable=False),
    Index("ix_prompt_activations_name", "name", "id"),
)
