"""The knowledge base's contract, run against SQLite and PostgreSQL alike.

Every test here runs once per store backend: SQLite, the machine's PostgreSQL (no
pgvector: the in-process fallback) and PostgreSQL 16 with pgvector (HNSW in the
database), with the real gateway and encoder: ingest is idempotent, a changed document
replaces its chunks, a vanished one goes, a broken one stays, filters mean the same on
every backend, and every citation's offsets slice the document's text to the chunk's
text.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kb_fixtures import ACTOR, knowledge_base, unlistable, write_corpus
from sqlalchemy import func, select

from helpers import postgres_database
from pgvector_server import fresh_database
from sluice.config import Settings
from sluice.errors import IndexNotReadyError, KnowledgeError
from sluice.governance import iter_entries
from sluice.knowledge import Filter, FusionConfig, KnowledgeBase, parse_filter, read_sources
from sluice.knowledge.tables import kb_chunks, kb_index_versions


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("pgvector", marks=pytest.mark.pgvector),
    ]
)
def backend(request: pytest.FixtureRequest) -> str:
    """Overrides the suite-wide fixture: a third backend, PostgreSQL with pgvector."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> Iterator[str | None]:
    if backend == "pgvector":
        with fresh_database(request.getfixturevalue("pgvector_url")) as url:
            yield url
    elif backend == "postgres":
        yield from postgres_database()
    else:
        yield None


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "corpus")


@pytest.fixture
def kb(settings: Settings) -> Any:
    with knowledge_base(settings) as kb:
        yield kb


@pytest.fixture
def ingested(kb: KnowledgeBase, corpus: Path) -> KnowledgeBase:
    kb.ingest([corpus], root=corpus, actor=ACTOR)
    return kb


def _chunk_count(kb: KnowledgeBase, number: int) -> tuple[int, int]:
    """(chunks stored, chunks the version's statistics count) of a version."""
    with kb.store.read() as conn:
        version = conn.execute(
            select(kb_index_versions).where(kb_index_versions.c.number == number)
        ).one()
        stored = conn.execute(
            select(func.count()).select_from(kb_chunks).where(kb_chunks.c.version == version.id)
        ).scalar_one()
    return int(stored), int(version.chunks)


def audited(kb: KnowledgeBase) -> list[str]:
    """The knowledge plane's audit actions, in order."""
    with kb.store.read() as conn:
        return [e.action for e in iter_entries(conn) if e.action.startswith("knowledge.")]


def test_nothing_ingested_means_not_ready(kb: KnowledgeBase) -> None:
    with pytest.raises(IndexNotReadyError, match="sluice kb ingest"):
        kb.search("refunds")


def test_first_ingest_creates_and_activates_a_version_and_reports_bad_files(
    kb: KnowledgeBase, corpus: Path
) -> None:
    report = kb.ingest([corpus], root=corpus, actor=ACTOR)
    assert report.created_version == "default@v1"
    assert sorted(set(report.new)) == [
        "delivery.md",
        "faq.csv",
        "notes.txt",
        "passwords.md",
        "refunds.md",
    ]
    assert len(report.new) == 7  # three articles, three FAQ rows, one text file
    assert [(f.path.name, f.code) for f in report.failures] == [("broken.pdf", "corrupt")]
    assert report.chunks > 7 and report.versions == ("default@v1",)
    assert _chunk_count(kb, 1) == (report.chunks, report.chunks)
    assert kb.version().status == "active"


def test_reingesting_unchanged_content_does_nothing(ingested: KnowledgeBase, corpus: Path) -> None:
    before = _chunk_count(ingested, 1)
    report = ingested.ingest([corpus], root=corpus, actor=ACTOR)
    assert (report.new, report.changed, report.removed, report.chunks) == ((), (), (), 0)
    assert report.unchanged == 7
    assert _chunk_count(ingested, 1) == before
    actions = audited(ingested)
    assert actions.count("knowledge.ingested") == 2
    assert actions[:2] == ["knowledge.version_created", "knowledge.version_activated"]


def test_a_changed_document_replaces_its_chunks(ingested: KnowledgeBase, corpus: Path) -> None:
    assert ingested.search("banks", mode="bm25").hits
    text = (corpus / "refunds.md").read_text()
    (corpus / "refunds.md").write_text(text.replace("Banks then take", "Card issuers then take"))
    report = ingested.ingest([corpus], root=corpus, actor=ACTOR)
    assert report.changed == ("refunds.md",) and report.new == ()
    assert not ingested.search("banks", mode="bm25").hits
    query = "card issuers take 5 to 10 business days to show the money on the statement"
    for mode in ("bm25", "dense", "hybrid"):
        hits = ingested.search(query, mode=mode, k=20).hits  # type: ignore[arg-type]
        assert "Card issuers" in hits[0].text, mode
        assert not any("Banks then" in h.text for h in hits), mode
    stored, counted = _chunk_count(ingested, 1)
    assert stored == counted


