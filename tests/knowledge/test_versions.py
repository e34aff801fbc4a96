"""Versioned indexes on both backends: build beside the live one, activate, roll back."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path
from typing import Any

import pytest
from kb_fixtures import ACTOR, knowledge_base, write_corpus
from sqlalchemy import Connection, select, update

from sluice.config import Settings
from sluice.errors import (
    EncoderMismatchError,
    IndexVersionError,
    IndexVersionNotFoundError,
)
from sluice.governance import iter_entries, verify
from sluice.knowledge import ChunkingConfig, IndexVersion, KnowledgeBase, SearchResult, read_sources
from sluice.knowledge.indexing import index_groups
from sluice.knowledge.tables import kb_activations, kb_chunks, kb_index_versions
from sluice.knowledge.vector_index import VectorCache
from sluice.knowledge.versions import version_state

SMALL = ChunkingConfig(max_tokens=40, overlap_tokens=8)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "corpus")


@pytest.fixture
def kb(settings: Settings, corpus: Path) -> Any:
    with knowledge_base(settings) as kb:
        kb.ingest([corpus], root=corpus, actor=ACTOR)
        yield kb


def _entries(kb: KnowledgeBase) -> list[Any]:
    with kb.store.read() as conn:
        return [e for e in iter_entries(conn) if e.action.startswith("knowledge.")]


def _owned_by(kb: KnowledgeBase, result: SearchResult) -> bool:
    """Whether every hit's chunk belongs to the version the result names."""
    with kb.store.read() as conn:
        held = set(
            conn.execute(
                select(kb_chunks.c.chunk_id).where(kb_chunks.c.version == result.version.id)
            ).scalars()
        )
    return all(h.chunk_id in held for h in result.hits)


def test_a_new_version_is_built_beside_the_live_one(kb: KnowledgeBase) -> None:
    v2 = kb.build(actor=ACTOR, chunking=SMALL, note="smaller chunks")
    assert (v2.ref, v2.status, v2.note) == ("default@v2", "ready", "smaller chunks")
    assert v2.chunks > kb.version(1).chunks  # smaller chunks, more of them
    assert v2.chunking["max_tokens"] == 40 and v2.encoder == kb.version(1).encoder
    assert kb.search("refunds").version.ref == "default@v1"  # v1 still answers
    assert kb.search("refunds", version=2).version.ref == "default@v2"
    with pytest.raises(IndexVersionError, match="already has this configuration"):
        kb.build(actor=ACTOR, chunking=SMALL)
    with pytest.raises(IndexVersionNotFoundError):
        kb.version(9)


def test_activate_switches_and_rollback_goes_back(kb: KnowledgeBase) -> None:
    kb.build(actor=ACTOR, chunking=SMALL)
    active = kb.activate(2, actor=ACTOR, reason="try smaller chunks")
    assert active.status == "active" and kb.version(1).status == "retired"
    result = kb.search("lost parcel")
    assert result.version.ref == "default@v2" and _owned_by(kb, result)
    with pytest.raises(IndexVersionError, match="already active"):
        kb.activate(2, actor=ACTOR)
    back = kb.rollback(actor=ACTOR, reason="worse")
    assert back.ref == "default@v1" and kb.version(2).status == "retired"
    assert kb.search("lost parcel").version.ref == "default@v1"
    with pytest.raises(IndexVersionError, match="no earlier active version"):
        kb.rollback(actor=ACTOR)
    actions = [(e.action, e.target) for e in _entries(kb) if e.action != "knowledge.ingested"]
    assert actions == [
        ("knowledge.version_created", "default@v1"),
        ("knowledge.version_activated", "default@v1"),
        ("knowledge.version_created", "default@v2"),
        ("knowledge.version_activated", "default@v2"),
        ("knowledge.rolled_back", "default@v1"),
    ]
    rolled = next(e for e in reversed(_entries(kb)) if e.action == "knowledge.rolled_back")
    assert rolled.details_dict()["previous"] == "default@v2"
    assert rolled.details_dict()["reason"] == "worse"
    assert verify(kb.store).ok
    assert [a.action for a in kb.activations()] == ["activate", "activate", "rollback"]


