"""The keyword index on SQLite: one FTS5 table per index version, scored by ``bm25()``.

Why a table per version: FTS5 computes BM25's statistics (row count, average length,
document frequencies) over its whole table. Sharing one table between versions would let
a version being built change the scores of the live one; a table each keeps them apart,
and dropping a version is dropping its table.

The table stores the analyzed terms joined by spaces, with ``unicode61`` (diacritics
kept) as its tokenizer: the terms contain only letters and digits, so it splits them at
the spaces and nowhere else. ``document`` is kept unindexed beside them, for filters.

Example:
    >>> index = Fts5Index()
    >>> index.table(7)
    'kb_fts_7'
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import Connection, Engine, text

from sluice.knowledge.keyword_index import KeywordEntry, KeywordStats

__all__ = ["Fts5Index"]


class Fts5Index:
    """:class:`~sluice.knowledge.keyword_index.KeywordIndex` on SQLite FTS5 (module docs)."""

    name = "sqlite-fts5-bm25"

    @staticmethod
    def table(version: int) -> str:
        """The FTS5 table of a version (ids are integers: safe to format into SQL)."""
        return f"kb_fts_{int(version)}"

    def create_version(self, conn: Connection, version: int) -> None:  # noqa: D102
        conn.exec_driver_sql(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {self.table(version)} USING fts5("
            "terms, document UNINDEXED, tokenize = 'unicode61 remove_diacritics 0')"
        )

    def maintain(self, engine: Engine, written: int) -> None:  # noqa: D102
        return None  # FTS5 merges its segments as it goes

    def drop_version(self, conn: Connection, version: int) -> None:  # noqa: D102
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {self.table(version)}")

    def add(  # noqa: D102
        self, conn: Connection, version: int, entries: Sequence[KeywordEntry]
    ) -> None:
        if entries:
            conn.execute(
                text(
                    f"INSERT INTO {self.table(version)} (rowid, terms, document) "
                    "VALUES (:chunk, :terms, :document)"
                ),
                [
                    {"chunk": e.chunk, "terms": " ".join(e.terms), "document": e.document}
                    for e in entries
                ],
            )

    def remove(self, conn: Connection, version: int, chunks: Sequence[int]) -> None:  # noqa: D102
        if chunks:
            conn.execute(
                text(
                    f"DELETE FROM {self.table(version)} "
                    "WHERE rowid IN (SELECT value FROM json_each(:ids))"
                ),
                {"ids": json.dumps(list(chunks))},
            )

    def search(  # noqa: D102 - the protocol documents it
        self,
        conn: Connection,
        version: int,
        terms: Sequence[str],
        *,
        limit: int,
        stats: KeywordStats,
        documents: Sequence[int] | None = None,
    ) -> list[tuple[int, float]]:
        if not terms or limit < 1:
            return []
        table = self.table(version)
        # Each term is letters and digits only (the analyzer's guarantee); quoted anyway,
        # so that FTS5 never reads one as an operator (AND, OR, NEAR).
        match = " OR ".join(f'"{t}"' for t in terms)
        where = f"{table} MATCH :match"
        params: dict[str, object] = {"match": match, "limit": limit}
        if documents is not None:
            where += " AND document IN (SELECT value FROM json_each(:documents))"
            params["documents"] = json.dumps(list(documents))
        rows = conn.execute(
            text(
                f"SELECT rowid, bm25({table}) AS score FROM {table} WHERE {where} "
                "ORDER BY score, rowid LIMIT :limit"
            ),
            params,
        ).all()
        # bm25() is negated so that ascending order is best first.
        return [(int(row[0]), -float(row[1])) for row in rows]