def test_relabelling_is_a_change_even_when_the_bytes_are_not(
    ingested: KnowledgeBase, corpus: Path
) -> None:
    report = ingested.ingest(
        [corpus / "notes.txt"], root=corpus, actor=ACTOR, metadata={"team": "depot"}
    )
    assert report.changed == ("notes.txt",)
    hits = ingested.search("zebra", mode="bm25", filters=[Filter.eq("team", "depot")]).hits
    assert [h.citation.source for h in hits] == ["notes.txt"]


def test_vanished_files_go_and_broken_ones_stay(ingested: KnowledgeBase, corpus: Path) -> None:
    (corpus / "delivery.md").unlink()
    (corpus / "passwords.md").write_bytes(b"\xff\xfe not utf-8 \xff")
    report = ingested.ingest([corpus], root=corpus, actor=ACTOR)
    assert len(report.removed) == 1
    assert {(f.path.name, f.code) for f in report.failures} == {
        ("broken.pdf", "corrupt"),
        ("passwords.md", "not_utf8"),
    }
    assert not ingested.search("parcel", mode="bm25").hits
    # The file that could not be read keeps its last good version.
    assert ingested.search("reset link", mode="bm25").hits[0].citation.source == "passwords.md"
    assert _chunk_count(ingested, 1)[0] == _chunk_count(ingested, 1)[1]


def test_ingesting_one_folder_does_not_prune_another(
    kb: KnowledgeBase, corpus: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "hours.md").write_text("# Opening hours\n\nThe help desk opens at 8 am.")
    kb.ingest([corpus], actor=ACTOR)
    report = kb.ingest([other], actor=ACTOR)
    assert report.removed == ()
    assert kb.search("zebra crossing", mode="bm25").hits
    assert kb.search("help desk", mode="bm25").hits


def test_ingesting_a_root_folder_prunes_only_what_was_read_under_that_root(
    kb: KnowledgeBase, corpus: Path, tmp_path: Path
) -> None:
    absolute = tmp_path / "absolute"
    absolute.mkdir()
    (absolute / "hours.md").write_text("# Opening hours\n\nThe help desk opens at 8 am.")
    other_root = tmp_path / "other-root"
    other_root.mkdir()
    (other_root / "returns.md").write_text("# Returns\n\nPrint the label and drop the box off.")
    kb.ingest([absolute], actor=ACTOR)  # file:// sources
    kb.ingest([other_root], root=other_root, actor=ACTOR)  # 'returns.md' under another root
    kb.ingest([corpus], root=corpus, actor=ACTOR)  # scope: everything under this root
    (corpus / "notes.txt").unlink()
    report = kb.ingest([corpus], root=corpus, actor=ACTOR)
    assert len(report.removed) == 1  # notes.txt, read under this root, is gone
    assert not kb.search("zebra crossing", mode="bm25").hits
    assert kb.search("help desk", mode="bm25").hits[0].citation.source.startswith("file://")
    assert kb.search("label box", mode="bm25").hits[0].citation.source == "returns.md"
    # The same holds for a file of the root, and for an ingest without a root.
    assert kb.ingest([corpus / "refunds.md"], root=corpus, actor=ACTOR).removed == ()
    assert kb.ingest([absolute], actor=ACTOR).removed == ()
    assert kb.search("label box", mode="bm25").hits


def test_a_moved_folder_prunes_under_its_new_root(
    ingested: KnowledgeBase, corpus: Path, tmp_path: Path
) -> None:
    moved = Path(shutil.copytree(corpus, tmp_path / "moved"))
    again = ingested.ingest([moved], root=moved, actor=ACTOR)
    assert (again.new, again.changed, again.removed, again.unchanged) == ((), (), (), 7)
    (moved / "delivery.md").unlink()
    report = ingested.ingest([moved], root=moved, actor=ACTOR)
    assert len(report.removed) == 1
    assert not ingested.search("parcel", mode="bm25").hits


