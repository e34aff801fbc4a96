"""Reading and writing documents and chunks: portable SQL, inside the caller's transaction.

Everything here runs on a connection the caller opened (``store.begin()`` to write,
``store.read()`` to read), so that a document, its chunks in every index version they
belong to, their vectors, keyword entries and the versions' statistics change together
or not at all.

A chunk's keyword entry lives in the backend's keyword index
(:class:`~sluice.knowledge.keyword_index.KeywordIndex`), which has no foreign keys: every
deletion of chunks goes through :func:`remove_chunks` / :func:`delete_documents`, which
tell the keyword index first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, and_, func, or_, select, update

from sluice.knowledge.documents import Chunk, Document, DocumentFormat, Heading, MetadataValue
from sluice.knowledge.keyword_index import KeywordEntry, KeywordIndex
from sluice.knowledge.tables import (
    kb_chunks,
    kb_documents,
    kb_index_versions,
    kb_indexes,
    kb_vector_rows,
    kb_version_documents,
)
from sluice.store import utcnow

__all__ = [
    "DocumentRow",
    "HeldDocument",
    "IndexedChunk",
    "bump_documents",
    "chunk_rows",
    "claim_documents",
    "delete_documents",
    "document_rows",
    "ensure_index",
    "fingerprints",
    "load_documents",
    "lock_index",
    "pending_documents",
    "remove_chunks",
    "replace_chunks",
    "upsert_document",
]

# Values per IN (...) list: every value is one bound parameter, and PostgreSQL's protocol
# (65,535) and SQLite (32,766 by default) cap how many a statement takes.
_IN_BATCH = 5_000

_T = TypeVar("_T")


@dataclass(frozen=True)
class DocumentRow:
    """A stored document without its text: what filters and citations need.

    Attributes:
        pk: Its row id.
        doc_id: Its stable id (:func:`~sluice.knowledge.make_doc_id`).
        source: Its source URI or root-relative path.
        title: Its title.
        format: The reader it came through.
        metadata: Its metadata (lists as tuples).
        ingested_at: When it was first ingested.
        updated_at: When its content last changed.
    """

    pk: int
    doc_id: str
    source: str
    title: str
    format: str
    metadata: Mapping[str, MetadataValue]
    ingested_at: datetime
    updated_at: datetime

    def filterable(self) -> dict[str, Any]:
        """Its metadata plus ``doc_id``, ``source``, ``format`` and ``ingested_at``."""
        return {
            **self.metadata,
            "doc_id": self.doc_id,
            "source": self.source,
            "format": self.format,
            "ingested_at": self.ingested_at.isoformat(),
        }


@dataclass(frozen=True)
class HeldDocument:
    """What ingest compares a stored document with: its id, source, root and fingerprint.

    Attributes:
        doc_id: Its stable id.
        source: Its source URI or root-relative path.
        root: The ingest root its source is relative to (a resolved path); None for a
            ``file://`` source.
        fingerprint: :attr:`~sluice.knowledge.Document.fingerprint` as stored.
    """

    doc_id: str
    source: str
    root: str | None
    fingerprint: str


@dataclass(frozen=True)
class IndexedChunk:
    """A chunk ready to be written: the chunk, its analyzed terms and its vector."""

    chunk: Chunk
    terms: Sequence[str]
    vector: npt.NDArray[np.float32]


def _metadata(raw: Mapping[str, Any] | None) -> dict[str, MetadataValue]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in (raw or {}).items()}


def _batches(values: Sequence[_T]) -> Iterable[list[_T]]:
    for i in range(0, len(values), _IN_BATCH):
        yield list(values[i : i + _IN_BATCH])


# -- indexes ----------------------------------------------------------------------------
def ensure_index(conn: Connection, name: str) -> None:
    """Create the index row if it does not exist (idempotent)."""
    found = conn.execute(select(kb_indexes.c.name).where(kb_indexes.c.name == name)).first()
    if found is None:
        conn.execute(
            kb_indexes.insert().values(
                name=name, active_version=None, docs_generation=0, created_at=utcnow()
            )
        )


def lock_index(conn: Connection, name: str, *, exclusive: bool) -> Any:
    """The index row, locked: shared by writers of chunks, exclusive for status changes.

    On PostgreSQL, a status change (a version becoming ready or active) waits for the
    writes in flight and is seen by those that follow, so no write can miss a version
    that has just become one to maintain. SQLite's single writer gives the same for free.
    """
    query = select(kb_indexes).where(kb_indexes.c.name == name)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(read=not exclusive)
    return conn.execute(query).first()


def bump_documents(conn: Connection, name: str) -> None:
    """Note that the index's documents changed (metadata caches reload)."""
    conn.execute(
        update(kb_indexes)
        .where(kb_indexes.c.name == name)
        .values(docs_generation=kb_indexes.c.docs_generation + 1)
    )


