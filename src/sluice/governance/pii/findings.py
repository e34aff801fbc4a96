"""What the detector reports: one :class:`Finding` per span of personal data.

Entity types are plain strings (the names Presidio and its evaluation data use, so
figures compare); :data:`ENTITY_TYPES` lists the ones Sluice detects. Overlapping
findings are resolved by :func:`resolve_overlaps`: the higher score wins, then the
longer span, so a card number inside a longer phone-like run is reported once.

Example:
    >>> f = Finding("EMAIL_ADDRESS", 5, 19, 1.0, "email")
    >>> "mail jo@example.com"[f.start : f.end]
    'jo@example.com'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ENTITY_TYPES", "Finding", "PiiScan", "resolve_overlaps"]

#: Every entity type the detector can report.
ENTITY_TYPES: tuple[str, ...] = (
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "NATIONAL_ID",
    "IP_ADDRESS",
    "DATE_OF_BIRTH",
    "STREET_ADDRESS",
)


@dataclass(frozen=True)
class Finding:
    """One span of personal data in a text.

    Attributes:
        entity_type: One of :data:`ENTITY_TYPES`, e.g. ``"EMAIL_ADDRESS"``.
        start: Offset of the first character.
        end: Offset after the last character (exclusive), so ``text[start:end]``.
        score: Confidence between 0 and 1 (1: a checksum or a syntax that cannot lie).
        recognizer: Which recognizer found it (``"luhn"``, ``"phonenumbers"`` ...).

    Example:
        >>> Finding("US_SSN", 0, 11, 0.85, "us_ssn").length
        11
    """

    entity_type: str
    start: int
    end: int
    score: float
    recognizer: str

    @property
    def length(self) -> int:
        """Characters covered."""
        return self.end - self.start

    def to_dict(self) -> dict[str, object]:
        """A JSON-safe description (no text: findings may be logged)."""
        return {
            "entity_type": self.entity_type,
            "start": self.start,
            "end": self.end,
            "score": round(self.score, 3),
            "recognizer": self.recognizer,
        }


@dataclass(frozen=True)
class PiiScan:
    """The result of :func:`~sluice.governance.pii.scan`: findings and data classes.

    Attributes:
        findings: Non-overlapping findings, in text order.
        data_classes: The classes of data present, e.g. ``frozenset({"pii"})``; empty
            when nothing was found. What a data policy compares with an endpoint's
            allowed classes.

    Example:
        >>> PiiScan((), frozenset()).has_pii
        False
    """

    findings: tuple[Finding, ...]
    data_classes: frozenset[str]

    @property
    def has_pii(self) -> bool:
        """Whether anything was found."""
        return bool(self.findings)

    @property
    def entity_types(self) -> frozenset[str]:
        """The entity types found."""
        return frozenset(f.entity_type for f in self.findings)


def resolve_overlaps(findings: Iterable[Finding]) -> list[Finding]:
    """Keep the best of overlapping findings, in text order.

    Higher score first, then the longer span, then the earlier one.

    >>> a = Finding("PHONE_NUMBER", 0, 16, 0.6, "phonenumbers")
    >>> b = Finding("CREDIT_CARD", 0, 16, 1.0, "luhn")
    >>> [f.entity_type for f in resolve_overlaps([a, b])]
    ['CREDIT_CARD']
    """
    ranked = sorted(findings, key=lambda f: (-f.score, -f.length, f.start))
    kept: list[Finding] = []
    for cand in ranked:
        if all(cand.end <= k.start or cand.start >= k.end for k in kept):
            kept.append(cand)
    return sorted(kept, key=lambda f: (f.start, f.end))
