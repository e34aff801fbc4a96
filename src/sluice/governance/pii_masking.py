"""Masking personal data in text shown to people without PII clearance.

A thin wrapper over the detector of :mod:`sluice.governance.pii` (``mask`` mode): each
finding is replaced by its type, e.g. ``<EMAIL>``, ``<PHONE>``, ``<PERSON>``. Kept for the
web and API edges that call it.

>>> mask_text("mail jo@example.com or call +44 20 7946 0958")
'mail <EMAIL> or call <PHONE>'
"""

from __future__ import annotations

from typing import Any

from sluice.governance.pii import redact, redact_value

__all__ = ["MAX_MASKED_CHARS", "mask_text", "mask_value"]

#: Longest text masked; beyond it the text is cut (a reviewer never needs more).
MAX_MASKED_CHARS = 50_000


def mask_text(text: str) -> str:
    """``text`` with every kind of personal data the detector knows masked."""
    if len(text) > MAX_MASKED_CHARS:
        text = text[:MAX_MASKED_CHARS] + " [cut]"
    return redact(text, "mask").text


def mask_value(value: Any) -> Any:
    """Every string inside a JSON value masked (dict keys are kept as they are)."""
    return redact_value(value, "mask")[0]
