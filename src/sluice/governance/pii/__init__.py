"""Personal data (PII): detection, redaction, and a sealed vault for reversible pseudonyms.

The contract the model gateway calls before every model call
=============================================================

``scan(text) -> PiiScan``
    What personal data ``text`` holds: ``findings`` (entity type, start, end
    exclusive, score, recognizer; non-overlapping, in text order) and
    ``data_classes`` (``{"pii"}`` when anything was found, else empty). Pure, offline,
    thread-safe; about 2,000-3,000 short texts a second on one core (docs/pii.md).
    It never raises for any ``str``.

``redact(text, mode, *, vault=None, actor="system", tagger=None) -> Redacted``
    ``text`` with each finding replaced: ``mask`` (``<EMAIL>``), ``tag``
    (``<EMAIL_1>``, the same value always the same tag within a text, or within an
    item when a :class:`Tagger` is shared) or ``pseudonymize`` (tags, and the mapping
    sealed in the vault; ``Redacted.ref`` names it). ``Redacted.mapping`` (tag ->
    value) stays in memory for :func:`restore` on the model's answer.
    Raises :class:`~sluice.errors.PiiError` for ``pseudonymize`` without a vault.

``open_vault(settings, store).reveal(ref, principal) -> dict``
    The sealed mapping, for a principal whose role holds ``pii:reveal`` and who has
    PII clearance; :class:`~sluice.errors.PermissionDeniedError` (audited) otherwise.

Entity types: PERSON, EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, IBAN_CODE, US_SSN,
NATIONAL_ID, IP_ADDRESS, DATE_OF_BIRTH, STREET_ADDRESS (see docs/pii.md for how each
is found and how well).

Example:
    >>> scan("Mail jo@example.com about order 55012").data_classes
    frozenset({'pii'})
    >>> redact("Mail jo@example.com about order 55012", "tag").text
    'Mail <EMAIL_1> about order 55012'
"""

from __future__ import annotations

from sluice.governance.pii.detector import (
    DEFAULT_MIN_SCORE,
    RECOGNIZERS,
    Detector,
    default_detector,
)
from sluice.governance.pii.findings import ENTITY_TYPES, Finding, PiiScan, resolve_overlaps
from sluice.governance.pii.redaction import (
    LABELS,
    MODES,
    Mode,
    Redacted,
    Tagger,
    redact,
    redact_value,
    restore,
)
from sluice.governance.pii.vault import PiiVault, generate_key, open_vault, vault_keys

__all__ = [
    "DEFAULT_MIN_SCORE",
    "ENTITY_TYPES",
    "LABELS",
    "MODES",
    "RECOGNIZERS",
    "Detector",
    "Finding",
    "Mode",
    "PiiScan",
    "PiiVault",
    "Redacted",
    "Tagger",
    "default_detector",
    "generate_key",
    "open_vault",
    "redact",
    "redact_value",
    "resolve_overlaps",
    "restore",
    "scan",
    "vault_keys",
]

#: The data class reported when any personal data is found.
PII_CLASS = "pii"


def scan(text: str) -> PiiScan:
    """What personal data ``text`` holds (the gateway's check; see the module docs).

    Example:
        >>> scan("nothing personal here").has_pii
        False
    """
    findings = tuple(default_detector().detect(text))
    return PiiScan(findings, frozenset({PII_CLASS}) if findings else frozenset())