# -- documents --------------------------------------------------------------------------
def fingerprints(conn: Connection, index: str) -> list[HeldDocument]:
    """Id, source, root and fingerprint of every document of the index."""
    rows = conn.execute(
        select(
            kb_documents.c.doc_id,
            kb_documents.c.source,
            kb_documents.c.root,
            kb_documents.c.fingerprint,
        ).where(kb_documents.c.index_name == index)
    )
    return [HeldDocument(r.doc_id, r.source, r.root, r.fingerprint) for r in rows]


def upsert_document(conn: Connection, index: str, doc: Document, root: str | None) -> int:
    """Store a new or changed document, read under ``root`` (None: none); its row id."""
    now = utcnow()
    values = {
        "source": doc.source,
        "root": root,
        "record_key": doc.record_key,
        "format": doc.format.value,
        "title": doc.title,
        "text": doc.text,
        "headings": [[h.level, h.title, h.start, h.end] for h in doc.headings],
        "sha256": doc.sha256,
        "fingerprint": doc.fingerprint,
        "metadata": {k: list(v) if isinstance(v, tuple) else v for k, v in doc.metadata.items()},
        "updated_at": now,
    }
    where = and_(kb_documents.c.index_name == index, kb_documents.c.doc_id == doc.doc_id)
    pk = conn.execute(select(kb_documents.c.id).where(where)).scalar()
    if pk is not None:
        conn.execute(update(kb_documents).where(kb_documents.c.id == pk).values(**values))
        return int(pk)
    inserted = conn.execute(
        kb_documents.insert()
        .values(index_name=index, doc_id=doc.doc_id, ingested_at=now, **values)
        .returning(kb_documents.c.id)
    ).scalar_one()
    return int(inserted)


def claim_documents(conn: Connection, index: str, doc_ids: Sequence[str], root: str | None) -> None:
    """Record that these stored documents were last read under ``root``.

    An unchanged document is not rewritten by ingest, but the root it was read under
    decides which later ingests may prune it (a folder moved to another machine).
    """
    for batch in _batches(doc_ids):
        conn.execute(
            update(kb_documents)
            .where(kb_documents.c.index_name == index, kb_documents.c.doc_id.in_(batch))
            .values(root=root)
        )


def load_documents(conn: Connection, pks: Sequence[int]) -> list[tuple[int, Document]]:
    """Documents by row id, with their text, rebuilt as :class:`Document` s."""
    out: list[tuple[int, Document]] = []
    for batch in _batches(pks):
        for r in conn.execute(
            select(kb_documents).where(kb_documents.c.id.in_(batch)).order_by(kb_documents.c.id)
        ):
            doc = Document(
                doc_id=r.doc_id,
                source=r.source,
                format=DocumentFormat(r.format),
                title=r.title,
                text=r.text,
                sha256=r.sha256,
                metadata=_metadata(r.metadata),
                headings=tuple(Heading(*h) for h in r.headings),
                record_key=r.record_key,
            )
            out.append((int(r.id), doc))
    return out


def document_rows(
    conn: Connection,
    index: str,
    *,
    pks: Sequence[int] | None = None,
    doc_ids: Sequence[str] | None = None,
) -> list[DocumentRow]:
    """Documents without their text: all of the index, or those named."""
    columns = [c for c in kb_documents.c if c.name not in ("text", "headings")]
    base = select(*columns).where(kb_documents.c.index_name == index)
    if pks is not None:
        queries = [base.where(kb_documents.c.id.in_(b)) for b in _batches(pks)]
    elif doc_ids is not None:
        queries = [base.where(kb_documents.c.doc_id.in_(b)) for b in _batches(doc_ids)]
    else:
        queries = [base]
    return [
        DocumentRow(
            pk=int(r.id),
            doc_id=r.doc_id,
            source=r.source,
            title=r.title,
            format=r.format,
            metadata=_metadata(r.metadata),
            ingested_at=r.ingested_at,
            updated_at=r.updated_at,
        )
        for q in queries
        for r in conn.execute(q)
    ]


def delete_documents(
    conn: Connection, index: str, doc_ids: Sequence[str], keyword: KeywordIndex
) -> int:
    """Delete documents and their chunks in every version; how many were deleted."""
    pks = [
        int(pk)
        for batch in _batches(doc_ids)
        for pk in conn.execute(
            select(kb_documents.c.id).where(
                kb_documents.c.index_name == index, kb_documents.c.doc_id.in_(batch)
            )
        ).scalars()
    ]
    if not pks:
        return 0
    by_version: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for batch in _batches(pks):
        for r in conn.execute(
            select(kb_chunks.c.id, kb_chunks.c.version, kb_chunks.c.terms).where(
                kb_chunks.c.document.in_(batch)
            )
        ):
            by_version[int(r.version)].append((int(r.id), int(r.terms)))
    for version, chunks in by_version.items():
        remove_chunks(conn, keyword, version, chunks)
    # Chunks, vectors and version memberships follow by ON DELETE CASCADE.
    for batch in _batches(pks):
        conn.execute(kb_documents.delete().where(kb_documents.c.id.in_(batch)))
    return len(pks)


