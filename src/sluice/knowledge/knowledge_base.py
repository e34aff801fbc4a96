r"""The knowledge base: ingest, search with citations, and versioned indexes, in one object.

:class:`KnowledgeBase` is what edges and pipelines use. It works on SQLite and
PostgreSQL alike; the backends differ only in their keyword index
(:func:`keyword_index_for`). Embeddings always go through the model gateway.

Example (the demo knowledge base; docs/knowledge.md has more):
    >>> kb = KnowledgeBase(store, Gateway(settings, store))  # doctest: +SKIP
    >>> kb.ingest([folder], root=folder, actor="cli:ana", exclude=["README.md"]).chunks
    ... # doctest: +SKIP
    86
    >>> result = kb.search("when will my refund reach my card", k=3,  # doctest: +SKIP
    ...                    filters=[Filter.eq("product", "billing")])
    >>> [h.citation.source for h in result.hits], result.version.ref  # doctest: +SKIP
    (['faq.csv', 'refund-timing.md', 'double-charges.md'], 'default@v1')
    >>> result.hits[1].citation.heading_path  # doctest: +SKIP
    ('When will I get my refund?', 'When it reaches you')
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sluice.errors import (
    EncoderMismatchError,
    IndexVersionError,
    KnowledgeError,
)
from sluice.knowledge import ingestion
from sluice.knowledge.analysis import analyzer_named
from sluice.knowledge.documents import MetadataValue
from sluice.knowledge.filters import Filter
from sluice.knowledge.index_store import (
    bump_documents,
    claim_documents,
    count_documents,
    delete_documents,
    document_rows,
    ensure_index,
    fingerprints,
    load_documents,
    lock_index,
    pending_documents,
)
from sluice.knowledge.indexing import Progress, index_groups
from sluice.knowledge.ingest import ReaderOptions, plan_changes, read_sources
from sluice.knowledge.ingestion import IngestReport
from sluice.knowledge.keyword_index import KeywordIndex
from sluice.knowledge.keyword_postgres import PostingsIndex
from sluice.knowledge.keyword_sqlite import Fts5Index
from sluice.knowledge.lifecycle import DEFAULT_CHUNKING, VersionLifecycle
from sluice.knowledge.reranking import rerank
from sluice.knowledge.results import FusionConfig, Reranker, RetrievalMode, SearchResult
from sluice.knowledge.search import DocumentFilterCache, fuse, make_hits
from sluice.knowledge.vector_index import VectorCache
from sluice.knowledge.vector_pgvector import PgvectorIndex, VectorBackend, open_dense_backend
from sluice.knowledge.versions import (
    IndexVersion,
    get_version,
    list_versions,
    version_state,
)
from sluice.store import Store

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from sluice.models import Gateway

__all__ = ["DEFAULT_CHUNKING", "DEFAULT_INDEX", "KnowledgeBase", "KnowledgeStats"]

#: The index a knowledge base uses unless told otherwise.
DEFAULT_INDEX = "default"


def keyword_index_for(store: Store) -> KeywordIndex:
    """The keyword index of the store's backend."""
    return PostingsIndex() if store.dialect == "postgresql" else Fts5Index()


@dataclass(frozen=True)
class KnowledgeStats:
    """What ``sluice kb stats`` shows.

    Attributes:
        index: The index.
        documents: Documents stored.
        active: The active version (None before the first ingest).
        versions: Every version.
        keyword_backend: The keyword index implementation.
        vector_backend: How dense search runs on this store.
    """

    index: str
    documents: int
    active: IndexVersion | None
    versions: tuple[IndexVersion, ...]
    keyword_backend: str
    vector_backend: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "index": self.index,
            "documents": self.documents,
            "active": self.active.ref if self.active else None,
            "versions": [v.to_dict() for v in self.versions],
            "keyword_backend": self.keyword_backend,
            "vector_backend": self.vector_backend,
        }


