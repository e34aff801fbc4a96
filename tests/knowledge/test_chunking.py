"""Chunking: exact offsets, heading paths, overlap and token bounds."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.knowledge import (
    ApproxTokenCounter,
    Chunk,
    Chunker,
    ChunkingConfig,
    Document,
    TokenCounter,
    chunk_document,
    make_chunk_id,
    read_markdown,
    read_text,
)

# --- Generated documents ----------------------------------------------------------

_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789',;é",
                min_size=1, max_size=10)  # fmt: skip
_LONG_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=120, max_size=400)
_CJK = st.text(alphabet="退款已发送到您的银行卡请等待五天", min_size=40, max_size=300)


@st.composite
def _sentence(draw: st.DrawFn) -> str:
    words = draw(st.lists(_WORD, min_size=1, max_size=draw(st.sampled_from([6, 12, 90]))))
    if draw(st.integers(0, 9)) == 0:
        words.insert(draw(st.integers(0, len(words))), draw(_LONG_WORD))
    words[0] = words[0].capitalize()
    return " ".join(words) + draw(st.sampled_from([".", "!", "?", ".", "...", ""]))


@st.composite
def _block(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["heading", "paragraph", "paragraph", "list", "cjk"]))
    if kind == "heading":
        title = " ".join(draw(st.lists(_WORD, min_size=1, max_size=4)))
        return "#" * draw(st.integers(1, 4)) + " " + title
    if kind == "list":
        return "\n".join("- " + draw(_sentence()) for _ in range(draw(st.integers(1, 4))))
    if kind == "cjk":
        return draw(_CJK) + "。" + draw(_CJK)
    sentences = draw(st.lists(_sentence(), min_size=1, max_size=8))
    return draw(st.sampled_from([" ", "\n"])).join(sentences)


@st.composite
def _markdown(draw: st.DrawFn) -> str:
    blocks = draw(st.lists(_block(), min_size=1, max_size=12))
    return "".join(b + draw(st.sampled_from(["\n\n", "\n", "\n\n\n", "\n  \n"])) for b in blocks)


def _heading_paths(doc: Document) -> list[tuple[int, tuple[str, ...]]]:
    """(heading start, its path), computed without the chunker's code."""
    out: list[tuple[int, tuple[str, ...]]] = []
    stack: list[tuple[int, str]] = []
    for h in doc.headings:
        stack = [(lvl, t) for lvl, t in stack if lvl < h.level] + [(h.level, h.title)]
        out.append((h.start, tuple(t for _, t in stack)))
    return out


def _expected_path(doc: Document, offset: int) -> tuple[str, ...]:
    path: tuple[str, ...] = ()
    for start, heading_path in _heading_paths(doc):
        if start <= offset:
            path = heading_path
    return path


def check_chunks(doc: Document, chunks: list[Chunk], config: ChunkingConfig,
                 counter: TokenCounter) -> None:  # fmt: skip
    text = doc.text
    # Offsets slice the document to the chunk text; ids and ordinals are derived.
    for i, chunk in enumerate(chunks):
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.ordinal == i and chunk.doc_id == doc.doc_id
        assert chunk.chunk_id == make_chunk_id(doc.doc_id, i, chunk.text)
        assert chunk.text == chunk.text.strip()
        assert chunk.token_count == counter.count(chunk.text)
        assert chunk.token_count <= config.max_tokens
    # In order, each chunk reaching further than the one before.
    for before, after in itertools.pairwise(chunks):
        assert before.start < after.start and before.end < after.end
        if after.start < before.end:  # overlap: same section, bounded
            assert after.heading_path == before.heading_path
            assert counter.count(text[after.start : before.end]) <= config.overlap_tokens
    # Never across a heading; the path is the enclosing headings'.
    for chunk in chunks:
        assert not any(chunk.start < h.start < chunk.end for h in doc.headings)
        assert chunk.heading_path == _expected_path(doc, chunk.start)
    # Everything is covered except the lines of headings with nothing under them.
    covered = bytearray(len(text))
    for chunk in chunks:
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
    for i, char in enumerate(text):
        if not covered[i] and not char.isspace():
            assert any(h.start <= i < h.end for h in doc.headings), (i, text[i - 20 : i + 20])
    # A heading with a body opens a chunk.
    starts = {c.start for c in chunks}
    bounds = [h.start for h in doc.headings] + [len(text)]
    for h, next_start in zip(doc.headings, bounds[1:], strict=True):
        if text[h.end : next_start].strip():
            assert h.start in starts


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    _markdown(),
    st.integers(12, 120),
    st.floats(0, 0.45),
    st.sampled_from([0.0, 0.5, 1.0]),
)
def test_chunks_slice_cover_and_respect_bounds(
    wordpiece: TokenCounter, source: str, max_tokens: int, overlap: float, min_fill: float
) -> None:
    doc = read_markdown(source.encode(), source="gen.md")
    config = ChunkingConfig(max_tokens, int(max_tokens * overlap), min_fill)
    chunks = Chunker(config, wordpiece).chunk(doc)
    check_chunks(doc, chunks, config, wordpiece)


