"""Rounds: `sluice items retry` settles an item again in a new round.

A work item counts its rounds; a step run records the round it ran in. The unique
"one completed run per item and step" becomes "per item, step and round", so the gate,
review and action of a retried item are recorded again while its pipeline steps are not
run again (they are skipped by name, whatever the round).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COMPLETED = sa.text("status = 'completed'")


def upgrade() -> None:
    # Plain ADD COLUMN (no table rebuild): both databases add a NOT NULL column with a
    # constant default in place, existing rows read as round 0.
    zero = sa.text("0")
    op.add_column("work_items", sa.Column("round", sa.Integer, nullable=False, server_default=zero))
    op.add_column("step_runs", sa.Column("round", sa.Integer, nullable=False, server_default=zero))
    op.drop_index("uq_step_runs_completed", table_name="step_runs")
    op.create_index(
        "uq_step_runs_completed",
        "step_runs",
        ["item_id", "step", "round"],
        unique=True,
        sqlite_where=COMPLETED,
        postgresql_where=COMPLETED,
    )


def downgrade() -> None:
    op.drop_index("uq_step_runs_completed", table_name="step_runs")
    op.create_index(
        "uq_step_runs_completed",
        "step_runs",
        ["item_id", "step"],
        unique=True,
        sqlite_where=COMPLETED,
        postgresql_where=COMPLETED,
    )
    with op.batch_alter_table("step_runs") as table:
        table.drop_column("round")
    with op.batch_alter_table("work_items") as table:
        table.drop_column("round")
