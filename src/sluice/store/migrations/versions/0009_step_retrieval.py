"""Knowledge lookups in step runs: the index version and passages a step's output used.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from sluice.store import JSONType

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("step_runs", sa.Column("retrieval", JSONType))


def downgrade() -> None:
    with op.batch_alter_table("step_runs") as table:
        table.drop_column("retrieval")
