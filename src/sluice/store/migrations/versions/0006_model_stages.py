"""Model stages: the history of stage changes and the evaluations promotion relies on.

Existing versions get one history row each, for the stage they are at (``from_stage``
NULL, as a registration), so the registry's history and stage epoch start from the
store's present state. Earlier stage changes were not recorded and are not invented.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from sluice.store import JSONType, UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_stage_changes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("from_stage", sa.String(20)),
        sa.Column("to_stage", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("evaluation_id", sa.String(40)),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_model_stage_changes_name", "model_stage_changes", ["name", "id"])
    op.create_table(
        "model_evaluations",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("baseline_version", sa.String(100)),
        sa.Column("holdout_sha256", sa.String(64), nullable=False),
        sa.Column("metrics", JSONType, nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index(
        "ix_model_evaluations_name", "model_evaluations", ["name", "version", "created_at"]
    )
    op.execute(
        "INSERT INTO model_stage_changes (name, version, from_stage, to_stage, actor, reason, "
        "changed_at) SELECT name, version, NULL, stage, created_by, "
        "'registered before stage history was kept (migration 0006)', created_at "
        "FROM model_versions ORDER BY created_at, name, version"
    )


def downgrade() -> None:
    op.drop_table("model_evaluations")
    op.drop_table("model_stage_changes")
