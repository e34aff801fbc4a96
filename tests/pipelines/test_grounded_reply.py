"""Grounded replies: which citations make a reply grounded, and what a canned reply says."""

from __future__ import annotations

import pytest

from sluice.pipelines.support_triage.grounded_reply import (
    Passage,
    canned_reply,
    check_reply,
)

ARTICLE = Passage(
    "c-article",
    "refund-timing.md",
    "Refunds",
    "# When will I get my refund?\n\nWithin 3 business days of the return.\n\nBanks add 5.",
    0.9,
    ("refund_status",),
)
OTHER = Passage(
    "c-other", "wrong-item.md", "Wrong item", "We send the right one.", 0.95, ("wrong_item",)
)
FAQ = Passage("c-faq", "faq.csv", "Refund time?", "Q: Refund time?\nA: 3 business days.", 0.5)


@pytest.mark.parametrize(
    ("text", "cited", "problem"),
    [
        ("Refunds take 3 days [1]. Banks add 5 [2].", ("c-article", "c-faq"), None),
        ("Refunds take 3 days [2][2].", ("c-faq",), None),
        ("Refunds take 3 days.", (), "the reply cites no source"),
        ("See [1] and [7].", (), "the reply cites source [7], which was not retrieved"),
        ("See [0].", (), "the reply cites source [0], which was not retrieved"),
        ("3 days [1]. Details: [S3]", (), "the reply has a citation it cannot be held to: [S3]"),
        ("3 days [1] and [7 ].", (), "the reply has a citation it cannot be held to: [7 ]"),
        ("Call +1 555 0100 [1].", (), "the reply states +1 555 0100, which none"),
        ("Mail evil@x.example [1].", (), "the reply states evil@x.example, which none"),
        ("Wire $500 [1].", (), "the reply states $500, which none"),
        ("See http://evil.example/pay [2].", (), "the reply states http://evil.example/pay"),
        ("Within 3 business days [1].", ("c-article",), None),
    ],
)
def test_a_reply_is_grounded_only_by_retrieved_sources(
    text: str, cited: tuple[str, ...], problem: str | None
) -> None:
    checked = check_reply(text, [ARTICLE, FAQ])
    assert checked.cited == cited
    assert (checked.problem or "").startswith(problem or "")
    assert checked.grounded == (problem is None)


def test_a_canned_reply_answers_from_a_passage_written_for_the_intent() -> None:
    drafted = canned_reply([OTHER, FAQ, ARTICLE], "refund_status")
    assert drafted is not None and drafted.cited == ("c-article",)
    assert "Within 3 business days of the return. [3]" in drafted.text
    assert "#" not in drafted.text
    assert check_reply(drafted.text, [OTHER, FAQ, ARTICLE]).cited == ("c-article",)


def test_without_one_an_faq_entry_answers_and_never_another_intent_s_article() -> None:
    drafted = canned_reply([OTHER, FAQ], "refund_status")
    assert drafted is not None and drafted.cited == ("c-faq",)
    assert "3 business days. [2]" in drafted.text
    assert canned_reply([OTHER], "refund_status") is None
    assert canned_reply([], "refund_status") is None


def test_a_cut_off_reply_is_not_grounded() -> None:
    checked = check_reply("Refunds take 3 days [1] and", [ARTICLE], finish_reason="length")
    assert not checked.grounded and "cut off" in (checked.problem or "")


def test_facts_in_the_cited_source_may_be_repeated() -> None:
    priced = Passage("c-price", "faq.csv", "Plans", "Q: Cost?\nA: Summit is $79 a month.", 1.0)
    assert check_reply("Summit costs $ 79 [1].", [priced]).grounded
    assert not check_reply("Summit costs $79 [2].", [priced, ARTICLE]).grounded
