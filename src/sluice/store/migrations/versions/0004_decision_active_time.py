"""Decisions record the reviewer's active time on the task (the review app measures it).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("decisions", sa.Column("active_seconds", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("decisions") as table:
        table.drop_column("active_seconds")
