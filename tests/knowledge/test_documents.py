"""Documents and chunks: derived ids, hashes, fingerprints and normalization."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.knowledge import (
    Chunk,
    Document,
    DocumentFormat,
    Heading,
    make_chunk_id,
    make_doc_id,
    normalize_text,
)


def _doc(**changes: object) -> Document:
    fields: dict[str, object] = {
        "source": "kb/a.md",
        "format": DocumentFormat.MARKDOWN,
        "text": "# A\n\nAlpha.",
        "raw": b"# A\n\nAlpha.",
        "title": "A",
        "metadata": {"tags": ("x",)},
        "headings": (Heading(1, "A", 0, 3),),
    }
    return Document.create(**(fields | changes))  # type: ignore[arg-type]


def test_ids_derive_from_source_and_record_key() -> None:
    assert make_doc_id("a") == make_doc_id("a", None) == make_doc_id("a", "")
    assert len({make_doc_id("a"), make_doc_id("a", "1"), make_doc_id("b")}) == 3
    assert make_chunk_id("d", 0, "t") != make_chunk_id("d", 1, "t") != make_chunk_id("d", 0, "u")
    assert _doc().doc_id == make_doc_id("kb/a.md")
    assert _doc(record_key="r").doc_id == make_doc_id("kb/a.md", "r")


def test_fingerprint_covers_content_title_and_metadata() -> None:
    base = _doc()
    assert base.fingerprint == _doc().fingerprint
    assert base.sha256 == _doc(title="B").sha256
    for other in (_doc(raw=b"other"), _doc(title="B"), _doc(metadata={"tags": ("y",)})):
        assert other.fingerprint != base.fingerprint
    assert base.metadata["title"] == "A"


def test_documents_copy_their_metadata_and_pickle() -> None:
    meta = {"tags": ("x",)}
    doc = _doc(metadata=meta)
    meta["tags"] = ("changed",)
    assert doc.metadata["tags"] == ("x",)
    assert pickle.loads(pickle.dumps(doc)) == doc
    chunk = Chunk.create(doc, ordinal=0, start=5, end=11, heading_path=("A",), token_count=2)
    assert chunk.text == "Alpha." and pickle.loads(pickle.dumps(chunk)) == chunk


def test_headings_must_lie_inside_the_text_in_order() -> None:
    with pytest.raises(ValueError, match="outside"):
        _doc(headings=(Heading(1, "A", 0, 99),))
    with pytest.raises(ValueError, match="outside"):
        _doc(headings=(Heading(1, "A", 5, 11), Heading(1, "B", 0, 3)))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=200))
def test_normalize_text_is_idempotent_and_clean(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once
    assert "\r" not in once and "\n\n\n" not in once
    assert once == once.strip()
    assert all(not line.endswith((" ", "\t")) for line in once.split("\n"))