def pending_documents(conn: Connection, index: str, version: int) -> list[int]:
    """Row ids of documents the version lacks or holds in an older form."""
    held = kb_version_documents.alias("held")
    query = (
        select(kb_documents.c.id)
        .select_from(
            kb_documents.outerjoin(
                held, and_(held.c.document == kb_documents.c.id, held.c.version == version)
            )
        )
        .where(
            kb_documents.c.index_name == index,
            or_(held.c.fingerprint.is_(None), held.c.fingerprint != kb_documents.c.fingerprint),
        )
        .order_by(kb_documents.c.id)
    )
    return [int(pk) for pk in conn.execute(query).scalars()]


# -- chunks -----------------------------------------------------------------------------
def remove_chunks(
    conn: Connection, keyword: KeywordIndex, version: int, chunks: Sequence[tuple[int, int]]
) -> None:
    """Remove ``(chunk id, terms)`` from a version: keyword entries, rows, statistics."""
    if not chunks:
        return
    ids = [c for c, _ in chunks]
    keyword.remove(conn, version, ids)
    for batch in _batches(ids):
        conn.execute(kb_chunks.delete().where(kb_chunks.c.id.in_(batch)))
    _count(conn, version, -len(chunks), -sum(t for _, t in chunks))


def _count(conn: Connection, version: int, chunks: int, terms: int) -> None:
    conn.execute(
        update(kb_index_versions)
        .where(kb_index_versions.c.id == version)
        .values(
            chunks=kb_index_versions.c.chunks + chunks,
            terms=kb_index_versions.c.terms + terms,
            generation=kb_index_versions.c.generation + 1,
        )
    )


def replace_chunks(
    conn: Connection,
    keyword: KeywordIndex,
    version: int,
    document: int,
    fingerprint: str,
    chunks: Sequence[IndexedChunk],
) -> None:
    """Make ``chunks`` the version's chunks of ``document`` (cut from ``fingerprint``)."""
    old = conn.execute(
        select(kb_chunks.c.id, kb_chunks.c.terms).where(
            kb_chunks.c.document == document, kb_chunks.c.version == version
        )
    ).all()
    remove_chunks(conn, keyword, version, [(int(r.id), int(r.terms)) for r in old])
    if chunks:
        rows = [
            {
                "version": version,
                "document": document,
                "chunk_id": c.chunk.chunk_id,
                "ordinal": c.chunk.ordinal,
                "text": c.chunk.text,
                "start": c.chunk.start,
                "end": c.chunk.end,
                "heading_path": list(c.chunk.heading_path),
                "token_count": c.chunk.token_count,
                "terms": len(c.terms),
                "metadata": None,
            }
            for c in chunks
        ]
        ids = [
            int(pk)
            for pk in conn.execute(
                kb_chunks.insert().returning(kb_chunks.c.id, sort_by_parameter_order=True), rows
            ).scalars()
        ]
        keyword.add(
            conn,
            version,
            [KeywordEntry(pk, document, c.terms) for pk, c in zip(ids, chunks, strict=True)],
        )
        conn.execute(
            kb_vector_rows.insert(),
            [
                {
                    "chunk": pk,
                    "version": version,
                    "document": document,
                    "vector": np.ascontiguousarray(c.vector, dtype="<f4").tobytes(),
                }
                for pk, c in zip(ids, chunks, strict=True)
            ],
        )
        _count(conn, version, len(chunks), sum(len(c.terms) for c in chunks))
    conn.execute(
        kb_version_documents.delete().where(
            kb_version_documents.c.version == version,
            kb_version_documents.c.document == document,
        )
    )
    conn.execute(
        kb_version_documents.insert().values(
            version=version, document=document, fingerprint=fingerprint
        )
    )


def chunk_rows(conn: Connection, pks: Sequence[int]) -> dict[int, Any]:
    """Chunk rows by id, each with its document's ``doc_id``, ``source`` and ``title``."""
    out: dict[int, Any] = {}
    for batch in _batches(pks):
        query = (
            select(
                kb_chunks,
                kb_documents.c.doc_id,
                kb_documents.c.source,
                kb_documents.c.title,
                kb_documents.c.metadata.label("doc_metadata"),
            )
            .join(kb_documents, kb_documents.c.id == kb_chunks.c.document)
            .where(kb_chunks.c.id.in_(batch))
        )
        out.update({int(r.id): r for r in conn.execute(query)})
    return out


def count_documents(conn: Connection, index: str) -> int:
    """How many documents the index holds."""
    return int(
        conn.execute(
            select(func.count()).select_from(kb_documents).where(kb_documents.c.index_name == index)
        ).scalar_one()
    )
