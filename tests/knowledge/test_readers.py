"""Every reader on small real files: text, structure, metadata, and clear refusals."""

from __future__ import annotations

import json

import pytest
from knowledge_helpers import encrypted_pdf, text_pdf

from sluice.errors import IngestError
from sluice.knowledge import (
    DocumentFormat,
    FaqColumns,
    JsonlFields,
    make_doc_id,
    normalize_text,
    read_faq_csv,
    read_html,
    read_jsonl,
    read_markdown,
    read_pdf,
    read_text,
)
from sluice.knowledge.readers import parse_front_matter

ARTICLE = """\
---
title: "Refunds and timing"
tags: [billing, refunds]
product: billing
lang: en
# a comment line
intents:
  - refund_status
  - return_request
---
Intro before any heading.

# Refunds

We refund within **3 business days**.

```
# not a heading: inside a code fence
```

Timing
------

Cards take 5-10 days.

### Gift `cards`
Instant.
"""


def test_markdown_front_matter_becomes_metadata_and_headings_structure() -> None:
    doc = read_markdown(ARTICLE.encode(), source="kb/refunds.md", metadata={"product": "x"})
    assert doc.format is DocumentFormat.MARKDOWN
    assert doc.title == "Refunds and timing"
    assert doc.metadata["tags"] == ("billing", "refunds")
    assert doc.metadata["language"] == "en"
    assert doc.metadata["intents"] == ("refund_status", "return_request")
    assert doc.metadata["product"] == "x", "the caller's key=value wins over front matter"
    assert doc.metadata["title"] == doc.title
    assert doc.text.startswith("Intro before any heading.")
    assert "---" not in doc.text.split("\n")[0]
    assert [(h.level, h.title) for h in doc.headings] == [
        (1, "Refunds"),
        (2, "Timing"),
        (3, "Gift cards"),
    ]
    for heading in doc.headings:  # offsets point at the heading's own line(s)
        assert heading.title.split()[0] in doc.text[heading.start : heading.end]
    assert doc.text[doc.headings[1].start : doc.headings[1].end] == "Timing\n------"
    assert doc.doc_id == make_doc_id("kb/refunds.md")
    assert doc.record_key is None


def test_markdown_without_front_matter_takes_the_first_heading_then_the_file_name() -> None:
    assert read_markdown(b"Text\n\n## Setup\n\nx", source="a/b.md").title == "Setup"
    assert read_markdown(b"Just text.", source="file:///kb/late_orders.md").title == ("late orders")
    unclosed = read_markdown(b"---\ntitle: x\nno closing line", source="u.md")
    assert unclosed.text.startswith("---"), "an unclosed block is content, not front matter"


def test_bad_front_matter_names_the_line() -> None:
    with pytest.raises(IngestError) as info:
        read_markdown(b"---\ntitle: ok\nthis is not a pair\n---\nbody", source="bad.md")
    assert info.value.reason == "bad_front_matter"
    assert info.value.location == "line 3"
    assert "bad.md" in info.value.message


def test_front_matter_parser_lists_and_quotes() -> None:
    meta, body = parse_front_matter("---\ntitle: 'A: b'\ntags: a; b\nempty:\n---\nrest")
    assert meta == {"title": "A: b", "tags": "a; b", "empty": []}
    assert body == "rest"


def test_text_is_normalized_and_not_utf8_is_refused() -> None:
    doc = read_text(
        b"\xef\xbb\xbfLine one  \r\nline two\r\n\r\n\r\n\r\nPara\x00 two", source="t.txt"
    )
    assert doc.text == "Line one\nline two\n\nPara two"
    assert doc.headings == ()
    assert normalize_text(doc.text) == doc.text
    with pytest.raises(IngestError) as info:
        read_text("caf\xe9".encode("latin-1"), source="latin.txt")
    assert info.value.reason == "not_utf8"
    assert info.value.hint and "UTF-8" in info.value.hint