def test_a_folder_that_cannot_be_listed_keeps_its_documents(
    kb: KnowledgeBase, corpus: Path
) -> None:
    private = corpus / "private"
    private.mkdir()
    (private / "salaries.md").write_text("# Salaries\n\nPaydays fall on the 25th.")
    kb.ingest([corpus], root=corpus, actor=ACTOR)
    with unlistable(private):
        report = kb.ingest([corpus], root=corpus, actor=ACTOR)
    assert report.removed == ()
    assert ("unreadable_folder", private) in {(f.code, f.path) for f in report.failures}
    assert kb.search("paydays", mode="bm25").hits[0].citation.source == "private/salaries.md"
    with unlistable(corpus):  # the ingested folder itself
        report = kb.ingest([corpus], root=corpus, actor=ACTOR)
    assert report.removed == () and report.failures[0].code == "unreadable_folder"
    assert kb.search("zebra crossing", mode="bm25").hits


def test_filters_equality_in_tags_and_date_ranges(ingested: KnowledgeBase) -> None:
    def sources(*filters: str) -> set[str]:
        found = ingested.search(
            "days", mode="hybrid", k=50, filters=[parse_filter(f) for f in filters]
        )
        return {h.citation.source for h in found.hits}

    assert sources("product=billing") == {"refunds.md", "faq.csv"}
    assert sources("product=billing,accounts") == {"refunds.md", "faq.csv", "passwords.md"}
    assert sources("tags=parcel") == {"delivery.md"}
    assert sources("updated>=2026-01-01") == {"refunds.md", "passwords.md"}
    assert sources("updated>=2026-01-01", "updated<2026-02-01") == {"refunds.md"}
    assert sources("format=csv_faq") == {"faq.csv"}
    assert sources("product=nothing") == set()
    for hit in ingested.search("days", k=50, filters=[Filter.eq("product", "billing")]).hits:
        assert hit.metadata["product"] == "billing"


def test_citations_point_at_real_text(ingested: KnowledgeBase, corpus: Path) -> None:
    originals = {d.doc_id: d.text for d in read_sources(corpus, root=corpus).documents}
    for mode in ("bm25", "dense", "hybrid"):
        result = ingested.search("how long until my money is back", mode=mode, k=20)  # type: ignore[arg-type]
        assert result.hits, mode
        for hit in result.hits:
            c = hit.citation
            assert originals[c.doc_id][c.start : c.end] == hit.text
            assert ingested.document_text(c.doc_id)[c.start : c.end] == hit.text
            assert c.index_version == result.version.ref == "default@v1"
        assert [h.rank for h in result.hits] == list(range(1, len(result.hits) + 1))
    refunds = ingested.search("gift card balance", mode="bm25", k=1).hits[0]
    assert refunds.citation.heading_path == ("Refunds", "Gift cards")
    assert refunds.citation.title == "Refunds"


def test_each_mode_reports_its_scores(ingested: KnowledgeBase) -> None:
    bm25 = ingested.search("lost parcel replacement", mode="bm25", k=3)
    assert all(h.scores.bm25 is not None and h.scores.dense is None for h in bm25.hits)
    assert bm25.embedding is None
    assert [h.score for h in bm25.hits] == sorted((h.score for h in bm25.hits), reverse=True)
    dense = ingested.search("lost parcel replacement", mode="dense", k=3)
    assert all(h.scores.dense is not None and h.scores.bm25 is None for h in dense.hits)
    assert dense.embedding is not None and dense.embedding.model_ref == dense.version.encoder
    fusion = FusionConfig(k=60, bm25_weight=2.0, dense_weight=0.5)
    hybrid = ingested.search("lost parcel replacement", mode="hybrid", k=5, fusion=fusion)
    for hit in hybrid.hits:
        s = hit.scores
        expected = (2.0 / (60 + s.bm25_rank) if s.bm25_rank else 0.0) + (
            0.5 / (60 + s.dense_rank) if s.dense_rank else 0.0
        )
        assert s.fused == pytest.approx(expected) == pytest.approx(hit.score)
    assert hybrid.hits[0].citation.source == "delivery.md"


def test_a_query_of_stop_words_finds_nothing_by_keywords(ingested: KnowledgeBase) -> None:
    assert ingested.search("the and of", mode="bm25").hits == ()
    assert ingested.search("the and of", mode="dense").hits


def test_bad_arguments_are_knowledge_errors(ingested: KnowledgeBase) -> None:
    with pytest.raises(KnowledgeError, match="unknown search mode"):
        ingested.search("x", mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(KnowledgeError, match="k must be"):
        ingested.search("x", k=0)
    for empty in ("", "   ", "\n\t"):
        with pytest.raises(KnowledgeError, match="the query is empty"):
            ingested.search(empty)
    bm25_only = KnowledgeBase(ingested.store)
    assert bm25_only.search("refunds", mode="bm25").hits
    with pytest.raises(KnowledgeError, match="without the model gateway"):
        bm25_only.search("refunds", mode="dense")
