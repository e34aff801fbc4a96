"""PII detection: each entity type in a realistic sentence, and no hit on what is not PII."""

from __future__ import annotations

import itertools

import pytest

from sluice.errors import PiiError
from sluice.governance.pii import Detector, scan


def _found(text: str) -> list[tuple[str, str]]:
    return [(f.entity_type, text[f.start : f.end]) for f in scan(text).findings]


@pytest.mark.parametrize(
    ("text", "entity_type", "value"),
    [
        (
            "Please reply to maria.lopez@example.org today.",
            "EMAIL_ADDRESS",
            "maria.lopez@example.org",
        ),
        ("You can reach me on +44 20 7946 0958 after five.", "PHONE_NUMBER", "+44 20 7946 0958"),
        ("Call our desk at (212) 555-0143 tomorrow.", "PHONE_NUMBER", "(212) 555-0143"),
        ("My card 4111 1111 1111 1111 was charged twice.", "CREDIT_CARD", "4111 1111 1111 1111"),
        (
            "Refund to IBAN DE89 3704 0044 0532 0130 00 please.",
            "IBAN_CODE",
            "DE89 3704 0044 0532 0130 00",
        ),
        ("Here's my SSN: 536-22-1845, as you asked.", "US_SSN", "536-22-1845"),
        ("Mijn BSN is 111222333 voor de aanvraag.", "NATIONAL_ID", "111222333"),
        ("Login failed from 192.168.14.201 twice.", "IP_ADDRESS", "192.168.14.201"),
        (
            "Login from 2001:db8::8a2e:370:7334 was blocked.",
            "IP_ADDRESS",
            "2001:db8::8a2e:370:7334",
        ),
        ("She was born on 14 March 1987 in Lyon.", "DATE_OF_BIRTH", "14 March 1987"),
        ("Date of birth: 02/11/1979", "DATE_OF_BIRTH", "02/11/1979"),
        (
            "Please ship it to 3784 Archwood Avenue, Springfield, IL 62704.",
            "STREET_ADDRESS",
            "3784 Archwood Avenue, Springfield, IL 62704",
        ),
        ("Our office moved to Kiannonkatu 98, Oulu.", "STREET_ADDRESS", "Kiannonkatu 98, Oulu"),
        ("Send the forms to P.O. Box 242 by Friday.", "STREET_ADDRESS", "P.O. Box 242"),
        ("I spoke with Dr. Meagan Wallace about the claim.", "PERSON", "Meagan Wallace"),
        ("Yesterday Krisztina Varga signed the contract.", "PERSON", "Krisztina Varga"),
        ("Hello, my name is Rubija and I need help.", "PERSON", "Rubija"),
    ],
)
def test_each_entity_type_is_found_in_a_sentence(text: str, entity_type: str, value: str) -> None:
    assert (entity_type, value) in _found(text)


@pytest.mark.parametrize(
    "text",
    [
        "Order 1234567890123 shipped on 2024-03-01, total 1,299.00 EUR.",
        "Invoice INV-2023-00042 for 12 units at 45.50 each, due 30/04/2024.",
        "Ticket 88231 was escalated at 10:30 on Monday 3 June.",
        "The build 4.12.1 fixed 17 issues; see step 3 on page 12.",
        "Meeting on Floor 4 at Gate 12, room 301, between 9 and 11.",
        "The parcel weighs 2.5 kg and costs 1234.56 USD incl. VAT 19%.",
        "Our revenue grew 12% in 2023 to 4,500,000 dollars.",
    ],
)
def test_order_numbers_dates_and_amounts_are_not_pii(text: str) -> None:
    assert _found(text) == []


def test_a_digit_run_failing_the_luhn_check_is_not_a_card() -> None:
    assert _found("card 4111 1111 1111 1112 declined") == []


def test_an_iban_with_a_wrong_check_digit_is_not_found() -> None:
    assert not [t for t, _ in _found("IBAN DE88 3704 0044 0532 0130 00") if t == "IBAN_CODE"]


def test_ssn_rules_reject_impossible_numbers() -> None:
    for bad in ("000-12-3456", "666-12-3456", "912-12-3456", "123-00-4567", "123-45-0000"):
        assert ("US_SSN", bad) not in _found(f"SSN: {bad}")


def test_a_date_without_a_birth_cue_is_not_a_date_of_birth() -> None:
    assert _found("The invoice is dated 14 March 1987.") == []


def test_offsets_are_end_exclusive_and_findings_do_not_overlap() -> None:
    text = "Mail ana@example.com or call +1 415 555 0132; card 4111111111111111."
    findings = scan(text).findings
    assert [f.entity_type for f in findings] == ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD"]
    for a, b in itertools.pairwise(findings):
        assert a.end <= b.start
    assert text[findings[0].start : findings[0].end] == "ana@example.com"
    assert all(0 < f.score <= 1 and f.recognizer for f in findings)


def test_scan_reports_the_pii_data_class_only_when_something_is_found() -> None:
    assert scan("jo@example.com").data_classes == frozenset({"pii"})
    assert scan("nothing personal in here").data_classes == frozenset()
    assert scan("").findings == ()


def test_a_detector_limited_to_some_types_reports_only_those() -> None:
    text = "Mail ana@example.com, call +44 20 7946 0958"
    found = Detector(entities={"PHONE_NUMBER"}).detect(text)
    assert [f.entity_type for f in found] == ["PHONE_NUMBER"]


def test_an_unknown_entity_type_is_a_clear_error() -> None:
    with pytest.raises(PiiError, match="unknown PII entity types: NOPE"):
        Detector(entities={"NOPE"})


def test_a_long_text_is_scanned_whole() -> None:
    text = ("filler words here. " * 6000) + "write to jo@example.com"
    found = scan(text).findings
    assert [(f.entity_type, text[f.start : f.end]) for f in found] == [
        ("EMAIL_ADDRESS", "jo@example.com")
    ]


@pytest.mark.parametrize(
    ("text", "entity_type", "value"),
    [
        ("card 4111\u00a01111\u00a01111\u00a01111 ok", "CREDIT_CARD", "4111\u00a01111\u00a01111\u00a01111"),  # noqa: E501
        ("mail jo\uff20example.com today", "EMAIL_ADDRESS", "jo\uff20example.com"),
        ("mail jo\u200b@example.com now", "EMAIL_ADDRESS", "jo\u200b@example.com"),
        ("SSN 536\u00a022\u00a01845 as asked", "US_SSN", "536\u00a022\u00a01845"),
    ],
)  # fmt: skip
def test_copy_paste_forms_are_found_with_offsets_into_the_text_as_given(
    text: str, entity_type: str, value: str
) -> None:
    assert (entity_type, value) in _found(text)