@settings(max_examples=40, deadline=None)
@given(_markdown(), st.integers(12, 80))
def test_the_approximate_counter_keeps_the_same_guarantees(source: str, max_tokens: int) -> None:
    counter = ApproxTokenCounter()
    doc = read_markdown(source.encode(), source="gen.md")
    config = ChunkingConfig(max_tokens, max_tokens // 5)
    check_chunks(doc, Chunker(config, counter).chunk(doc), config, counter)


# --- Worked examples ---------------------------------------------------------------

GUIDE = b"""\
Opening words before any heading.

# Returns

## Window

You have 30 days to return an item. It must be unworn with its tags on. Sale items follow
the same rule. Final-sale items cannot be returned.

## Labels

A prepaid label costs 5.95 and is taken from the refund.

# Exchanges

Exchanges are free.
"""


def test_sections_and_heading_paths(wordpiece: TokenCounter) -> None:
    doc = read_markdown(GUIDE, source="returns.md")
    chunks = chunk_document(doc, ChunkingConfig(200, 40), wordpiece)
    assert [(c.heading_path, c.text.split("\n")[0]) for c in chunks] == [
        ((), "Opening words before any heading."),
        (("Returns", "Window"), "## Window"),
        (("Returns", "Labels"), "## Labels"),
        (("Exchanges",), "# Exchanges"),
    ], "'# Returns' alone makes no chunk; its title is in its children's paths"
    check_chunks(doc, chunks, ChunkingConfig(200, 40), wordpiece)


def test_overlap_repeats_whole_sentences_within_a_section(wordpiece: TokenCounter) -> None:
    sentences = [f"Sentence number {i} says something about refunds." for i in range(30)]
    doc = read_text(" ".join(sentences).encode(), source="long.txt")
    config = ChunkingConfig(max_tokens=60, overlap_tokens=20)
    chunks = chunk_document(doc, config, wordpiece)
    assert len(chunks) > 3
    for before, after in itertools.pairwise(chunks):
        shared = doc.text[after.start : before.end]
        assert after.start < before.end, "consecutive chunks of a section overlap"
        assert shared.startswith("Sentence") and shared.endswith("refunds.")
        assert 0 < wordpiece.count(shared) <= 20
    no_overlap = chunk_document(doc, ChunkingConfig(60, 0), wordpiece)
    assert all(a.end < b.start for a, b in itertools.pairwise(no_overlap))
    check_chunks(doc, chunks, config, wordpiece)


def test_no_overlap_across_a_heading(wordpiece: TokenCounter) -> None:
    body = " ".join(f"Fact {i} is here." for i in range(40))
    doc = read_markdown(f"# One\n\n{body}\n\n# Two\n\n{body}".encode(), source="two.md")
    chunks = chunk_document(doc, ChunkingConfig(50, 20), wordpiece)
    first_two = next(i for i, c in enumerate(chunks) if c.heading_path == ("Two",))
    assert chunks[first_two - 1].end < chunks[first_two].start
    assert chunks[first_two].text.startswith("# Two")


def test_paragraph_breaks_are_preferred_cuts(wordpiece: TokenCounter) -> None:
    para = " ".join(["Refunds go back to the card you paid with."] * 4)
    doc = read_text(f"{para}\n\n{para}\n\n{para}".encode(), source="p.txt")
    count = wordpiece.count(para)
    config = ChunkingConfig(max_tokens=count * 2 + count // 2, overlap_tokens=0)
    chunks = chunk_document(doc, config, wordpiece)
    assert [c.text for c in chunks] == [f"{para}\n\n{para}", para]


def test_an_over_long_sentence_is_cut_at_words(wordpiece: TokenCounter) -> None:
    sentence = " ".join(["refund"] * 300) + "."
    doc = read_text(sentence.encode(), source="s.txt")
    chunks = chunk_document(doc, ChunkingConfig(50, 10), wordpiece)
    assert len(chunks) >= 12
    assert all(c.token_count <= 50 for c in chunks)
    assert all(not c.text.startswith("efund") for c in chunks), "cut between words"


def test_an_over_long_word_is_cut_at_characters(wordpiece: TokenCounter) -> None:
    blob = "退款" * 200  # CJK: every character is a token, and there are no spaces
    doc = read_text(blob.encode(), source="cjk.txt")
    chunks = chunk_document(doc, ChunkingConfig(64, 0), wordpiece)
    assert "".join(c.text for c in chunks) == blob
    assert all(c.token_count <= 64 for c in chunks)


def test_chunk_ids_are_stable_and_describe_names_the_tokenizer(wordpiece: TokenCounter) -> None:
    doc = read_markdown(GUIDE, source="returns.md")
    chunker = Chunker(counter=wordpiece)
    assert [c.chunk_id for c in chunker.chunk(doc)] == [c.chunk_id for c in chunker.chunk(doc)]
    assert chunker.describe() == {
        "chunker": 1,
        "tokenizer": "wordpiece-minilm-l6",
        "max_tokens": 200,
        "overlap_tokens": 40,
        "min_fill": 0.5,
    }
    assert len(chunker.chunk_many([doc, doc])) == 2 * len(chunker.chunk(doc))


@pytest.mark.parametrize(
    ("max_tokens", "overlap", "fill"), [(0, 0, 0.5), (10, 10, 0.5), (10, -1, 0.5), (10, 2, 1.5)]
)
def test_config_is_validated(max_tokens: int, overlap: int, fill: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        ChunkingConfig(max_tokens, overlap, fill)


def test_chunk_offsets_must_fit_its_text() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        Chunk("c", "d", 0, "abc", 0, 4, (), 1)
