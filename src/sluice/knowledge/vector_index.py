"""The vector index: vectors stored in the database, searched exactly in process memory.

The store is the source of truth: every chunk's vector is a float32 row of
``kb_vectors``, on SQLite and PostgreSQL alike. Each process keeps, per index version it
has searched, the version's vectors as one matrix, and answers a query with an exact
inner product over it (vectors are L2-normalized, so that is cosine similarity).

Why exact search in numpy (measured on this machine, 384 dimensions, one query at a
time; docs/knowledge.md has the table): 0.6 ms at 10k chunks and ~15 ms at 100k, with
recall 1.0 and filters applied exactly (a masked row cannot be returned, whatever the
filter's selectivity). ``sqlite-vec`` is brute force too (84 ms at 100k) and cannot be
loaded by this Python's ``sqlite3``; an HNSW graph (hnswlib) answers in 0.15 ms but is
approximate, compiles on install, filters poorly and must be rebuilt or persisted per
version. Above a few hundred thousand chunks per version an ANN index becomes worth it;
:class:`VectorMatrix` is the one place to plug one in.

The product is computed with ``numpy.einsum``, which does not use BLAS: on two cores
BLAS's threads cost more to wake than a single query's product takes (6-8 ms instead of
0.3 ms at 10k), and they would compete with the encoder's processes.

Staying current: every change to a version's chunks bumps its ``generation``. A search
passes the generation it read; when it differs from the matrix's, the matrix is brought
up to date by chunk id (ids are never reused): rows whose chunk is gone are dropped,
and only the vectors of new chunks are read.

Memory: a process keeps the active version's matrix and those of at most
:data:`OTHER_VERSIONS` other versions (the least recently searched go first). When a
search finds another version active than before, the previous one (retired by that
switch) is dropped at once; so is a version this process retires or switches away from.

PostgreSQL: where the server has pgvector, :mod:`sluice.knowledge.vector_pgvector`
answers dense searches inside the database instead; where it does not (or it cannot be
enabled), this index serves there too, over the same ``kb_vectors`` rows, and the
knowledge base says so once in a warning.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, select

from sluice.knowledge.tables import kb_vector_rows

if TYPE_CHECKING:
    from sluice.knowledge.versions import IndexVersion

__all__ = ["OTHER_VERSIONS", "VectorCache", "VectorMatrix"]

Floats = npt.NDArray[np.float32]
Ids = npt.NDArray[np.int64]
_FETCH = 5_000  # chunk ids per query when reading new vectors

#: Matrices kept besides the active version's (versions being evaluated or built).
OTHER_VERSIONS = 2


@dataclass(frozen=True)
class VectorMatrix:
    """One version's vectors in memory.

    Attributes:
        chunks: Chunk row ids, ascending.
        documents: Each row's document row id.
        vectors: ``(len(chunks), dimensions)`` float32, L2-normalized rows.
        generation: The version's generation these rows reflect.
    """

    chunks: Ids
    documents: Ids
    vectors: Floats
    generation: int

    @classmethod
    def empty(cls, generation: int = -1) -> VectorMatrix:
        """No rows (dimensions unknown yet)."""
        return cls(
            np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, 0), np.float32), generation
        )

    def __len__(self) -> int:
        return len(self.chunks)

    def search(
        self, query: Floats, limit: int, *, documents: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """The ``limit`` nearest chunks by inner product: ``[(chunk, score)]``, best first.

        ``documents`` keeps only those documents' chunks (None: all). Ties are broken by
        chunk id.
        """
        if not len(self) or limit < 1:
            return []
        rows: npt.NDArray[np.intp] | None = None
        if documents is not None:
            rows = np.flatnonzero(np.isin(self.documents, np.asarray(documents, np.int64)))
            if not len(rows):
                return []
        matrix = self.vectors if rows is None else self.vectors[rows]
        scores = np.einsum("ij,j->i", matrix, np.asarray(query, np.float32).ravel())
        if limit < len(scores):
            top = np.argpartition(-scores, limit - 1)[:limit]
        else:
            top = np.arange(len(scores))
        ids = self.chunks[top] if rows is None else self.chunks[rows[top]]
        order = np.lexsort((ids, -scores[top]))
        return [(int(ids[i]), float(scores[top][i])) for i in order]


class VectorCache:
    """Per-process matrices of the versions searched, kept current and bounded (module docs).

    Args:
        others: Matrices kept besides the active version's, least recently used dropped
            first.

    Example:
        >>> cache = VectorCache(others=1)
        >>> with store.read() as conn:  # doctest: +SKIP
        ...     version, generation = version_state(conn, version_id)
        ...     hits = cache.get(conn, version, generation).search(query, 10)
    """

    def __init__(self, others: int = OTHER_VERSIONS) -> None:
        self._matrices: OrderedDict[int, VectorMatrix] = OrderedDict()
        self._others = others
        # The active version last seen, and since when it is active: a search from an
        # older snapshot (an earlier activation) must not take the place back.
        self._active: tuple[int, datetime] | None = None
        self._lock = threading.Lock()

    @property
    def held(self) -> tuple[int, ...]:
        """Row ids of the versions whose matrices are in memory, least recently used first."""
        with self._lock:
            return tuple(self._matrices)

    def get(self, conn: Connection, version: IndexVersion, generation: int) -> VectorMatrix:
        """The version's matrix at ``generation``, loading what changed since last time.

        ``version`` is as read in the caller's snapshot: its status and activation time
        tell the cache which version is active.
        """
        with self._lock:
            self._note_active(version)
            current = self._matrices.get(version.id) or VectorMatrix.empty()
            if current.generation != generation:
                current = _refresh(conn, version.id, current, generation)
            self._matrices[version.id] = current
            self._matrices.move_to_end(version.id)
            self._evict()
            return current

    def forget(self, version: int | None = None) -> None:
        """Drop one version's matrix (a version retired), or all."""
        with self._lock:
            if version is None:
                self._matrices.clear()
                self._active = None
            else:
                self._matrices.pop(version, None)

    def _note_active(self, version: IndexVersion) -> None:
        if version.status != "active" or version.activated_at is None:
            return
        if self._active is not None and version.activated_at < self._active[1]:
            return
        if self._active is not None and self._active[0] != version.id:
            # Another version became active: the switch retired the previous one.
            self._matrices.pop(self._active[0], None)
        self._active = (version.id, version.activated_at)

    def _evict(self) -> None:
        active = self._active[0] if self._active is not None else None
        others = [v for v in self._matrices if v != active]
        for version in others[: max(0, len(others) - self._others)]:
            del self._matrices[version]


