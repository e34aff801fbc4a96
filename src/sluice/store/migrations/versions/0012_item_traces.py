"""Item traces: ``work_items.trace_id`` (``sluice.execution.traces``).

Items already in the store get the trace id intake would have minted for them (the
derivation is copied here, frozen, as migrations must not follow later code), so a
reviewer can jump from any item to its trace once tracing is on.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-09
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_CHUNK = 1000


def _trace_id(item_id: str) -> str:
    return hashlib.sha256(f"sluice-trace:{item_id}".encode()).hexdigest()[:32]


def upgrade() -> None:
    op.add_column("work_items", sa.Column("trace_id", sa.String(32)))
    conn = op.get_bind()
    items = sa.table("work_items", sa.column("id", sa.String), sa.column("trace_id", sa.String))
    ids = [row.id for row in conn.execute(sa.select(items.c.id).where(items.c.trace_id.is_(None)))]
    update = (
        sa.update(items)
        .where(items.c.id == sa.bindparam("item"))
        .values(trace_id=sa.bindparam("trace"))
    )
    for start in range(0, len(ids), _CHUNK):
        conn.execute(
            update, [{"item": i, "trace": _trace_id(i)} for i in ids[start : start + _CHUNK]]
        )


def downgrade() -> None:
    with op.batch_alter_table("work_items") as batch:
        batch.drop_column("trace_id")