PAGE = b"""<!doctype html>
<html lang="en-GB"><head><title> Delivery   help </title>
<meta name="Keywords" content="shipping, delays">
<style>body { color: red }</style><script>var hidden = "script text";</script></head>
<body>
<nav><a href="/">Home</a> | <a href="/help">Help</a></nav>
<main>
<h1>Late parcels</h1>
<p>A parcel is late when it is <em>two business days</em> past its estimate.
<p>Unclosed paragraph, still kept.
<h2>What we do</h2>
<ul><li>Ask the carrier to trace it.</li><li>Reship after 7 days.</li></ul>
<table><tr><th>Service</th><th>Days</th></tr><tr><td>Standard</td><td>3-5</td></tr></table>
<pre>line one
  line two</pre>
<div hidden>Secret draft</div>
<noscript>Enable JavaScript</noscript>
</main>
</body></html>"""


def test_html_keeps_visible_text_and_headings_and_drops_the_rest() -> None:
    doc = read_html(PAGE, source="late.html")
    assert doc.format is DocumentFormat.HTML
    assert doc.title == "Delivery help"
    assert doc.metadata["language"] == "en-GB"
    assert doc.metadata["tags"] == ("shipping", "delays")
    for gone in ("Home", "script text", "color: red", "Secret draft", "Enable JavaScript"):
        assert gone not in doc.text
    assert "A parcel is late when it is two business days past its estimate." in doc.text
    assert "Unclosed paragraph, still kept." in doc.text
    assert "- Ask the carrier to trace it." in doc.text
    assert "Service | Days" in doc.text and "Standard | 3-5" in doc.text
    assert "line one\n  line two" in doc.text
    assert [(h.level, h.title) for h in doc.headings] == [(1, "Late parcels"), (2, "What we do")]
    for heading in doc.headings:
        assert doc.text[heading.start : heading.end] == "#" * heading.level + " " + heading.title
    assert normalize_text(doc.text) == doc.text


def test_html_in_a_declared_legacy_charset() -> None:
    page = '<meta charset="windows-1252"><p>Caf\xe9 open</p>'.encode("cp1252")
    assert read_html(page, source="legacy.html").text == "Café open"


def test_pdf_text_layer_pages_and_title() -> None:
    data = text_pdf([["Refund policy (2024)", "Refunds take 5 days."], ["Page two."]], title="Pol")
    doc = read_pdf(data, source="policy.pdf")
    assert doc.format is DocumentFormat.PDF
    assert doc.text == "Refund policy (2024)\nRefunds take 5 days.\n\nPage two."
    assert doc.title == "Pol"
    assert doc.metadata["pages"] == 2
    untitled = read_pdf(text_pdf([["x"]]), source="file:///kb/terms-of-sale.pdf")
    assert untitled.title == "terms of sale"


def test_pdf_encrypted_with_an_owner_password_only_is_read() -> None:
    data = encrypted_pdf(text_pdf([["Open to all."]]), user_password="")
    assert read_pdf(data, source="owner.pdf").text == "Open to all."


