"""What differs between the backends and what must not: BM25 scores, pgvector, its fallback."""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from kb_fixtures import ACTOR, knowledge_base, write_corpus
from sqlalchemy import text

from helpers import make_settings
from sluice.config import Settings
from sluice.errors import KnowledgeError
from sluice.knowledge import ChunkingConfig, Filter, KnowledgeBase
from sluice.knowledge.keyword_postgres import VACUUM_AFTER_CHUNKS, PostingsIndex
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
    # The machine's server has no pgvector: one warning names the fallback.
    assert notices[0].startswith("PostgreSQL has no pgvector extension"), notices[0]
    assert "fallback" in notices[0] and "in-process index" in notices[0]
    assert "docs/knowledge.md" in notices[0]
    assert stats.vector_backend == notices[0]


@pytest.mark.postgres
def test_insisting_on_pgvector_where_the_server_lacks_it_is_an_error(
    postgres_settings: Settings, tmp_path: Path
) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    with (
        knowledge_base(postgres_settings, vector_backend="pgvector") as kb,
        pytest.raises(KnowledgeError, match="no pgvector extension"),
    ):
        kb.ingest([corpus], root=corpus, actor=ACTOR)


# -- PostgreSQL 16 with pgvector (tests/pgvector_server.py) ------------------------------
def _hnsw_scans(kb: KnowledgeBase, version_id: int) -> int:
    with kb.store.read() as conn:
        return int(
            conn.execute(
                text("SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = :name"),
                {"name": f"ix_kb_pgvectors_hnsw_{version_id}"},
            ).scalar_one()
        )


@pytest.mark.pgvector
def test_pgvector_answers_dense_search_through_its_hnsw_index(
    pgvector_settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    with (
        caplog.at_level(logging.INFO, logger="sluice.knowledge"),
        knowledge_base(pgvector_settings) as kb,
    ):
        kb.ingest([corpus], root=corpus, actor=ACTOR)
        stats = kb.stats()
        version = kb.version()
        with kb.store.read() as conn:
            copied = conn.execute(text("SELECT count(*) FROM kb_pgvectors")).scalar_one()
        before = _hnsw_scans(kb, version.id)
        # Statistics are written asynchronously: wait until the scan counts.
        result = kb.search("how long until my refund arrives", mode="dense", k=5)
        for _ in range(50):
            if _hnsw_scans(kb, version.id) > before:
                break
            time.sleep(0.1)
        after = _hnsw_scans(kb, version.id)
    assert stats.vector_backend.startswith("pgvector 0.6"), stats.vector_backend
    assert [r.getMessage() for r in caplog.records if "pgvector" in r.getMessage()] == [
        stats.vector_backend
    ]
    assert copied == version.chunks > 0
    assert after > before, "the dense search did not use the version's HNSW index"
    assert "refund" in result.hits[0].text.lower()


@pytest.mark.pgvector
def test_pgvector_ranks_like_the_exact_in_process_index(
    pgvector_settings: Settings, tmp_path: Path
) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    answers = []
    filters = [Filter.eq("product", "billing")]
    for backend in ("pgvector", "in-process"):
        with knowledge_base(pgvector_settings, vector_backend=backend) as kb:
            if backend == "pgvector":
                kb.ingest([corpus], root=corpus, actor=ACTOR)
            answers.append(
                [
                    [(h.chunk_id, h.score) for h in kb.search(q, mode="dense", k=8).hits]
                    for q in QUERIES
                ]
                + [
                    [
                        (h.chunk_id, h.score)
                        for h in kb.search(q, mode="dense", k=8, filters=filters).hits
                    ]
                    for q in QUERIES
                ]
            )
    in_pg, in_process = answers
    for a, b in zip(in_pg, in_process, strict=True):
        assert [c for c, _ in a] == [c for c, _ in b]
        assert [s for _, s in a] == pytest.approx([s for _, s in b], abs=1e-5)
    assert all(in_pg) and any(len(a) < 8 for a in in_pg[len(QUERIES) :])


@pytest.mark.pgvector
def test_a_copy_behind_the_snapshot_is_never_searched(
    pgvector_settings: Settings, tmp_path: Path
) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    with knowledge_base(pgvector_settings) as reader:
        reader.ingest([corpus], root=corpus, actor=ACTOR)
        # Another process without pgvector writes a document: the copy falls behind.
        with knowledge_base(pgvector_settings, vector_backend="in-process") as writer:
            extra = tmp_path / "extra"
            extra.mkdir()
            (extra / "zebra.md").write_text(
                "# Zebra crossings\n\nOur couriers wait at zebra crossings for pedestrians."
            )
            writer.ingest([extra], root=extra, actor=ACTOR)
        with reader.store.read() as conn:
            behind = conn.execute(
                text("SELECT count(*) FROM kb_pgvectors WHERE chunk IN (SELECT id FROM kb_chunks)")
            ).scalar_one()
        hits = reader.search("zebra crossings pedestrians", mode="dense", k=3).hits
        with reader.store.read() as conn:
            caught_up = conn.execute(text("SELECT count(*) FROM kb_pgvectors")).scalar_one()
        version = reader.version()
    assert hits[0].citation.source == "zebra.md"
    assert behind < version.chunks == caught_up


@pytest.mark.pgvector
def test_a_role_that_cannot_enable_pgvector_falls_back_and_says_why(
    pgvector_url: str, tmp_path: Path, model_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    role = f"plain_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pgvector_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN CREATEDB")
    base = pgvector_url.rsplit("/", 1)[0].replace("postgres@", f"{role}@")
    database = f"sluice_r_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as owner:
        owner.execute(f'CREATE DATABASE "{database}"')
    try:
        settings = make_settings(tmp_path / "home", f"{base}/{database}", model_cache)
        corpus = write_corpus(tmp_path / "corpus")
        with (
            caplog.at_level(logging.WARNING, logger="sluice.knowledge"),
            knowledge_base(settings) as kb,
        ):
            kb.ingest([corpus], root=corpus, actor=ACTOR)
            hits = kb.search("refund timing", mode="dense", k=3).hits
    finally:
        with psycopg.connect(pgvector_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            admin.execute(f"DROP ROLE {role}")
    notices = [r.getMessage() for r in caplog.records if "pgvector" in r.getMessage()]
    assert len(notices) == 1 and "could not be enabled" in notices[0], notices
    assert "permission denied" in notices[0] and "fallback" in notices[0]
    assert hits


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


@pytest.mark.postgres
def test_a_bulk_write_vacuums_the_postings_and_a_small_one_does_not(
    postgres_settings: Settings, tmp_path: Path
) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    with knowledge_base(postgres_settings) as kb:
        kb.ingest([corpus], root=corpus, actor=ACTOR)  # a few chunks: under the threshold

        def last_vacuum() -> object:
            with kb.store.read() as conn:
                return conn.execute(
                    text("SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = 'kb_terms'")
                ).scalar_one()

        small = last_vacuum()
        assert isinstance(kb.keyword, PostingsIndex)
        kb.keyword.maintain(kb.store.engine, VACUUM_AFTER_CHUNKS)
        for _ in range(50):  # statistics are written asynchronously
            if last_vacuum() is not None:
                break
            time.sleep(0.1)
        bulk = last_vacuum()
    assert small is None and bulk is not None