class KnowledgeBase(VersionLifecycle):
    """One index of the knowledge base (module docs).

    Args:
        store: The store.
        gateway: The model gateway (embeddings). Without one, only ``bm25`` searches and
            read-only calls work.
        index: The index's name.
        reranker: Re-scores the best hits of every search (:class:`Reranker`).
        vector_backend: On PostgreSQL, ``auto`` uses pgvector where the server has it
            and says once that it falls back to the exact in-process index where it
            does not; ``pgvector`` makes its absence an error; ``in-process`` never uses
            it (:mod:`sluice.knowledge.vector_pgvector`).

    Processes keep per-version vector matrices in memory; create one knowledge base per
    process and reuse it.
    """

    def __init__(
        self,
        store: Store,
        gateway: Gateway | None = None,
        *,
        index: str = DEFAULT_INDEX,
        reranker: Reranker | None = None,
        vector_backend: VectorBackend = "auto",
    ) -> None:
        self.store = store
        self.gateway = gateway
        self.index = index
        self.reranker = reranker
        self.keyword = keyword_index_for(store)
        self._vectors = VectorCache()
        self._filters = DocumentFilterCache()
        self._vector_backend = vector_backend
        self._pgvector: PgvectorIndex | None = None
        self._dense_note: str | None = None

    def _announce_vectors(self) -> None:
        """Choose once how dense search runs (pgvector or the in-process index), say so."""
        if self._dense_note is None:
            self._pgvector, self._dense_note = open_dense_backend(self.store, self._vector_backend)

    def _sync_dense(self, versions: Sequence[int]) -> None:
        self._announce_vectors()
        if self._pgvector is not None:
            for version in versions:
                self._pgvector.sync(version)

    # -- ingest ---------------------------------------------------------------------------
    def ingest(
        self,
        paths: Sequence[str | Path] | str | Path,
        *,
        actor: str,
        metadata: Mapping[str, MetadataValue] | None = None,
        root: str | Path | None = None,
        exclude: Sequence[str] = (),
        recursive: bool = True,
        prune: bool = True,
        options: ReaderOptions | None = None,
        progress: Progress | None = None,
    ) -> IngestReport:
        """Read files and folders into the index (see :mod:`sluice.knowledge.ingestion`).

        Args:
            paths: Files and folders.
            actor: Who ingests (audited).
            metadata: key=value metadata for every document (overrides the files').
            root: Make sources relative to this folder (portable ids).
            exclude: Glob patterns of files to leave out of folder walks.
            recursive: Walk sub-folders.
            prune: Delete stored documents no longer under the ingested paths.
            options: JSONL/CSV field names.
            progress: Told ``(phase, done, total)``.

        Raises:
            EncoderMismatchError: A maintained version was built with another encoder.
            KnowledgeError: No gateway to embed with.
        """
        gateway = self._need_gateway("ingest")
        self._announce_vectors()
        listed = [paths] if isinstance(paths, str | Path) else list(paths)
        path_list = [Path(p) for p in listed]
        base = Path(root).resolve() if root is not None else None
        batch = read_sources(
            path_list,
            metadata=metadata,
            recursive=recursive,
            root=base,
            exclude=exclude,
            options=options,
        )
        created = None
        with self.store.begin() as conn:
            ensure_index(conn, self.index)
        with self.store.read() as conn:
            has_versions = bool(list_versions(conn, self.index))
            held = fingerprints(conn, self.index)
        if not has_versions:
            created = self.build(actor=actor, activate=True, note="created by the first ingest").ref
        label = ingestion.root_label(base)
        scoped = ingestion.prunable(held, batch, path_list, base)
        plan = plan_changes({h.doc_id: h.fingerprint for h in held}, batch.documents)
        outcome = index_groups(
            self.store,
            gateway,
            self.keyword,
            index=self.index,
            documents=plan.to_write,
            versions=self._maintained,
            root=label,
            progress=progress,
        )
        written = {d.doc_id for d in outcome.documents}
        root_of = {h.doc_id: h.root for h in held}
        moved = [d.doc_id for d in plan.unchanged if root_of[d.doc_id] != label]
        removed: list[str] = []
        if prune:
            removed = [d for d in plan.removed if d in scoped]
        with self.store.read() as conn:
            maintained = [v.ref for v in self._maintained(conn)]
        report = IngestReport(
            index=self.index,
            new=ingestion.sources([d for d in plan.new if d.doc_id in written]),
            changed=ingestion.sources([d for d in plan.changed if d.doc_id in written]),
            unchanged=len(plan.unchanged),
            removed=tuple(removed),
            chunks=outcome.chunks,
            versions=tuple(maintained),
            failures=batch.failures + tuple(ingestion.failures_of(outcome.failures)),
            skipped=batch.skipped,
            created_version=created,
        )
        with self.store.begin() as conn:
            lock_index(conn, self.index, exclusive=True)
            # Unchanged documents read under another root now (the folder moved) belong
            # to this one: later ingests of this root may prune them.
            claim_documents(conn, self.index, moved, label)
            if removed:
                delete_documents(conn, self.index, removed, self.keyword)
                bump_documents(conn, self.index)
            ingestion.record_ingest(conn, actor, report)
        with self.store.read() as conn:
            to_sync = [v.id for v in self._maintained(conn)]
        self.keyword.maintain(self.store.engine, outcome.chunks)
        self._sync_dense(to_sync)
        return report

    def _maintained(self, conn: Connection) -> list[IndexVersion]:
        return [v for v in list_versions(conn, self.index) if v.status in ("active", "ready")]

    def stats(self) -> KnowledgeStats:
        """Documents, versions and the backends in use."""
        with self.store.read() as conn:
            all_versions = list_versions(conn, self.index)
            active = get_version(conn, self.index)
            return KnowledgeStats(
                index=self.index,
                documents=count_documents(conn, self.index),
                active=active,
                versions=tuple(all_versions),
                keyword_backend=self.keyword.name,
                vector_backend=self._dense_description(),
            )

    def _dense_description(self) -> str:
        self._announce_vectors()
        assert self._dense_note is not None
        return self._dense_note

    # -- search -----------------------------------------------------------------------------
    def search(
        self,
        query: str,
        *,
        k: int = 10,
        mode: RetrievalMode = "hybrid",
        filters: Sequence[Filter] = (),
        fusion: FusionConfig | None = None,
        version: int | None = None,
        tenant: str | None = None,
    ) -> SearchResult:
        """The ``k`` best chunks for ``query``, with scores and citations.

        Args:
            query: The question or keywords.
            k: How many hits.
            mode: ``hybrid`` (BM25 and vectors, fused), ``bm25`` or ``dense``.
            filters: Metadata conditions every hit's document meets.
            fusion: RRF constant, weights and candidate pool (default
                :class:`FusionConfig`).
            version: Search this version instead of the active one (evaluations). A
                retired version is searched only while it still holds every
                document's current form (retired versions are not maintained, and a
                citation must slice the document's current text).
            tenant: Whose budget pays for the query's embedding.

        Raises:
            IndexNotReadyError: Nothing ingested yet.
            IndexVersionError: ``version`` is retired and documents changed since it
                was active (activate it to bring it up to date).
            EncoderMismatchError: The gateway embeds with another encoder than the
                version's (dense and hybrid modes).
            KnowledgeError: Dense or hybrid mode without a gateway, an empty query,
                an unknown mode or ``k`` below 1.
        """
        if not query.strip():
            raise KnowledgeError(
                "the query is empty: there is nothing to search for",
                hint="pass the question or keywords to search for",
            )
        if mode not in ("bm25", "dense", "hybrid"):
            raise KnowledgeError(f"unknown search mode {mode!r}", hint="bm25, dense or hybrid")
        if k < 1:
            raise KnowledgeError(f"k must be at least 1, not {k}")
        started = time.perf_counter()
        fusion = fusion or FusionConfig()
        target = self.version(version)
        query_vector, record = None, None
        if mode != "bm25":
            self._announce_vectors()
        if mode != "bm25" and target.encoder is not None:
            embedded = self._need_gateway(f"search in {mode} mode").embed(
                target.embed_task, [query], tenant=tenant
            )
            record = embedded.records[0]
            if record.model_ref != target.encoder:
                raise EncoderMismatchError(
                    f"{target.ref} was built with {target.encoder}, but the gateway's "
                    f"{target.embed_task!r} route now embeds with {record.model_ref}",
                    hint="search with --mode bm25, or activate a version built with the "
                    "current encoder (`sluice kb build --activate`)",
                )
            query_vector = embedded.vectors[0]
        pool = fusion.pool(k)
        with self.store.read() as conn:
            current, generation = version_state(conn, target.id)
            if version is not None and current.status == "retired":
                self._refuse_if_behind(conn, current)
            allowed = self._filters.allowed(conn, self.index, filters)
            bm25: list[tuple[int, float]] = []
            dense: list[tuple[int, float]] = []
            if mode != "dense":
                terms = analyzer_named(current.analyzer).query_terms(query)
                bm25 = self.keyword.search(
                    conn,
                    current.id,
                    terms,
                    limit=pool,
                    stats=current.keyword_stats,
                    documents=allowed,
                )
            behind = False
            if query_vector is not None:
                pgvector = self._pgvector
                if pgvector is not None and current.dimensions is not None:
                    behind = not pgvector.is_current(conn, current.id, generation)
                if pgvector is not None and current.dimensions is not None and not behind:
                    dense = pgvector.search(
                        conn, current.id, current.dimensions, query_vector, pool,
                        documents=allowed,
                    )  # fmt: skip
                else:  # SQLite, no pgvector, or its copy is behind this snapshot
                    matrix = self._vectors.get(conn, current, generation)
                    dense = matrix.search(query_vector, pool, documents=allowed)
            bm25_at = {c: (i + 1, s) for i, (c, s) in enumerate(bm25)}
            dense_at = {c: (i + 1, s) for i, (c, s) in enumerate(dense)}
            if mode == "hybrid":
                ranked = fuse(
                    {c: r for c, (r, _) in bm25_at.items()},
                    {c: r for c, (r, _) in dense_at.items()},
                    fusion,
                )
            else:
                ranked = bm25 if mode == "bm25" else dense
            depth = max(k, self.reranker.depth) if self.reranker is not None else k
            hits = make_hits(
                conn,
                ranked[:depth],
                mode=mode,
                bm25=bm25_at,
                dense=dense_at,
                version_ref=current.ref,
            )
        if behind:
            self._sync_dense([current.id])  # written meanwhile: catch the copy up
        if self.reranker is not None and hits:
            hits = rerank(self.reranker, query, hits)
        return SearchResult(
            query=query,
            mode=mode,
            top_k=k,
            version=current,
            hits=tuple(hits[:k]),
            filters=tuple(filters),
            embedding=record,
            reranker=self.reranker.name if self.reranker is not None else None,
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def _refuse_if_behind(self, conn: Connection, version: IndexVersion) -> None:
        behind = len(pending_documents(conn, self.index, version.id))
        if behind:
            raise IndexVersionError(
                f"{version.ref} is retired and {behind} document(s) changed since it was "
                "last active: retired versions are not kept up to date, so its chunks and "
                "citations no longer match the documents",
                hint=f"activate it (`sluice kb activate {version.number}`: it catches up "
                "first), or search the active version",
            )

    def document_text(self, doc_id: str) -> str:
        """A stored document's normalized text (what citations' offsets refer to).

        Raises:
            KnowledgeError: No such document in the index.
        """
        with self.store.read() as conn:
            rows = document_rows(conn, self.index, doc_ids=[doc_id])
            if not rows:
                raise KnowledgeError(f"index {self.index!r} has no document {doc_id}")
            return load_documents(conn, [rows[0].pk])[0][1].text