@pytest.mark.parametrize(
    ("name", "reason"),
    [("encrypted", "encrypted"), ("corrupt", "corrupt"), ("scanned", "no_text_layer")],
)
def test_unreadable_pdfs_are_refused_with_a_reason(name: str, reason: str) -> None:
    good = text_pdf([["Some text."]])
    data = {
        "encrypted": encrypted_pdf(good, user_password="secret"),
        "corrupt": good[: len(good) // 3],
        "scanned": text_pdf([[]]),
    }[name]
    with pytest.raises(IngestError) as info:
        read_pdf(data, source=f"{name}.pdf")
    assert info.value.reason == reason
    assert info.value.hint


def test_jsonl_records_with_default_and_custom_fields() -> None:
    lines = [
        {"_id": "a1", "title": "Fees", "text": "No fees.", "tags": ["x", "y"], "stars": 4},
        {"id": 7, "text": "Numbered id.", "metadata": {"product": "billing"}},
        {"text": "No id at all."},
        "a string",
        {"_id": "a1", "text": "Same id again."},
        {"_id": "a9", "text": "   "},
    ]
    data = "\n".join(json.dumps(x) for x in lines).encode() + b"\n\n{broken\n"
    read = read_jsonl(data, source="kb/articles.jsonl")
    assert [(d.record_key, d.title) for d in read.documents] == [
        ("a1", "Fees"),
        ("7", "articles 7"),
        ("line:3", "articles line:3"),
    ]
    first = read.documents[0]
    assert first.format is DocumentFormat.JSONL
    assert first.metadata == {"tags": ("x", "y"), "stars": 4, "title": "Fees"}
    assert read.documents[1].metadata["product"] == "billing"
    assert first.doc_id == make_doc_id("kb/articles.jsonl", "a1")
    assert [(f.reason, f.location) for f in read.failures] == [
        ("bad_record", "line 4"),
        ("duplicate_id", "line 5"),
        ("bad_record", "line 6"),
        ("bad_record", "line 8"),
    ]

    custom = read_jsonl(
        b'{"key": "k", "body": "Body text.", "heading": "H"}',
        source="c.jsonl",
        fields=JsonlFields(text="body", title="heading", id="key"),
    )
    assert [(d.record_key, d.title, d.text) for d in custom.documents] == [("k", "H", "Body text.")]


def test_jsonl_hash_is_over_the_record_not_its_formatting() -> None:
    one = read_jsonl(b'{"_id": "a", "text": "T", "n": 1}', source="s.jsonl").documents[0]
    two = read_jsonl(b'{ "n":1,"text":"T","_id":"a" }', source="s.jsonl").documents[0]
    three = read_jsonl(b'{"_id": "a", "text": "T", "n": 2}', source="s.jsonl").documents[0]
    assert one.sha256 == two.sha256 != three.sha256
    assert one.doc_id == three.doc_id


FAQ = (
    "Question,Answer,Product,Tags\r\n"
    "How long do refunds take?,Five to ten business days.,billing,refunds; cards\r\n"
    '"Can I change my address?","Yes, before dispatch.\nAfter, ask the carrier.",logistics,\r\n'
    ",An answer without a question,billing,\r\n"
    "How long do refunds take?,Duplicate question.,billing,\r\n"
    "Too,few\r\n"
)


def test_faq_csv_one_document_per_row() -> None:
    read = read_faq_csv(FAQ.encode(), source="kb/faq.csv")
    assert [d.title for d in read.documents] == [
        "How long do refunds take?",
        "Can I change my address?",
    ]
    first, second = read.documents
    assert first.format is DocumentFormat.CSV_FAQ
    assert first.text == "Q: How long do refunds take?\nA: Five to ten business days."
    assert first.metadata["tags"] == ("refunds", "cards")
    assert first.metadata["product"] == "billing"
    assert (
        second.text
        == "Q: Can I change my address?\nA: Yes, before dispatch.\nAfter, ask the carrier."
    )
    assert "tags" not in second.metadata, "empty cells are not metadata"
    assert first.record_key == "How long do refunds take?"
    assert [(f.reason, f.location) for f in read.failures] == [
        ("bad_record", "row 3"),
        ("duplicate_id", "row 4"),
        ("bad_record", "row 5"),
    ]


def test_faq_csv_id_column_and_custom_names() -> None:
    data = b"ref,q,a\nF1,Who are you?,Larkspur.\n"
    read = read_faq_csv(
        data, source="f.csv", columns=FaqColumns(question="q", answer="a", id="ref")
    )
    assert [(d.record_key, d.title) for d in read.documents] == [("F1", "Who are you?")]
    assert "ref" not in read.documents[0].metadata


def test_faq_csv_without_its_columns_is_refused_whole() -> None:
    with pytest.raises(IngestError) as info:
        read_faq_csv(b"text,category\nhello,greeting\n", source="train.csv")
    assert info.value.reason == "missing_column"
    assert "'question'" in info.value.message and info.value.hint
