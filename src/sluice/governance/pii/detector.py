"""The detector: every recognizer over one text, overlaps resolved, a score threshold.

:class:`Detector` runs the recognizers of :data:`RECOGNIZERS` (or a subset), drops
findings below ``min_score`` and keeps the best of overlapping ones. It holds no state
but the name gazetteer (loaded once per process, on the first text with a capitalized
word), so one instance serves every thread.

Example:
    >>> d = Detector()
    >>> [f.entity_type for f in d.detect("Mail jo@example.com, IBAN GB82 WEST 1234 5698 7654 32")]
    ['EMAIL_ADDRESS', 'IBAN_CODE']
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Collection
from functools import lru_cache

from sluice.errors import PiiError
from sluice.governance.pii.addresses import find_addresses
from sluice.governance.pii.dates import find_dates_of_birth
from sluice.governance.pii.findings import ENTITY_TYPES, Finding, resolve_overlaps
from sluice.governance.pii.names import find_names
from sluice.governance.pii.patterns import (
    find_cards,
    find_emails,
    find_ibans,
    find_ips,
    find_national_ids,
    find_us_ssns,
)
from sluice.governance.pii.phones import find_phones

__all__ = ["DEFAULT_MIN_SCORE", "MAX_SCAN_CHARS", "RECOGNIZERS", "Detector", "default_detector"]

Recognizer = Callable[[str], list[Finding]]

#: Every recognizer, by name, with the entity types it reports.
RECOGNIZERS: dict[str, tuple[Recognizer, tuple[str, ...]]] = {
    "email": (find_emails, ("EMAIL_ADDRESS",)),
    "phone": (find_phones, ("PHONE_NUMBER",)),
    "card": (find_cards, ("CREDIT_CARD",)),
    "iban": (find_ibans, ("IBAN_CODE",)),
    "us_ssn": (find_us_ssns, ("US_SSN",)),
    "national_id": (find_national_ids, ("NATIONAL_ID",)),
    "ip": (find_ips, ("IP_ADDRESS",)),
    "date_of_birth": (find_dates_of_birth, ("DATE_OF_BIRTH",)),
    "address": (find_addresses, ("STREET_ADDRESS",)),
    "name": (find_names, ("PERSON",)),
}
#: Findings scored below this are dropped (a single known name mid-sentence scores 0.5).
DEFAULT_MIN_SCORE = 0.5
#: Longest text scanned in one piece; longer texts are scanned in overlapping windows.
MAX_SCAN_CHARS = 100_000
_OVERLAP = 200


class Detector:
    """Finds personal data in text.

    Args:
        entities: Entity types to report (default: all of :data:`ENTITY_TYPES`).
        min_score: Findings scored below it are dropped.

    Raises:
        PiiError: An unknown entity type was asked for.

    Example:
        >>> Detector(entities={"PERSON"}).detect("Call +44 20 7946 0958")
        []
    """

    def __init__(
        self, entities: Collection[str] | None = None, min_score: float = DEFAULT_MIN_SCORE
    ) -> None:
        wanted = set(ENTITY_TYPES if entities is None else entities)
        unknown = wanted - set(ENTITY_TYPES)
        if unknown:
            raise PiiError(
                f"unknown PII entity types: {', '.join(sorted(unknown))}",
                hint=f"choose among {', '.join(ENTITY_TYPES)}",
            )
        self.entities = frozenset(wanted)
        self.min_score = min_score
        self._recognizers = [
            fn for fn, types in RECOGNIZERS.values() if self.entities.intersection(types)
        ]

    def detect(self, text: str) -> list[Finding]:
        """Non-overlapping findings in ``text``, in text order."""
        if not text:
            return []
        if len(text) > MAX_SCAN_CHARS:
            return self._detect_long(text)
        plain, index = _plain(text)
        found = [
            f
            for fn in self._recognizers
            for f in fn(plain)
            if f.entity_type in self.entities and f.score >= self.min_score
        ]
        if index is not None:  # offsets back into the text as given
            found = [
                Finding(f.entity_type, index[f.start], index[f.end - 1] + 1, f.score, f.recognizer)
                for f in found
            ]
        return resolve_overlaps(found)

    def _detect_long(self, text: str) -> list[Finding]:
        # Windows overlap so that a value cut by one window is whole in the next.
        found: list[Finding] = []
        step = MAX_SCAN_CHARS - _OVERLAP
        for offset in range(0, len(text), step):
            window = text[offset : offset + MAX_SCAN_CHARS]
            found.extend(
                Finding(f.entity_type, f.start + offset, f.end + offset, f.score, f.recognizer)
                for f in self.detect(window)
            )
        return resolve_overlaps(found)


def _plain(text: str) -> tuple[str, list[int] | None]:
    """What the recognizers read, and where each of its characters was in ``text``.

    Copy-paste hides data from patterns: zero-width characters inside an e-mail
    address, no-break spaces between card digits, a fullwidth at sign. So invisible
    format characters (Cf) are dropped, every space separator (Zs) becomes a space and
    each character is folded to its compatibility form (NFKC) when that is one
    character. None when ``text`` is ASCII (nothing to do).
    """
    if text.isascii():
        return text, None
    chars: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        category = unicodedata.category(ch)
        if category == "Cf":
            continue
        if category == "Zs":
            ch = " "
        else:
            folded = unicodedata.normalize("NFKC", ch)
            ch = folded if len(folded) == 1 else ch
        chars.append(ch)
        index.append(i)
    return "".join(chars), index


@lru_cache(maxsize=1)
def default_detector() -> Detector:
    """The process-wide detector with every entity type and the default threshold."""
    return Detector()
