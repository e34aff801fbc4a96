"""What differs between the backends, and what must not: BM25 scores, the pgvector notice."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from kb_fixtures import ACTOR, knowledge_base, write_corpus

from sluice.config import Settings
from sluice.knowledge import ChunkingConfig
from sluice.knowledge.keyword_postgres import PostingsIndex
from sluice.knowledge.keyword_sqlite import Fts5Index

QUERIES = [
    "how long do refunds take",
    "lost parcel replacement express",
    "password reset link e-mail",
    "days",
]


@pytest.mark.postgres
def test_bm25_ranks_and_scores_agree_across_backends(
    sqlite_settings: Settings, postgres_settings: Settings, tmp_path: Path
) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    answers = []
    for settings in (sqlite_settings, postgres_settings):
        with knowledge_base(settings) as kb:
            kb.ingest([corpus], root=corpus, actor=ACTOR)
            answers.append(
                [
                    [(h.chunk_id, h.score) for h in kb.search(q, mode="bm25", k=20).hits]
                    for q in QUERIES
                ]
            )
            assert isinstance(
                kb.keyword, Fts5Index if settings is sqlite_settings else PostingsIndex
            )
    on_sqlite, on_postgres = answers
    for query, a, b in zip(QUERIES, on_sqlite, on_postgres, strict=True):
        assert [c for c, _ in a] == [c for c, _ in b], query
        assert [s for _, s in a] == pytest.approx([s for _, s in b], rel=1e-9), query
        assert a, query


@pytest.mark.postgres
def test_postgres_says_once_how_dense_search_runs(
    postgres_settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    with (
        caplog.at_level(logging.WARNING, logger="sluice.knowledge"),
        knowledge_base(postgres_settings) as kb,
    ):
        kb.ingest([corpus], root=corpus, actor=ACTOR)
        kb.search("refunds", mode="hybrid")
        kb.search("refunds", mode="dense")
        stats = kb.stats()
    notices = [r.getMessage() for r in caplog.records if "pgvector" in r.getMessage()]
    assert len(notices) == 1, notices
    # Both servers get the in-process index: one without pgvector says it falls back,
    # one with pgvector says Sluice does not use it yet.
    assert "fallback" in notices[0] or "does not use it yet" in notices[0], notices[0]
    assert "in-process index" in notices[0] and "docs/knowledge.md" in notices[0]
    assert stats.vector_backend == notices[0]


def test_sqlite_keyword_index_is_one_fts5_table_per_version(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    with knowledge_base(sqlite_settings) as kb:
        kb.ingest([corpus], root=corpus, actor=ACTOR)
        kb.build(actor=ACTOR, chunking=ChunkingConfig(max_tokens=40, overlap_tokens=0))
        with kb.store.read() as conn:
            tables = (
                conn.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE sql LIKE 'CREATE VIRTUAL TABLE%'"
                )
                .scalars()
                .all()
            )
    assert sorted(tables) == ["kb_fts_1", "kb_fts_2"]
