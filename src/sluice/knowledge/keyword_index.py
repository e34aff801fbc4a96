"""The keyword index contract: BM25 over analyzed terms, one implementation per backend.

Implementations sit side by side: :class:`~sluice.knowledge.keyword_sqlite.Fts5Index`
(SQLite FTS5, one virtual table per index version) and
:class:`~sluice.knowledge.keyword_postgres.PostingsIndex` (PostgreSQL, a postings table
with BM25 computed in SQL). Both receive the terms of
:mod:`sluice.knowledge.analysis`, never raw text, and score with FTS5's BM25
(``k1 = 1.2``, ``b = 0.75``, ``idf = ln((N - n + 0.5) / (n + 0.5))`` floored at 1e-6), so
the same query ranks the same chunks with the same scores on both backends.

Every method runs inside the caller's transaction: a chunk and its keyword entry are
written, replaced and removed together.

Writing another backend: implement :class:`KeywordIndex`, then run the contract suite
(``tests/knowledge/test_contract.py``) against it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Connection, Engine

__all__ = ["BM25_B", "BM25_K1", "KeywordEntry", "KeywordIndex", "KeywordStats"]

#: BM25 parameters: SQLite FTS5's, which cannot be changed there.
BM25_K1 = 1.2
BM25_B = 0.75


@dataclass(frozen=True)
class KeywordEntry:
    """One chunk as the keyword index sees it.

    Attributes:
        chunk: The chunk's row id (``kb_chunks.id``).
        document: Its document's row id (``kb_documents.id``), for filters.
        terms: Its analyzed terms, in order.
    """

    chunk: int
    document: int
    terms: Sequence[str]

    def frequencies(self) -> Counter[str]:
        """How often each term occurs."""
        return Counter(self.terms)


@dataclass(frozen=True)
class KeywordStats:
    """A version's corpus statistics: BM25's ``N`` and the total length in terms."""

    chunks: int
    terms: int

    @property
    def average_length(self) -> float:
        """Average chunk length in terms (1.0 for an empty version, to avoid 0/0)."""
        return self.terms / self.chunks if self.chunks and self.terms else 1.0


class KeywordIndex(Protocol):
    """BM25 search over one index version's chunks (module docs)."""

    #: How ``sluice kb stats`` names the implementation.
    name: str

    def create_version(self, conn: Connection, version: int) -> None:
        """Make room for a new index version (a table, or nothing)."""
        ...

    def maintain(self, engine: Engine, written: int) -> None:
        """After a write of ``written`` chunks has committed: housekeeping (or nothing)."""
        ...

    def drop_version(self, conn: Connection, version: int) -> None:
        """Remove everything the version holds."""
        ...

    def add(self, conn: Connection, version: int, entries: Sequence[KeywordEntry]) -> None:
        """Index chunks (their ids are new to the version)."""
        ...

    def remove(self, conn: Connection, version: int, chunks: Sequence[int]) -> None:
        """Forget chunks."""
        ...

    def search(
        self,
        conn: Connection,
        version: int,
        terms: Sequence[str],
        *,
        limit: int,
        stats: KeywordStats,
        documents: Sequence[int] | None = None,
    ) -> list[tuple[int, float]]:
        """The best chunks for the distinct query ``terms``: ``[(chunk, score)]``.

        Best first; higher scores are better; ties broken by chunk id. ``documents``
        restricts the search to those documents' chunks (None: all).
        """
        ...