def test_ingest_maintains_ready_versions(kb: KnowledgeBase, corpus: Path) -> None:
    kb.build(actor=ACTOR, chunking=SMALL)
    (corpus / "hours.md").write_text("# Hours\n\nThe help desk opens at 8 am on weekdays.")
    report = kb.ingest([corpus], root=corpus, actor=ACTOR)
    assert set(report.versions) == {"default@v1", "default@v2"}
    for number in (1, 2):
        hits = kb.search("help desk weekdays", mode="bm25", version=number).hits
        assert hits and hits[0].citation.source == "hours.md"


def test_a_retired_version_catches_up_when_it_comes_back(kb: KnowledgeBase, corpus: Path) -> None:
    kb.build(actor=ACTOR, chunking=SMALL)
    kb.activate(2, actor=ACTOR)
    (corpus / "notes.txt").write_text("Warehouse notes. The depot cat is called Biscuit.\n")
    report = kb.ingest([corpus], root=corpus, actor=ACTOR)
    assert report.versions == ("default@v2",)  # v1 is retired: not maintained
    # It still holds the old text, which the document no longer has: searching it
    # would cite text that is not there.
    with pytest.raises(IndexVersionError, match=r"1 document\(s\) changed since"):
        kb.search("zebra", mode="bm25", version=1)
    kb.rollback(actor=ACTOR)
    assert not kb.search("zebra", mode="bm25").hits
    hit = kb.search("depot cat Biscuit", mode="hybrid").hits[0]
    assert hit.citation.index_version == "default@v1" and "Biscuit" in hit.text


def test_retire_a_ready_version(kb: KnowledgeBase) -> None:
    kb.build(actor=ACTOR, chunking=SMALL)
    assert kb.retire(2, actor=ACTOR, reason="not needed").status == "retired"
    with pytest.raises(IndexVersionError, match="active version"):
        kb.retire(1, actor=ACTOR)
    with pytest.raises(IndexVersionError, match="already retired"):
        kb.retire(2, actor=ACTOR)


def test_switch_and_rollback_while_queries_run(kb: KnowledgeBase) -> None:
    kb.build(actor=ACTOR, chunking=SMALL)
    stop = threading.Event()
    seen: list[SearchResult] = []
    errors: list[BaseException] = []

    def query(mode: Any) -> None:
        while not stop.is_set():
            try:
                seen.append(kb.search("how long does delivery take", mode=mode, k=5))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
                return

    threads = [threading.Thread(target=query, args=(m,)) for m in ("bm25", "hybrid")]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            kb.activate(2, actor=ACTOR)
            kb.rollback(actor=ACTOR)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors
    assert {r.version.ref for r in seen} <= {"default@v1", "default@v2"}
    for result in seen:
        assert result.hits
        assert all(h.citation.index_version == result.version.ref for h in result.hits)
        assert _owned_by(kb, result)


def test_a_version_of_another_encoder_is_refused_not_misread(kb: KnowledgeBase) -> None:
    with kb.store.begin() as conn:
        conn.execute(update(kb_index_versions).values(encoder="some-other-encoder@2"))
    with pytest.raises(EncoderMismatchError, match="some-other-encoder@2"):
        kb.search("refunds", mode="hybrid")
    assert kb.search("refunds", mode="bm25").hits  # keywords need no encoder
    kb.build(actor=ACTOR, chunking=SMALL, activate=True)  # with the encoder served now
    assert kb.search("refunds", mode="hybrid").version.ref == "default@v2"
    with pytest.raises(EncoderMismatchError, match="declare some-other-encoder@2 again"):
        kb.rollback(actor=ACTOR)
    assert kb.version().ref == "default@v2"


def test_a_reranker_reorders_the_best_hits(settings: Settings, corpus: Path) -> None:
    class Shortest:
        name, depth = "shortest-first", 5

        def score(self, query: str, texts: Any) -> list[float]:
            return [-float(len(t)) for t in texts]

    with knowledge_base(settings, reranker=Shortest()) as kb:
        kb.ingest([corpus], root=corpus, actor=ACTOR)
        result = kb.search("days", k=5)
    assert result.reranker == "shortest-first"
    lengths = [len(h.text) for h in result.hits]
    assert lengths == sorted(lengths)
    assert all(h.scores.rerank == h.score for h in result.hits)


