"""Dates of birth: a date written near "born", "birth", "DOB" or "birthday".

A date alone is not personal data (an invoice date, a delivery date); a date of birth
is. So a date counts only when one of those words comes shortly before it.

Example:
    >>> [f.entity_type for f in find_dates_of_birth("She was born on 8/5/1989 in Oslo.")]
    ['DATE_OF_BIRTH']
    >>> find_dates_of_birth("Invoice dated 8/5/2023, total 120.00")
    []
"""

from __future__ import annotations

import re

from sluice.governance.pii.findings import Finding

__all__ = ["find_dates_of_birth"]

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DATE = re.compile(
    r"\b(?:\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})"
    r"|\d{4}-\d{2}-\d{2}"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH},?\s+\d{{4}}"
    rf"|{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}})\b",
    re.IGNORECASE,
)
_CONTEXT = re.compile(
    r"\b(?:born|birth|dob|d\.o\.b|birthday|date of birth|geboren|né|née)\b", re.IGNORECASE
)
_WINDOW = 40


def find_dates_of_birth(text: str) -> list[Finding]:
    """Dates within a few words after a birth cue (score 0.85)."""
    if not _CONTEXT.search(text):
        return []
    out = []
    for m in _DATE.finditer(text):
        if _CONTEXT.search(text, max(0, m.start() - _WINDOW), m.start()):
            out.append(Finding("DATE_OF_BIRTH", m.start(), m.end(), 0.85, "birth_context"))
    return out