def _refresh(conn: Connection, version: int, old: VectorMatrix, generation: int) -> VectorMatrix:
    ids = np.fromiter(
        conn.execute(
            select(kb_vector_rows.c.chunk)
            .where(kb_vector_rows.c.version == version)
            .order_by(kb_vector_rows.c.chunk)
        ).scalars(),
        np.int64,
    )
    keep = np.isin(old.chunks, ids)
    new_ids = np.setdiff1d(ids, old.chunks, assume_unique=True)
    if not len(new_ids) and keep.all():
        return VectorMatrix(old.chunks, old.documents, old.vectors, generation)
    if not len(new_ids) and not keep.any():
        return VectorMatrix.empty(generation)
    if not len(new_ids):  # only removals: one boolean-indexed copy
        return VectorMatrix(old.chunks[keep], old.documents[keep], old.vectors[keep], generation)
    kept = int(keep.sum())
    dims = old.vectors.shape[1] if kept else 0
    chunks = np.empty(kept + len(new_ids), np.int64)
    documents = np.empty(kept + len(new_ids), np.int64)
    vectors: Floats | None = None
    if kept:
        # One pass into a preallocated matrix: copies of a large version cost more than
        # the reads (~0.4 s per 150 MB copy measured here).
        vectors = np.empty((kept + len(new_ids), dims), np.float32)
        np.compress(keep, old.vectors, axis=0, out=vectors[:kept])
        chunks[:kept] = old.chunks[keep]
        documents[:kept] = old.documents[keep]
    row = kept
    for i in range(0, len(new_ids), _FETCH):
        batch = [int(x) for x in new_ids[i : i + _FETCH]]
        for found in conn.execute(
            select(kb_vector_rows.c.chunk, kb_vector_rows.c.document, kb_vector_rows.c.vector)
            .where(kb_vector_rows.c.chunk.in_(batch))
            .order_by(kb_vector_rows.c.chunk)
        ):
            vector = np.frombuffer(found.vector, dtype="<f4")
            if vectors is None:
                dims = len(vector)
                vectors = np.empty((len(new_ids), dims), np.float32)
            vectors[row] = vector
            chunks[row] = found.chunk
            documents[row] = found.document
            row += 1
    assert vectors is not None
    chunks, documents, vectors = chunks[:row], documents[:row], vectors[:row]
    if row > 1 and not bool(np.all(chunks[1:] > chunks[:-1])):
        # New ids below kept ones (PostgreSQL commits out of sequence order): re-sort.
        order = np.argsort(chunks, kind="stable")
        chunks, documents, vectors = chunks[order], documents[order], vectors[order]
    return VectorMatrix(chunks, documents, np.ascontiguousarray(vectors), generation)
