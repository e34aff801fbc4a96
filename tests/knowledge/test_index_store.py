"""The knowledge plane's SQL at sizes where one bound parameter per value would fail.

PostgreSQL's protocol takes at most 65,535 bound parameters per statement, and SQLite
32,766 unless built with more (Debian's allows 250,000); an ``IN (...)`` list spends one
per value. Both backends run these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kb_fixtures import ACTOR, knowledge_base, write_corpus
from sqlalchemy import func, select

from sluice.config import Settings
from sluice.knowledge import KnowledgeBase
from sluice.knowledge.index_store import delete_documents, document_rows
from sluice.knowledge.tables import kb_chunks, kb_documents
from sluice.store import utcnow

MANY = 70_000  # over both limits


@pytest.fixture
def kb(settings: Settings, tmp_path: Path) -> Any:
    corpus = write_corpus(tmp_path / "corpus")
    with knowledge_base(settings) as kb:
        kb.ingest([corpus], root=corpus, actor=ACTOR)
        yield kb


def _add_filler_documents(kb: KnowledgeBase, count: int) -> list[str]:
    now = utcnow()
    rows = [
        {
            "index_name": kb.index,
            "doc_id": f"filler{i:026d}",
            "source": f"filler/{i}.txt",
            "root": None,
            "record_key": None,
            "format": "text",
            "title": f"filler {i}",
            "text": "filler",
            "headings": [],
            "sha256": "0" * 64,
            "fingerprint": "0" * 64,
            "metadata": {},
            "ingested_at": now,
            "updated_at": now,
        }
        for i in range(count)
    ]
    with kb.store.begin() as conn:
        conn.execute(kb_documents.insert(), rows)
    return [r["doc_id"] for r in rows]


def test_tens_of_thousands_of_documents_are_read_and_deleted_in_batches(
    kb: KnowledgeBase,
) -> None:
    with kb.store.read() as conn:
        real = [d.doc_id for d in document_rows(conn, kb.index)]
    filler = _add_filler_documents(kb, MANY)
    with kb.store.read() as conn:
        assert len(document_rows(conn, kb.index, doc_ids=filler + real)) == MANY + len(real)
    with kb.store.begin() as conn:
        deleted = delete_documents(conn, kb.index, filler + real, kb.keyword)
    assert deleted == MANY + len(real)
    with kb.store.read() as conn:
        assert conn.execute(select(func.count()).select_from(kb_chunks)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(kb_documents)).scalar_one() == 0
    assert kb.version().chunks == 0 and kb.version().terms == 0
    assert not kb.search("refunds", mode="bm25").hits


def test_the_keyword_index_removes_tens_of_thousands_of_chunks_at_once(
    kb: KnowledgeBase,
) -> None:
    version = kb.version()
    with kb.store.read() as conn:
        chunks = list(
            conn.execute(select(kb_chunks.c.id).where(kb_chunks.c.version == version.id)).scalars()
        )
    # The version's real chunks among ids that do not exist (a very long document's).
    absent = range(max(chunks) + 1, max(chunks) + 1 + MANY)
    with kb.store.begin() as conn:
        kb.keyword.remove(conn, version.id, [*chunks, *absent])
    assert not kb.search("refunds", mode="bm25").hits