def test_a_retired_version_is_searched_while_it_is_still_current(kb: KnowledgeBase) -> None:
    kb.build(actor=ACTOR, chunking=SMALL)
    kb.activate(2, actor=ACTOR)
    result = kb.search("lost parcel", version=1)
    assert result.version.ref == "default@v1" and result.version.status == "retired"
    assert result.hits and _owned_by(kb, result)


def test_two_activations_of_one_version_record_one(kb: KnowledgeBase, corpus: Path) -> None:
    kb.build(actor=ACTOR, chunking=SMALL)
    kb.activate(2, actor=ACTOR)
    (corpus / "notes.txt").write_text("Warehouse notes. The depot cat is called Biscuit.\n")
    kb.ingest([corpus], root=corpus, actor=ACTOR)  # v1 falls behind: it must catch up
    checked = threading.Event()
    first_done = threading.Event()
    outcome: list[BaseException | IndexVersion] = []

    def late(phase: str, done: int, total: int) -> None:
        # The second activation has checked v1's status (retired) and is catching up;
        # it goes on once the first activation has committed.
        checked.set()
        assert first_done.wait(60)

    def second() -> None:
        try:
            outcome.append(kb.activate(1, actor=ACTOR, progress=late))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=second)
    thread.start()
    try:
        assert checked.wait(60)
        assert kb.activate(1, actor=ACTOR).status == "active"
    finally:
        first_done.set()
        thread.join()
    assert isinstance(outcome[0], IndexVersionError), outcome
    assert "already active" in str(outcome[0])
    with kb.store.read() as conn:
        history = conn.execute(
            select(kb_activations.c.action, kb_activations.c.version).order_by(kb_activations.c.id)
        ).all()
    assert [(a, kb.version(1).id == v) for a, v in history] == [
        ("activate", True),
        ("activate", False),
        ("activate", True),
    ]


def test_a_group_whose_versions_keep_changing_is_reported_not_dropped(
    kb: KnowledgeBase, corpus: Path
) -> None:
    kb.build(actor=ACTOR, chunking=SMALL)
    one, both = [kb.version(1)], [kb.version(1), kb.version(2)]
    answers = itertools.cycle([one, both])  # a build or an activation at every look

    def restless(conn: Connection) -> list[IndexVersion]:
        return next(answers)

    docs = read_sources(corpus / "notes.txt", root=corpus).documents
    assert kb.gateway is not None
    outcome = index_groups(
        kb.store, kb.gateway, kb.keyword, index=kb.index, documents=docs, versions=restless
    )
    assert outcome.documents == [] and outcome.chunks == 0
    assert [(f.code, f.documents) for f in outcome.failures] == [("versions_changed", docs)]
    assert "changed 3 times" in outcome.failures[0].error


def test_the_vector_cache_keeps_the_active_version_and_a_few_others(kb: KnowledgeBase) -> None:
    for max_tokens in (40, 60, 80):
        kb.build(actor=ACTOR, chunking=ChunkingConfig(max_tokens=max_tokens, overlap_tokens=0))
    cache = VectorCache(others=1)

    def load(number: int) -> None:
        with kb.store.read() as conn:
            version, generation = version_state(conn, kb.version(number).id)
            assert len(cache.get(conn, version, generation)) == version.chunks

    ids = {n: kb.version(n).id for n in (1, 2, 3, 4)}
    for number in (1, 2, 3, 4):  # v1 active, then three others
        load(number)
    assert cache.held == (ids[1], ids[4])  # the active one, and the last other
    kb.activate(4, actor=ACTOR)
    load(4)  # now active: the version it replaced was retired, and goes
    assert cache.held == (ids[4],)
    load(2)
    load(3)
    assert cache.held == (ids[4], ids[3])


def test_a_knowledge_base_drops_the_vectors_of_versions_it_retires(kb: KnowledgeBase) -> None:
    kb.build(actor=ACTOR, chunking=SMALL)
    v1, v2 = kb.version(1).id, kb.version(2).id
    kb.search("lost parcel", mode="dense")
    kb.search("lost parcel", mode="dense", version=2)
    assert set(kb._vectors.held) == {v1, v2}
    kb.activate(2, actor=ACTOR)
    assert kb._vectors.held == (v2,)
    kb.build(actor=ACTOR, chunking=ChunkingConfig(max_tokens=60, overlap_tokens=0))
    kb.search("lost parcel", mode="dense", version=3)
    kb.retire(3, actor=ACTOR)
    assert kb._vectors.held == (v2,)
