"""Tables the knowledge plane owns: documents, index versions, chunks and their vectors.

An *index* (``kb_indexes``) is a named collection of documents (``kb_documents``: the
corpus, with each document's normalized text, so that a new index version can be built
from the store without the original files). An *index version* (``kb_index_versions``)
is that corpus cut into chunks with one chunking configuration and embedded with one
encoder: its chunks (``kb_chunks``), their vectors (``kb_vectors``) and its keyword index.
``kb_version_documents`` says which fingerprint of each document a version holds, so a
version that fell behind (a retired one being restored) knows what to redo.
``kb_activations`` is the history of which version answered when (what a rollback reads).

The keyword index is backend-specific and not declared here: an FTS5 virtual table per
version on SQLite (``kb_fts_<version id>``), a postings table ``kb_terms`` on PostgreSQL
(:mod:`sluice.knowledge.keyword_postgres`). SQLAlchemy's metadata cannot express an FTS5
table, and a table that exists on one backend only must not appear in the metadata
every backend is compared with.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from sluice.store import JSONType, UTCDateTime, metadata

__all__ = [
    "kb_activations",
    "kb_chunks",
    "kb_documents",
    "kb_index_versions",
    "kb_indexes",
    "kb_vector_rows",
    "kb_version_documents",
]

#: One row per named index. ``active_version`` is what queries use; switching it is one
#: row update, which is what makes activation atomic. ``docs_generation`` grows with every
#: change to the documents (caches of document metadata compare it).
kb_indexes = Table(
    "kb_indexes",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("active_version", Integer),  # kb_index_versions.id; no FK: versions refer here
    Column("docs_generation", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

#: The corpus: one row per document (a file, or one record of a JSONL/CSV file).
kb_documents = Table(
    "kb_documents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "index_name",
        String(100),
        ForeignKey("kb_indexes.name", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("doc_id", String(32), nullable=False),
    Column("source", Text, nullable=False),
    # The ingest root (resolved path) its source is relative to; NULL for a file:// URI.
    # Pruning compares it: an ingest speaks only for the documents of its own root.
    Column("root", Text),
    Column("record_key", Text),
    Column("format", String(20), nullable=False),
    Column("title", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("headings", JSONType, nullable=False),  # [[level, title, start, end], ...]
    Column("sha256", String(64), nullable=False),  # content hash of the raw bytes
    Column("fingerprint", String(64), nullable=False),  # Document.fingerprint
    Column("metadata", JSONType, nullable=False),
    Column("ingested_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("index_name", "doc_id"),
    Index("ix_kb_documents_source", "index_name", "source"),
)

#: Index versions. ``status``: building -> ready -> active -> retired (a retired version
#: can be active again through a rollback or an activation). ``chunks``/``terms`` are the
#: keyword statistics (BM25's N and total length); ``generation`` grows with every
#: change to the version's chunks (in-process vector indexes compare it).
kb_index_versions = Table(
    "kb_index_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "index_name",
        String(100),
        ForeignKey("kb_indexes.name", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("number", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("embed_task", String(200), nullable=False),
    Column("encoder", String(300)),  # model@version, set by the first embedding
    Column("dimensions", Integer),
    Column("chunking", JSONType, nullable=False),  # Chunker.describe()
    Column("analyzer", String(100), nullable=False),
    Column("config_hash", String(64), nullable=False),
    Column("chunks", Integer, nullable=False),
    Column("terms", Integer, nullable=False),
    Column("generation", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("ready_at", UTCDateTime()),
    Column("activated_at", UTCDateTime()),
    Column("activated_by", String(200)),
    Column("note", Text),
    UniqueConstraint("index_name", "number"),
)

#: Which fingerprint of each document a version holds (its chunks were cut from it).
kb_version_documents = Table(
    "kb_version_documents",
    metadata,
    Column(
        "version",
        Integer,
        ForeignKey("kb_index_versions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "document",
        Integer,
        ForeignKey("kb_documents.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("fingerprint", String(64), nullable=False),
    Index("ix_kb_version_documents_document", "document"),
)

#: Chunks of each version. ``id`` is also the chunk's rowid in the keyword index.
kb_chunks = Table(
    "kb_chunks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "version",
        Integer,
        ForeignKey("kb_index_versions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column(
        "document",
        Integer,
        ForeignKey("kb_documents.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("chunk_id", String(32), nullable=False),
    Column("ordinal", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("start", Integer, nullable=False),
    Column("end", Integer, nullable=False),
    Column("heading_path", JSONType, nullable=False),
    Column("token_count", Integer, nullable=False),
    Column("terms", Integer, nullable=False),  # analyzed terms: BM25's document length
    Column("metadata", JSONType),
    UniqueConstraint("version", "chunk_id"),
    Index("ix_kb_chunks_document", "document", "version"),
    # Ids are never reused (AUTOINCREMENT): in-process vector indexes refresh by id.
    sqlite_autoincrement=True,
)

#: One float32 vector per chunk (little-endian bytes), the durable source of truth of
#: the in-process vector index. Apart from ``kb_chunks`` so that loading a version's
#: vectors does not read its texts.
kb_vector_rows = Table(
    "kb_vectors",
    metadata,
    Column(
        "chunk",
        Integer,
        ForeignKey("kb_chunks.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("version", Integer, nullable=False),
    Column("document", Integer, nullable=False),
    Column("vector", LargeBinary, nullable=False),
    Index("ix_kb_vectors_version", "version", "chunk"),
)

#: Every activation and rollback, in order (audited as well).
kb_activations = Table(
    "kb_activations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "index_name",
        String(100),
        ForeignKey("kb_indexes.name", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("action", String(20), nullable=False),  # activate | rollback
    Column("version", Integer, nullable=False),
    Column("previous", Integer),
    Column("actor", String(200), nullable=False),
    Column("reason", Text),
    Column("at", UTCDateTime(), nullable=False),
    Index("ix_kb_activations_index", "index_name", "id"),
)
