"""Versioned prompts: their versions and activations (``sluice.governance.prompts.tables``).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from sluice.store import JSONType, UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prompt_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("cases", JSONType, nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("proposed_at", UTCDateTime(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("evaluation", JSONType),
        sa.Column("evaluated_by", sa.String(200)),
        sa.Column("evaluated_at", UTCDateTime()),
        sa.Column("approver", sa.String(200)),
        sa.Column("approved_at", UTCDateTime()),
        sa.UniqueConstraint("name", "version"),
        sa.UniqueConstraint("name", "sha256"),
    )
    op.create_table(
        "prompt_activations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("previous", sa.Integer),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_prompt_activations_name", "prompt_activations", ["name", "id"])


def downgrade() -> None:
    op.drop_table("prompt_activations")
    op.drop_table("prompt_versions")
