"""Initial store: work items, batches, step runs, outbox, rejected events, review, models.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from sluice.store import JSONType, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

COMPLETED = sa.text("status = 'completed'")


def upgrade() -> None:
    op.create_table(
        "work_items",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("pipeline", sa.String(100), nullable=False),
        sa.Column("source", sa.String(512), nullable=False),
        sa.Column("event_id", sa.String(512), nullable=False),
        sa.Column("type", sa.String(256), nullable=False),
        sa.Column("subject", sa.String(512)),
        sa.Column("event_time", UTCDateTime()),
        sa.Column("datacontenttype", sa.String(128)),
        sa.Column("data", JSONType, nullable=False),
        sa.Column("extensions", JSONType),
        sa.Column("priority", sa.Integer, nullable=False, server_default=sa.text("2")),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("batch_id", sa.String(40)),
        sa.Column("result", JSONType),
        sa.Column("error_type", sa.String(100)),
        sa.Column("error", sa.Text),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime()),
        sa.Column("completed_at", UTCDateTime()),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_work_items"),
        sa.UniqueConstraint("source", "event_id", name="uq_work_items_source_event_id"),
    )
    op.create_index(
        "ix_work_items_claim", "work_items", ["pipeline", "status", "priority", "created_at"]
    )
    op.create_index("ix_work_items_batch_id", "work_items", ["batch_id"])

    op.create_table(
        "batches",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("pipeline", sa.String(100), nullable=False),
        sa.Column("workflow_id", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("executor_id", sa.String(200)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_batches"),
        sa.UniqueConstraint("workflow_id", name="uq_batches_workflow_id"),
    )
    op.create_index("ix_batches_status", "batches", ["status", "created_at"])

    op.create_table(
        "step_runs",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("item_id", sa.String(40), nullable=False),
        sa.Column("batch_id", sa.String(40)),
        sa.Column("step", sa.String(100), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("batch_size", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("input_hash", sa.String(64), nullable=False),
        sa.Column("output", JSONType),
        sa.Column("model_name", sa.String(200)),
        sa.Column("model_version", sa.String(100)),
        sa.Column("cost", sa.Float, nullable=False, server_default=sa.text("0")),
        sa.Column("error_type", sa.String(100)),
        sa.Column("error", sa.Text),
        sa.Column("executor_id", sa.String(200)),
        sa.PrimaryKeyConstraint("id", name="pk_step_runs"),
        sa.ForeignKeyConstraint(
            ["item_id"], ["work_items.id"], name="fk_step_runs_item_id_work_items"
        ),
    )
    op.create_index("ix_step_runs_item", "step_runs", ["item_id", "started_at"])
    op.create_index(
        "uq_step_runs_completed",
        "step_runs",
        ["item_id", "step"],
        unique=True,
        sqlite_where=COMPLETED,
        postgresql_where=COMPLETED,
    )

    op.create_table(
        "outbox",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("item_id", sa.String(40), nullable=False),
        sa.Column("pipeline", sa.String(100), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("payload", JSONType, nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("item_id", name="uq_outbox_item_id"),
        sa.ForeignKeyConstraint(
            ["item_id"], ["work_items.id"], name="fk_outbox_item_id_work_items"
        ),
    )
    op.create_index("ix_outbox_created", "outbox", ["created_at"])

    op.create_table(
        "rejected_events",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("pipeline", sa.String(100), nullable=False),
        sa.Column("origin", sa.String(1024), nullable=False),
        sa.Column("line", sa.Integer),
        sa.Column("raw", sa.Text, nullable=False),
        sa.Column("raw_truncated", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("error_code", sa.String(50), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("field", sa.String(200)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("item_id", sa.String(40)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rejected_events"),
    )
    op.create_index(
        "ix_rejected_events_status", "rejected_events", ["pipeline", "status", "created_at"]
    )

    op.create_table(
        "review_tasks",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("item_id", sa.String(40), nullable=False),
        sa.Column("pipeline", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("queue", sa.String(100), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("proposal", JSONType, nullable=False),
        sa.Column("workflow_id", sa.String(100)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("escalated_at", UTCDateTime()),
        sa.Column("claimed_by", sa.String(200)),
        sa.Column("claimed_at", UTCDateTime()),
        sa.Column("lease_until", UTCDateTime()),
        sa.Column("decided_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_review_tasks"),
        sa.UniqueConstraint("item_id", "kind", name="uq_review_tasks_item_id_kind"),
    )
    op.create_index(
        "ix_review_tasks_queue", "review_tasks", ["state", "queue", "priority", "created_at"]
    )

    op.create_table(
        "decisions",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("task_id", sa.String(40), nullable=False),
        sa.Column("item_id", sa.String(40), nullable=False),
        sa.Column("reviewer", sa.String(200), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("label", sa.String(200)),
        sa.Column("reason", sa.Text),
        sa.Column("decided_at", UTCDateTime(), nullable=False),
        sa.Column("seconds_to_decide", sa.Float),
        sa.Column("applied_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_decisions"),
        sa.UniqueConstraint("task_id", name="uq_decisions_task_id"),
    )
    op.create_index("ix_decisions_item", "decisions", ["item_id"])

    op.create_table(
        "model_versions",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("artifact", sa.LargeBinary, nullable=False),
        sa.Column("card", JSONType, nullable=False),
        sa.Column("stage", sa.String(20), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", "version", name="pk_model_versions"),
    )


def downgrade() -> None:
    for table in (
        "model_versions",
        "decisions",
        "review_tasks",
        "rejected_events",
        "outbox",
        "step_runs",
        "batches",
        "work_items",
    ):
        op.drop_table(table)
