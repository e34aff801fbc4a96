"""The demo's knowledge base: it ingests cleanly and covers every sample intent."""

from __future__ import annotations

import json

from knowledge_helpers import KB, SAMPLE

from sluice.knowledge import Chunker, DocumentFormat, TokenCounter, read_sources


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
