"""Masking obvious personal data in text shown to people without PII clearance.

A first cut by pattern: e-mail addresses, payment cards (13-19 digits passing the Luhn
check), IBANs, IPv4 addresses and phone numbers (7 or more digits with a leading ``+``
or several groups; not dates or bare order numbers). It does not find names or postal
addresses; the PII issue (control plane II) replaces this with a full detector and
reversible pseudonymization. What is masked is replaced by its type, e.g. ``<EMAIL>``.

>>> mask_text("mail jo@example.com or call +44 20 7946 0958")
'mail <EMAIL> or call <PHONE>'
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MAX_MASKED_CHARS", "mask_text", "mask_value"]

# Bounded and anchored on what precedes it, so a long run without "@" stays linear.
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}")
#: Longest text masked; beyond it the text is cut (a reviewer never needs more).
MAX_MASKED_CHARS = 50_000
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
_IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")
_PHONE = re.compile(r"(?<![\w])\+?\(?\d[\d ()./-]{5,}\d(?![\w])")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return "<CARD>" if _luhn(digits) else match.group()


_DATE = re.compile(r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}$|^\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}$")


def _phone(match: re.Match[str]) -> str:
    """A phone number: 7+ digits, and a leading + or ( or at least two separated groups.

    A bare run of digits (an order number) and a date are left alone.
    """
    found = match.group()
    digits = re.sub(r"\D", "", found)
    groups = len(re.findall(r"\d+", found))
    looks_like = found.startswith(("+", "(")) or groups >= 3
    if len(digits) < 7 or not looks_like or _DATE.match(found):
        return found
    return "<PHONE>"


def mask_text(text: str) -> str:
    """``text`` with e-mails, cards, IBANs, IP addresses and phone numbers masked."""
    if len(text) > MAX_MASKED_CHARS:
        text = text[:MAX_MASKED_CHARS] + " [cut]"
    if "@" in text:
        text = _EMAIL.sub("<EMAIL>", text)
    text = _IBAN.sub("<IBAN>", text)
    text = _CARD.sub(_card, text)
    text = _IPV4.sub("<IP>", text)
    return _PHONE.sub(_phone, text)


def mask_value(value: Any) -> Any:
    """Every string inside a JSON value masked (dict keys are kept as they are)."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: mask_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_value(v) for v in value]
    return value
