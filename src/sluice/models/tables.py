"""Tables owned by the model plane: model versions, their stage changes and evaluations."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from sluice.store import JSONType, UTCDateTime, metadata

__all__ = ["model_evaluations", "model_stage_changes", "model_versions"]

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
    Column("stage", String(20), nullable=False),  # candidate | canary | production | retired
    Column("created_by", String(200), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("name", "version"),
)

#: One row per change of a version's stage, registration included (from_stage NULL).
#: Rows are never updated or deleted: rollback reads the production history from here,
#: and the row count is the registry's stage epoch.
model_stage_changes = Table(
    "model_stage_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("version", String(100), nullable=False),
    Column("from_stage", String(20)),
    Column("to_stage", String(20), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("reason", Text),
    # The passing evaluation a promotion relied on.
    Column("evaluation_id", String(40)),
    Column("changed_at", UTCDateTime(), nullable=False),
    Index("ix_model_stage_changes_name", "name", "id"),
)

#: Evaluations of a version against the production version of the time (its baseline)
#: on a held-out set; promotion requires a passing one against the current production.
model_evaluations = Table(
    "model_evaluations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("version", String(100), nullable=False),
    Column("baseline_version", String(100)),
    Column("holdout_sha256", String(64), nullable=False),
    Column("metrics", JSONType, nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_model_evaluations_name", "name", "version", "created_at"),
)
