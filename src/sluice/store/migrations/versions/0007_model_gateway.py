"""Model gateway: call records, the result cache, daily spend; calls in step runs.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from sluice.store import JSONType, UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_calls",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("call_id", sa.String(40), nullable=False),
        sa.Column("task", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("endpoint", sa.String(200), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("tenant", sa.String(200)),
        sa.Column("inputs", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("cost", sa.Float, nullable=False),
        sa.Column("cache", sa.String(10), nullable=False),
        sa.Column("tier", sa.Integer, nullable=False),
        sa.Column("canary", sa.Boolean, nullable=False),
        sa.Column("fallbacks", JSONType),
        sa.Column("error_kind", sa.String(30)),
        sa.Column("error", sa.Text),
        sa.Column("started_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_model_calls_endpoint", "model_calls", ["endpoint", "started_at"])
    op.create_index("ix_model_calls_task", "model_calls", ["task", "started_at"])
    op.create_table(
        "model_cache",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("scope", sa.String(300), nullable=False),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("vector", sa.LargeBinary),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=False),
        sa.Column("hits", sa.Integer, nullable=False),
    )
    op.create_index("ix_model_cache_scope", "model_cache", ["kind", "scope"])
    op.create_index("ix_model_cache_used", "model_cache", ["last_used_at"])
    op.create_table(
        "model_spend",
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("scope", sa.String(300), nullable=False),
        sa.Column("spent", sa.Float, nullable=False),
        sa.Column("soft_alerted", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("day", "scope", name="pk_model_spend"),
    )
    op.add_column("step_runs", sa.Column("model_calls", JSONType))


def downgrade() -> None:
    with op.batch_alter_table("step_runs") as table:
        table.drop_column("model_calls")
    op.drop_table("model_spend")
    op.drop_table("model_cache")
    op.drop_table("model_calls")
