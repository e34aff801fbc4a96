"""Redaction modes: mask, tag (stable within a text and an item), and restore."""

from __future__ import annotations

import pytest

from sluice.errors import PiiError
from sluice.governance.pii import redact, redact_value, restore
from sluice.governance.pii_masking import mask_text, mask_value

TEXT = "Ana Costa (ana@example.com) asked us to write to ana@example.com or bo@example.com."


def test_mask_replaces_each_value_by_its_type() -> None:
    out = redact("mail jo@example.com or call +44 20 7946 0958", "mask")
    assert out.text == "mail <EMAIL> or call <PHONE>"
    assert out.mapping is None and out.ref is None
    assert [f.entity_type for f in out.findings] == ["EMAIL_ADDRESS", "PHONE_NUMBER"]


def test_tags_are_stable_within_a_text() -> None:
    out = redact(TEXT, "tag")
    assert out.text == ("<PERSON_1> (<EMAIL_1>) asked us to write to <EMAIL_1> or <EMAIL_2>.")
    assert out.mapping == {
        "<PERSON_1>": "Ana Costa",
        "<EMAIL_1>": "ana@example.com",
        "<EMAIL_2>": "bo@example.com",
    }


def test_tags_are_stable_across_the_strings_of_one_item() -> None:
    item = {"subject": "From bo@example.com", "body": ["hi", "reply to bo@example.com"], "n": 3}
    redacted, info = redact_value(item, "tag")
    assert redacted == {"subject": "From <EMAIL_1>", "body": ["hi", "reply to <EMAIL_1>"], "n": 3}
    assert info.mapping == {"<EMAIL_1>": "bo@example.com"}


def test_restore_puts_the_values_back() -> None:
    out = redact(TEXT, "tag")
    assert out.mapping is not None
    assert restore(out.text, out.mapping) == TEXT
    assert restore("<EMAIL_9> stays", out.mapping) == "<EMAIL_9> stays"


def test_text_without_pii_is_unchanged() -> None:
    text = "Order 55012 ships on 2024-05-02 for 12.50 EUR."
    assert redact(text, "tag").text == text


def test_pseudonymize_without_a_vault_is_refused() -> None:
    with pytest.raises(PiiError, match="needs a vault"):
        redact(TEXT, "pseudonymize")


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(PiiError, match="unknown redaction mode"):
        redact(TEXT, "scramble")  # type: ignore[arg-type]


def test_the_masking_wrapper_used_by_web_and_api_still_works() -> None:
    assert mask_text("card 4111 1111 1111 1111, IBAN GB82 WEST 1234 5698 7654 32") == (
        "card <CARD>, IBAN <IBAN>"
    )
    assert mask_value({"to": ["jo@example.com"], "n": 1}) == {"to": ["<EMAIL>"], "n": 1}
    assert mask_text("x" * 60_000).endswith(" [cut]")
