"""Knowledge base: indexes, documents, index versions, chunks, vectors, activations.

The keyword index is backend-specific: on PostgreSQL the postings table ``kb_terms``
is created here; on SQLite each index version gets its own FTS5 table when it is
created (``sluice.knowledge.keyword_sqlite``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from sluice.store import JSONType, UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _cascade(column: str, target: str, *, primary_key: bool = False) -> sa.Column[Any]:
    return sa.Column(
        column,
        sa.Integer if target != "kb_indexes.name" else sa.String(100),
        sa.ForeignKey(target, ondelete="CASCADE"),
        nullable=False,
        primary_key=primary_key,
    )


def upgrade() -> None:
    op.create_table(
        "kb_indexes",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("active_version", sa.Integer),
        sa.Column("docs_generation", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "kb_documents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _cascade("index_name", "kb_indexes.name"),
        sa.Column("doc_id", sa.String(32), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("root", sa.Text),
        sa.Column("record_key", sa.Text),
        sa.Column("format", sa.String(20), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("headings", JSONType, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("metadata", JSONType, nullable=False),
        sa.Column("ingested_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("index_name", "doc_id"),
    )
    op.create_index("ix_kb_documents_source", "kb_documents", ["index_name", "source"])
    op.create_table(
        "kb_index_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _cascade("index_name", "kb_indexes.name"),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("embed_task", sa.String(200), nullable=False),
        sa.Column("encoder", sa.String(300)),
        sa.Column("dimensions", sa.Integer),
        sa.Column("chunking", JSONType, nullable=False),
        sa.Column("analyzer", sa.String(100), nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("chunks", sa.Integer, nullable=False),
        sa.Column("terms", sa.Integer, nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("ready_at", UTCDateTime()),
        sa.Column("activated_at", UTCDateTime()),
        sa.Column("activated_by", sa.String(200)),
        sa.Column("note", sa.Text),
        sa.UniqueConstraint("index_name", "number"),
    )
    op.create_table(
        "kb_version_documents",
        _cascade("version", "kb_index_versions.id", primary_key=True),
        _cascade("document", "kb_documents.id", primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
    )
    op.create_index("ix_kb_version_documents_document", "kb_version_documents", ["document"])
    op.create_table(
        "kb_chunks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _cascade("version", "kb_index_versions.id"),
        _cascade("document", "kb_documents.id"),
        sa.Column("chunk_id", sa.String(32), nullable=False),
        sa.Column("ordinal", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("start", sa.Integer, nullable=False),
        sa.Column("end", sa.Integer, nullable=False),
        sa.Column("heading_path", JSONType, nullable=False),
        sa.Column("token_count", sa.Integer, nullable=False),
        sa.Column("terms", sa.Integer, nullable=False),
        sa.Column("metadata", JSONType),
        sa.UniqueConstraint("version", "chunk_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_kb_chunks_document", "kb_chunks", ["document", "version"])
    op.create_table(
        "kb_vectors",
        _cascade("chunk", "kb_chunks.id", primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("document", sa.Integer, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_kb_vectors_version", "kb_vectors", ["version", "chunk"])
    op.create_table(
        "kb_activations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _cascade("index_name", "kb_indexes.name"),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("previous", sa.Integer),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_kb_activations_index", "kb_activations", ["index_name", "id"])
    if op.get_bind().dialect.name == "postgresql":
        # The keyword index's postings (sluice.knowledge.keyword_postgres).
        op.create_table(
            "kb_terms",
            sa.Column("version", sa.Integer, primary_key=True),
            sa.Column("term", sa.Text, primary_key=True),
            sa.Column("chunk", sa.Integer, primary_key=True),
            sa.Column("document", sa.Integer, nullable=False),
            sa.Column("tf", sa.Integer, nullable=False),
            sa.Column("length", sa.Integer, nullable=False),
        )
        op.create_index("ix_kb_terms_chunk", "kb_terms", ["chunk"])
        op.create_index(
            "ix_kb_terms_postings",
            "kb_terms",
            ["version", "term"],
            postgresql_include=["chunk", "document", "tf", "length"],
        )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.drop_table("kb_terms")
    else:
        names = bind.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE "
            "'CREATE VIRTUAL TABLE%' AND name LIKE 'kb_fts_%'"
        ).scalars()
        for name in list(names):
            bind.exec_driver_sql(f'DROP TABLE "{name}"')
    for table in (
        "kb_activations",
        "kb_vectors",
        "kb_chunks",
        "kb_version_documents",
        "kb_index_versions",
        "kb_documents",
        "kb_indexes",
    ):
        op.drop_table(table)
