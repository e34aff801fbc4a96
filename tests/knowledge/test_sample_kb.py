"""The demo's knowledge base: it ingests cleanly and covers every sample intent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kb_fixtures import ACTOR
from knowledge_helpers import KB, SAMPLE

from sluice.knowledge import Chunker, DocumentFormat, KnowledgeBase, TokenCounter, read_sources
from sluice.models import Gateway
from sluice.pipelines.support_triage.demo import ingest_sample_knowledge


def test_the_shipped_knowledge_base_ingests_without_failures(wordpiece: TokenCounter) -> None:
    batch = read_sources(KB, root=KB, exclude=["README.md"])
    assert batch.ok, [f.to_dict() for f in batch.failures]
    assert batch.skipped == ()
    articles = [d for d in batch.documents if d.format is DocumentFormat.MARKDOWN]
    faqs = [d for d in batch.documents if d.format is DocumentFormat.CSV_FAQ]
    assert 12 <= len(articles) <= 20 and len(faqs) >= 15
    for doc in articles:
        assert {"title", "product", "tags", "intents", "language"} <= set(doc.metadata)
        assert doc.headings and doc.headings[0].level == 1
    chunks = Chunker(counter=wordpiece).chunk_many(batch.documents)
    assert all(c.token_count <= 200 for c in chunks)
    by_id = {d.doc_id: d for d in batch.documents}
    assert all(by_id[c.doc_id].text[c.start : c.end] == c.text for c in chunks)


def test_every_sample_intent_has_an_article_in_its_queue() -> None:
    intents = json.loads((SAMPLE / "intents.json").read_text())
    batch = read_sources(KB, root=KB, exclude=["README.md", "*.csv"])
    covered = {
        intent: doc.metadata["product"]
        for doc in batch.documents
        for intent in doc.metadata["intents"]  # type: ignore[union-attr]
    }
    assert set(covered) == set(intents)
    assert all(covered[name] == spec["queue"] for name, spec in intents.items())
    products = {row["queue"] for row in intents.values()}
    faq = read_sources(KB / "faq.csv").documents
    assert {d.metadata["product"] for d in faq} <= products


def test_the_demo_ingest_leaves_the_users_own_documents_alone(runtime: Any, tmp_path: Path) -> None:
    # The demo ingests its folder as its own root into the default index: that scope is
    # "everything under this root", and must not reach what the user ingested elsewhere.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "hours.md").write_text("# Opening hours\n\nThe help desk opens at 8 am.")
    (mine / "returns.md").write_text("# Returns\n\nPrint the label and drop the box off.")
    gateway = Gateway(runtime.settings, runtime.store)
    try:
        kb = KnowledgeBase(runtime.store, gateway)
        kb.ingest([mine / "hours.md"], actor=ACTOR)  # a file:// source
        kb.ingest([mine], root=mine, actor=ACTOR)  # root-relative sources
        for _ in range(2):  # the demo runs again and again
            report = ingest_sample_knowledge(runtime)
            assert report.removed == () and report.ok
        assert kb.stats().documents == 3 + 40
        assert kb.search("help desk", mode="bm25").hits
        assert kb.search("label box", mode="bm25").hits[0].citation.source == "returns.md"
    finally:
        gateway.close()
