"""Dense search inside PostgreSQL with pgvector, where the server has it.

The vectors' source of truth stays ``kb_vectors`` (float32 bytes, the same on every
backend). Where the server offers the ``vector`` extension, :class:`PgvectorIndex` keeps
a copy of each searched version's vectors in ``kb_pgvectors`` (a ``vector`` column,
rows deleted with their chunk by ``ON DELETE CASCADE``) under one HNSW index per version:
a partial index on ``embedding::vector(<dimensions>)`` with ``vector_ip_ops`` (vectors are
L2-normalized, so inner product is cosine), ``WHERE version = <id>``. Versions may have
different dimensions (another encoder); a cast per partial index is how pgvector indexes
a column of mixed dimensions.

Keeping the copy current: ``kb_pgvector_versions`` holds the version ``generation`` the
copy reflects. :meth:`PgvectorIndex.sync` (called after every ingest and build, and
before a search finds the copy behind) inserts the vectors of chunks the copy lacks, in
its own transaction, under an advisory lock per version. A search reads the copy's
generation in its own snapshot; if it differs from the version's (a write committed
between the sync and the search), the search is answered by the exact in-process index
instead, so a search never misses a chunk the keyword index sees.

Search: unfiltered queries walk the HNSW graph with ``hnsw.ef_search`` raised to the
candidate pool (at least 40, at most 1000); that is approximate, and
``python -m bench.retrieval --postgres URL`` reports its recall against exact search.
Filtered queries (metadata filters allow a list of documents) scan the allowed
documents' rows exactly (pgvector 0.6 cannot filter inside the graph walk without losing
results: HNSW returns at most ``ef_search`` rows before the filter).

Enabling: the first use runs ``CREATE EXTENSION IF NOT EXISTS vector``, which needs a
role allowed to create it (a superuser, or the database owner where the extension is
trusted). When that fails, or the server has no pgvector, the knowledge base says so in
one warning and uses the documented fallback: the exact in-process index
(:mod:`sluice.knowledge.vector_index`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from sluice.errors import KnowledgeError
from sluice.store import Store

__all__ = [
    "MAX_EF_SEARCH",
    "PgvectorIndex",
    "PgvectorStatus",
    "VectorBackend",
    "open_dense_backend",
    "pgvector_status",
]

log = logging.getLogger(__name__)

#: pgvector's upper bound for ``hnsw.ef_search``.
MAX_EF_SEARCH = 1000
_MIN_EF_SEARCH = 40  # pgvector's default
_BATCH = 1_000  # vectors per INSERT when syncing
_LOCK_CLASS = 0x6B62  # advisory lock namespace ("kb"): (class, version id)

_TABLES = """
CREATE TABLE IF NOT EXISTS kb_pgvectors (
    chunk INTEGER PRIMARY KEY REFERENCES kb_chunks (id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    embedding vector NOT NULL
);
CREATE TABLE IF NOT EXISTS kb_pgvector_versions (
    version INTEGER PRIMARY KEY REFERENCES kb_index_versions (id) ON DELETE CASCADE,
    generation INTEGER NOT NULL,
    dimensions INTEGER NOT NULL
)
"""


@dataclass(frozen=True)
class PgvectorStatus:
    """Whether dense search can run in PostgreSQL.

    Attributes:
        state: ``enabled`` (the extension is installed and Sluice's tables exist),
            ``available`` (the server offers it; not installed yet), ``missing``.
        version: The extension's version when installed or offered.
    """

    state: Literal["enabled", "available", "missing"]
    version: str | None


def pgvector_status(conn: Connection) -> PgvectorStatus:
    """What the server offers (read-only: installs nothing)."""
    installed = conn.execute(
        text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    ).scalar()
    if installed is not None and _tables_exist(conn):
        return PgvectorStatus("enabled", str(installed))
    offered = conn.execute(
        text("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
    ).scalar()
    if offered is None:
        return PgvectorStatus("missing", None)
    return PgvectorStatus("available", str(installed or offered))


def _tables_exist(conn: Connection) -> bool:
    return bool(
        conn.execute(
            text(
                "SELECT to_regclass('kb_pgvectors') IS NOT NULL "
                "AND to_regclass('kb_pgvector_versions') IS NOT NULL"
            )
        ).scalar()
    )


class PgvectorIndex:
    """Per-version HNSW search over a pgvector copy of ``kb_vectors`` (module docs).

    Args:
        store: A PostgreSQL store.

    Example:
        >>> index = PgvectorIndex(store)  # doctest: +SKIP
        >>> index.enable()  # doctest: +SKIP
        '0.6.2'
        >>> index.sync(version_id)  # doctest: +SKIP
        >>> with store.read() as conn:  # doctest: +SKIP
        ...     hits = index.search(conn, version_id, generation, 384, query, 10)
    """

    name = "pgvector-hnsw"

    def __init__(self, store: Store) -> None:
        self.store = store

    def enable(self) -> str:
        """Install the extension if needed and create Sluice's tables; its version.

        Raises:
            sqlalchemy.exc.DBAPIError: The role may not create the extension (the caller
                falls back and says so).
        """
        with self.store.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:c, 0)"), {"c": _LOCK_CLASS})
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
            for statement in _TABLES.split(";"):
                conn.execute(text(statement))
            return str(
                conn.execute(
                    text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
                ).scalar_one()
            )

    def sync(self, version: int) -> int:
        """Bring the version's copy up to its current generation; vectors inserted.

        Creates the version's HNSW index on first use (its dimensions are known once the
        version holds a vector). Runs in its own transaction.
        """
        with self.store.begin() as conn:
            conn.execute(
                text("SELECT pg_advisory_xact_lock(:c, :v)"), {"c": _LOCK_CLASS, "v": version}
            )
            row = conn.execute(
                text("SELECT generation, dimensions FROM kb_index_versions WHERE id = :v"),
                {"v": version},
            ).one_or_none()
            if row is None or row.dimensions is None:
                return 0  # no such version, or nothing embedded yet
            generation, dimensions = int(row.generation), int(row.dimensions)
            synced = conn.execute(
                text("SELECT generation FROM kb_pgvector_versions WHERE version = :v"),
                {"v": version},
            ).scalar()
            if synced == generation:
                return 0
            self._ensure_hnsw(conn, version, dimensions)
            inserted = 0
            missing = conn.execute(
                text(
                    "SELECT v.chunk, v.vector FROM kb_vectors v "
                    "LEFT JOIN kb_pgvectors p ON p.chunk = v.chunk "
                    "WHERE v.version = :v AND p.chunk IS NULL ORDER BY v.chunk"
                ),
                {"v": version},
            ).all()
            for start in range(0, len(missing), _BATCH):
                rows = [
                    {"chunk": int(r.chunk), "version": version, "embedding": _literal(r.vector)}
                    for r in missing[start : start + _BATCH]
                ]
                conn.execute(
                    text(
                        "INSERT INTO kb_pgvectors (chunk, version, embedding) "
                        "VALUES (:chunk, :version, CAST(:embedding AS vector)) "
                        "ON CONFLICT (chunk) DO NOTHING"
                    ),
                    rows,
                )
                inserted += len(rows)
            conn.execute(
                text(
                    "INSERT INTO kb_pgvector_versions (version, generation, dimensions) "
                    "VALUES (:v, :g, :d) ON CONFLICT (version) "
                    "DO UPDATE SET generation = EXCLUDED.generation, "
                    "dimensions = EXCLUDED.dimensions"
                ),
                {"v": version, "g": generation, "d": dimensions},
            )
            return inserted

    def is_current(self, conn: Connection, version: int, generation: int) -> bool:
        """Whether the copy, as the caller's snapshot sees it, reflects ``generation``."""
        synced = conn.execute(
            text("SELECT generation FROM kb_pgvector_versions WHERE version = :v"),
            {"v": version},
        ).scalar()
        return synced == generation

    def search(
        self,
        conn: Connection,
        version: int,
        dimensions: int,
        query: npt.NDArray[np.float32],
        limit: int,
        *,
        documents: Sequence[int] | None = None,
    ) -> list[tuple[int, float]]:
        """The ``limit`` best chunks by inner product: ``[(chunk, score)]``, best first.

        Unfiltered: the version's HNSW index (approximate). ``documents``: an exact scan
        of those documents' chunks. Ties are broken by chunk id.
        """
        if limit < 1 or (documents is not None and not documents):
            return []
        # The version id and dimensions are integers from the store, written into the
        # statement so the planner can match the version's partial expression index.
        version, dimensions = int(version), int(dimensions)
        literal = _literal(np.asarray(query, np.float32).tobytes())
        if documents is None:
            ef = min(MAX_EF_SEARCH, max(_MIN_EF_SEARCH, limit))
            conn.execute(text(f"SET LOCAL hnsw.ef_search = {ef}"))
            distance = f"(embedding::vector({dimensions})) <#> CAST(:q AS vector({dimensions}))"
            sql = (
                f"SELECT chunk, {distance} AS d FROM kb_pgvectors "
                f"WHERE version = {version} ORDER BY d LIMIT :limit"
            )
            params: dict[str, object] = {"q": literal, "limit": limit}
        else:
            sql = (
                "SELECT p.chunk, p.embedding <#> CAST(:q AS vector) AS d "
                "FROM kb_pgvectors p JOIN kb_chunks c ON c.id = p.chunk "
                f"WHERE p.version = {version} AND c.document = ANY(:documents) "
                "ORDER BY d, p.chunk LIMIT :limit"
            )
            params = {"q": literal, "limit": limit, "documents": list(documents)}
        found = [(int(r[0]), -float(r[1])) for r in conn.execute(text(sql), params)]
        found.sort(key=lambda hit: (-hit[1], hit[0]))
        return found

    def _ensure_hnsw(self, conn: Connection, version: int, dimensions: int) -> None:
        name = f"ix_kb_pgvectors_hnsw_{int(version)}"
        conn.execute(
            text(
                f"CREATE INDEX IF NOT EXISTS {name} ON kb_pgvectors USING hnsw "
                f"((embedding::vector({int(dimensions)})) vector_ip_ops) "
                f"WHERE version = {int(version)}"
            )
        )


def _literal(vector: bytes) -> str:
    """The text form pgvector reads for little-endian float32 bytes (exact: repr of each float)."""
    values = np.frombuffer(vector, dtype="<f4").tolist()
    return "[" + ",".join(repr(v) for v in values) + "]"


VectorBackend = Literal["auto", "pgvector", "in-process"]
_FALLBACK = (
    "dense search uses the fallback, the exact in-process index over the vectors stored "
    "in kb_vectors - see docs/knowledge.md, 'PostgreSQL and pgvector'"
)
_ANNOUNCED: set[str] = set()


def open_dense_backend(
    store: Store, prefer: VectorBackend = "auto"
) -> tuple[PgvectorIndex | None, str]:
    """Choose how dense search runs on this store, and say so once per database.

    Args:
        store: The store.
        prefer: ``auto`` (pgvector where the server has it), ``pgvector`` (the same, but
            a server without it is an error) or ``in-process`` (never pgvector).

    Returns:
        The pgvector index (None: the in-process index serves) and a one-line
        description for ``sluice kb stats``.

    Raises:
        KnowledgeError: ``prefer="pgvector"`` and the server cannot give it.
    """
    if store.dialect != "postgresql":
        return None, "exact in-process index over float32 vectors in kb_vectors (SQLite)"
    if prefer == "in-process":
        return None, (
            "exact in-process index over the vectors in kb_vectors (pgvector not used: "
            "vector_backend='in-process')"
        )
    with store.read() as conn:
        status = pgvector_status(conn)
    index: PgvectorIndex | None = None
    if status.state == "missing":
        message = f"PostgreSQL has no pgvector extension: {_FALLBACK}"
    else:
        index = PgvectorIndex(store)
        try:
            version = index.enable()
        except DBAPIError as exc:
            index = None
            why = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
            message = (
                f"PostgreSQL offers pgvector {status.version}, but it could not be enabled "
                f"({why}; a superuser can run CREATE EXTENSION vector): {_FALLBACK}"
            )
        else:
            message = (
                f"pgvector {version}: an HNSW index per index version (inner product); "
                "filtered searches scan the allowed documents exactly"
            )
    if index is None and prefer == "pgvector":
        raise KnowledgeError(message, hint="use vector_backend='auto' to accept the fallback")
    key = str(store.engine.url)
    if key not in _ANNOUNCED:
        _ANNOUNCED.add(key)
        (log.info if index is not None else log.warning)(message)
    return index, message
