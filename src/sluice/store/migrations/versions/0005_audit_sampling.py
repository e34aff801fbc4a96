"""Sampling audits: the stratum of an audit task, and per-stratum sampling counts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("review_tasks", sa.Column("stratum", sa.String(200)))
    op.create_table(
        "audit_strata",
        sa.Column("pipeline", sa.String(100), nullable=False),
        sa.Column("stratum", sa.String(200), nullable=False),
        sa.Column("seen", sa.Integer, nullable=False),
        sa.Column("sampled", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("pipeline", "stratum", name="pk_audit_strata"),
    )


def downgrade() -> None:
    op.drop_table("audit_strata")
    with op.batch_alter_table("review_tasks") as table:
        table.drop_column("stratum")
