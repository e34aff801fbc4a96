"""The pure parts of retrieval: analysis, filters, fusion, the in-memory vector matrix."""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
import snowballstemmer

from sluice.errors import InvalidFilterError
from sluice.knowledge import ANALYZER, Filter, FusionConfig, parse_filter
from sluice.knowledge.analysis import analyzer_named
from sluice.knowledge.search import fuse
from sluice.knowledge.vector_index import VectorMatrix


def test_the_analyzer_folds_splits_drops_stop_words_and_stems() -> None:
    assert ANALYZER.terms("The Customers' REFUNDS, refunded_twice; naïve café") == [
        "custom",
        "refund",
        "refund",
        "twice",
        "naïv",
        "café",
    ]
    assert ANALYZER.query_terms("refund refunds refunded") == ["refund"]
    assert analyzer_named("plain-1").terms("Running dogs") == ["running", "dogs"]
    assert ANALYZER.terms("") == [] and ANALYZER.terms("the of and") == []


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Threads switch as often as the interpreter allows: races show up at once."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def test_threads_get_the_same_stems_as_one_thread(busy_switching: None) -> None:
    # Words this process has not stemmed before (the stems are cached), with the suffixes
    # Porter works hardest on. A stemmer shared by threads returned other threads' stems
    # and raised IndexError here.
    salt = "".join(c for c in uuid.uuid4().hex if c.isalpha())[:4]
    stems = ["nation", "relat", "condition", "organ", "hope", "sens", "oper", "digit"]
    suffixes = ["al", "ization", "izing", "ational", "fulness", "iveness", "ically", "ement"]
    words = [f"{salt}{a}{b}{c}" for a in stems for b in suffixes for c in ("", "s", "ness", "ly")]
    single = snowballstemmer.stemmer("porter")
    expected = {w: single.stemWord(w) for w in words}
    got: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def stem(part: list[str]) -> None:
        try:
            for word in part:
                got[word] = ANALYZER.terms(word)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=stem, args=(words[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert got == {w: [s] for w, s in expected.items()}


@pytest.mark.parametrize(
    ("text", "metadata", "expected"),
    [
        ("product=billing", {"product": "billing"}, True),
        ("product=billing", {"product": "returns"}, False),
        ("product=billing", {}, False),
        ("product=billing,returns", {"product": "returns"}, True),
        ("tags=refund", {"tags": ("billing", "refund")}, True),
        ("tags=a,b", {"tags": ("c",)}, False),
        ("priority>=2", {"priority": 3}, True),
        ("priority>=2", {"priority": "10"}, True),  # numbers compare as numbers
        ("priority<2", {"priority": 2}, False),
        ("updated>=2026-01-01", {"updated": "2026-01-01"}, True),
        ("updated>2026-01-01", {"updated": "2026-01-01T00:00:01+00:00"}, True),
        ("updated<=2026-01-01", {"updated": "someday"}, False),
        ("updated>=2026-01-01", {"updated": ("2026-05-01",)}, False),
        ("draft=true", {"draft": True}, True),
        ("version=2", {"version": 2.0}, True),
    ],
)
def test_filters(text: str, metadata: dict[str, object], expected: bool) -> None:
    assert parse_filter(text).matches(metadata) is expected


def test_filters_read_back_as_written_and_bad_ones_say_how() -> None:
    assert str(parse_filter("updated >= 2026-01-01")) == "updated>=2026-01-01"
    assert Filter.any_of("product", ["a", "b"]).to_dict() == {
        "key": "product",
        "op": "in",
        "values": ["a", "b"],
    }
    for bad in ("product", "=billing", "product="):
        with pytest.raises(InvalidFilterError) as info:
            parse_filter(bad)
        assert info.value.hint and "key=value" in info.value.hint


def test_reciprocal_rank_fusion_weights_and_ties() -> None:
    fused = fuse({1: 1, 2: 2}, {2: 1, 3: 2}, FusionConfig(k=60))
    assert [c for c, _ in fused] == [2, 1, 3]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)
    only_dense = fuse({1: 1}, {2: 1}, FusionConfig(bm25_weight=0.0))
    assert [c for c, _ in only_dense] == [2, 1]
    tie = fuse({5: 1}, {4: 1}, FusionConfig())  # same score: better single rank, then id
    assert [c for c, _ in tie] == [4, 5]
    with pytest.raises(ValueError):
        FusionConfig(k=-1)
    assert FusionConfig().pool(10) == 100 and FusionConfig().pool(80) == 160


def test_the_vector_matrix_is_exact_and_filters_exactly() -> None:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((500, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks = np.arange(1000, 1500, dtype=np.int64)
    documents = chunks % 10
    matrix = VectorMatrix(chunks, documents, vectors, generation=1)
    query = vectors[42]
    top = matrix.search(query, 10)
    expected = chunks[np.argsort(-(vectors @ query), kind="stable")[:10]]
    assert [c for c, _ in top] == list(expected)
    assert top[0] == (1042, pytest.approx(1.0))
    only = matrix.search(query, 10, documents=[3])
    assert len(only) == 10 and all(c % 10 == 3 for c, _ in only)
    assert matrix.search(query, 10, documents=[]) == []
    assert len(matrix.search(query, 10_000)) == 500
    assert VectorMatrix.empty().search(query, 5) == []
