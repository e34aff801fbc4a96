"""Token counters: the packaged WordPiece tokenizer, and the approximation beside it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from knowledge_helpers import KB

from sluice.knowledge import ApproxTokenCounter, TokenCounter, read_sources

WORDS = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc", "Z"]),
    min_size=1,
    max_size=12,
)


def test_wordpiece_counts_without_special_tokens_and_without_truncation(
    wordpiece: TokenCounter,
) -> None:
    assert wordpiece.count("") == 0
    assert wordpiece.count("world") == 1
    assert wordpiece.count("Hello, world!") == 4
    long = "word " * 1_000
    assert wordpiece.count(long) == 1_000, "the file's 128-token truncation is off"
    assert wordpiece.count_many(["a b", "", "refund"]) == [2, 0, 2]
    assert wordpiece.name == "wordpiece-minilm-l6"


@settings(max_examples=60, deadline=None)
@given(st.lists(WORDS, min_size=1, max_size=8), st.sampled_from([" ", "\n", "  \n\t"]))
def test_both_counters_add_up_over_whitespace(
    wordpiece: TokenCounter, words: list[str], space: str
) -> None:
    for counter in (wordpiece, ApproxTokenCounter()):
        joined = counter.count(space.join(words))
        assert joined == sum(counter.count(w) for w in words)


def test_the_approximation_does_not_undercount_the_demo_knowledge_base(
    wordpiece: TokenCounter,
) -> None:
    texts = [d.text for d in read_sources(KB, exclude=["README.md"]).documents]
    real = sum(wordpiece.count_many(texts))
    approx = sum(ApproxTokenCounter().count_many(texts))
    assert real <= approx <= 1.3 * real
