"""Alerts and drift references (``sluice.observability.alerts_tables``, ``drift_tables``).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-09
"""

import sqlalchemy as sa
from alembic import op

from sluice.store import JSONType, UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("threshold", sa.Float),
        sa.Column("details", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("webhook_status", sa.String(20), nullable=False),
        sa.Column("webhook_attempts", sa.Integer, nullable=False),
        sa.Column("webhook_error", sa.Text),
        sa.Column("delivered_at", UTCDateTime()),
    )
    op.create_index("ix_alerts_created", "alerts", ["created_at"])
    op.create_index("ix_alerts_subject", "alerts", ["kind", "name", "subject", "created_at"])
    op.create_table(
        "drift_references",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("pipeline", sa.String(100)),
        sa.Column("encoder", sa.String(200), nullable=False),
        sa.Column("data_sha256", sa.String(64), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("body", JSONType, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index(
        "ix_drift_references_model", "drift_references", ["model", "version", "kind", "created_at"]
    )
    op.create_index("ix_drift_references_pipeline", "drift_references", ["pipeline", "created_at"])


def downgrade() -> None:
    op.drop_table("drift_references")
    op.drop_table("alerts")
