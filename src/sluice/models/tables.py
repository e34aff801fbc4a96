"""Tables owned by the model plane: the registry of model versions."""

from __future__ import annotations

from sqlalchemy import Column, LargeBinary, PrimaryKeyConstraint, String, Table

from sluice.store import JSONType, UTCDateTime, metadata

__all__ = ["model_versions"]

model_versions = Table(
    "model_versions",
    metadata,
    Column("name", String(200), nullable=False),
    Column("version", String(100), nullable=False),
    Column("kind", String(50), nullable=False),  # encoder | classifier
    Column("sha256", String(64), nullable=False),
    # The artifact itself lives in the store so every worker on every host loads the
    # same bytes; a local copy is cached under SLUICE_HOME/models.
    Column("artifact", LargeBinary, nullable=False),
    Column("card", JSONType, nullable=False),
    Column("stage", String(20), nullable=False),  # candidate | production | retired
    Column("created_by", String(200), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("name", "version"),
)
