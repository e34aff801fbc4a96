"""The observability plane's ``drift_references`` table (read through :mod:`.drift_reference`)."""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table

from sluice.store import JSONType, UTCDateTime, metadata

__all__ = ["drift_references"]

#: What the monitors compare a window with: the training data of a model version
#: (kind "training") or a pinned period of a pipeline (kind "period").
drift_references = Table(
    "drift_references",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("model", String(200), nullable=False),
    Column("version", String(100), nullable=False),
    Column("pipeline", String(100)),  # period references only
    Column("encoder", String(200), nullable=False),
    Column("data_sha256", String(64), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("body", JSONType, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_drift_references_model", "model", "version", "kind", "created_at"),
    Index("ix_drift_references_pipeline", "pipeline", "created_at"),
)
