"""Redaction: replace what the detector found, in one of three modes.

=============  ==========================================  ==================
mode           ``mail jo@example.com`` becomes              reversible
=============  ==========================================  ==================
``mask``       ``mail <EMAIL>``                             no
``tag``        ``mail <EMAIL_1>`` (same value, same tag)    no
``pseudonymize``  ``mail <EMAIL_1>``, and the mapping          yes, by whoever may
               ``{"<EMAIL_1>": "jo@example.com"}`` sealed   ``pii:reveal``
               in the vault (:mod:`.vault`)
=============  ==========================================  ==================

Tags are numbered per entity type in order of first appearance; a :class:`Tagger`
carries the numbering across the strings of one item (:func:`redact_value`), so the
same e-mail in a subject and a body gets the same tag. A model can be asked to keep
tags as they are and its answer put back with :func:`restore`.

Example:
    >>> redact("Ana Costa (ana@example.com) wrote to ana@example.com", "tag").text
    '<PERSON_1> (<EMAIL_1>) wrote to <EMAIL_1>'
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

from sluice.errors import PiiError
from sluice.governance.pii.detector import Detector, default_detector
from sluice.governance.pii.findings import Finding

if TYPE_CHECKING:
    from sluice.governance.pii.vault import PiiVault

__all__ = ["LABELS", "MODES", "Mode", "Redacted", "Tagger", "redact", "redact_value", "restore"]

Mode = Literal["mask", "tag", "pseudonymize"]
MODES: tuple[Mode, ...] = get_args(Mode)
#: The short label of each entity type in masks and tags.
LABELS: dict[str, str] = {
    "PERSON": "PERSON",
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CARD",
    "IBAN_CODE": "IBAN",
    "US_SSN": "SSN",
    "NATIONAL_ID": "NATIONAL_ID",
    "IP_ADDRESS": "IP",
    "DATE_OF_BIRTH": "DOB",
    "STREET_ADDRESS": "ADDRESS",
}
_TAG = re.compile(r"<([A-Z_]+)_(\d+)>")


@dataclass
class Tagger:
    """Numbers values per entity type: the same value always gets the same tag.

    Example:
        >>> t = Tagger()
        >>> [t.tag("EMAIL_ADDRESS", v) for v in ("a@x.io", "b@x.io", "a@x.io")]
        ['<EMAIL_1>', '<EMAIL_2>', '<EMAIL_1>']
    """

    tags: dict[tuple[str, str], str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def tag(self, entity_type: str, value: str) -> str:
        """The tag of ``value``, a new one the first time it is seen."""
        label = LABELS.get(entity_type, entity_type)
        key = (label, _normal(value))
        if key not in self.tags:
            self.counts[label] = self.counts.get(label, 0) + 1
            self.tags[key] = f"<{label}_{self.counts[label]}>"
        return self.tags[key]

    def mapping(self, originals: Mapping[str, str]) -> dict[str, str]:
        """Tag -> original value, for the tags handed out (``originals`` by tag)."""
        return dict(originals)


def _normal(value: str) -> str:
    # "Jo@Example.com" and "jo@example.com", "+44 20" and "+4420" are one value.
    return re.sub(r"[\s\-().]", "", value).casefold()


@dataclass(frozen=True)
class Redacted:
    """A redacted text.

    Attributes:
        text: The text with every finding replaced.
        findings: What was replaced, with offsets into the *original* text.
        mapping: Tag -> original value (``tag`` and ``pseudonymize``; None for ``mask``).
            Keep it in memory only: it is the personal data.
        ref: The vault reference of the sealed mapping (``pseudonymize`` only).
    """

    text: str
    findings: tuple[Finding, ...]
    mapping: dict[str, str] | None = None
    ref: str | None = None


def _replace(
    text: str, findings: Sequence[Finding], mode: Mode, tagger: Tagger, mapping: dict[str, str]
) -> str:
    parts: list[str] = []
    pos = 0
    for f in findings:
        value = text[f.start : f.end]
        if mode == "mask":
            label = f"<{LABELS.get(f.entity_type, f.entity_type)}>"
        else:
            label = tagger.tag(f.entity_type, value)
            mapping.setdefault(label, value)
        parts += [text[pos : f.start], label]
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts)


def redact(
    text: str,
    mode: Mode = "tag",
    *,
    detector: Detector | None = None,
    vault: PiiVault | None = None,
    actor: str = "system",
    tagger: Tagger | None = None,
) -> Redacted:
    """``text`` with its personal data replaced (see the module docs for the modes).

    Args:
        text: What to redact.
        mode: ``mask``, ``tag`` or ``pseudonymize``.
        detector: Default: every entity type, default threshold.
        vault: Where ``pseudonymize`` seals the mapping (required for that mode).
        actor: Who asks, recorded with the sealed mapping.
        tagger: Share one to keep tags stable across several texts of one item.

    Returns:
        The redacted text, the findings, and for ``tag``/``pseudonymize`` the mapping
        (and the vault reference for ``pseudonymize``).

    Raises:
        PiiError: Unknown mode, or ``pseudonymize`` without a vault.

    Example:
        >>> redact("call +44 20 7946 0958", "mask").text
        'call <PHONE>'
    """
    if mode not in MODES:
        raise PiiError(f"unknown redaction mode {mode!r}", hint=f"use one of {', '.join(MODES)}")
    if mode == "pseudonymize" and vault is None:
        raise PiiError(
            "pseudonymize needs a vault to seal the mapping in",
            hint="pass vault=open_vault(settings, store)",
        )
    findings = tuple((detector or default_detector()).detect(text))
    mapping: dict[str, str] = {}
    out = _replace(text, findings, mode, tagger or Tagger(), mapping)
    if mode == "mask":
        return Redacted(out, findings)
    ref = vault.seal(mapping, actor=actor) if vault is not None and mode == "pseudonymize" else None
    return Redacted(out, findings, mapping, ref)


def redact_value(
    value: Any,
    mode: Mode = "tag",
    *,
    detector: Detector | None = None,
    vault: PiiVault | None = None,
    actor: str = "system",
) -> tuple[Any, Redacted]:
    """Every string inside a JSON value redacted, with one numbering for the whole value.

    Dict keys are kept as they are. For ``pseudonymize`` one mapping is sealed for the
    whole value.

    Returns:
        The redacted value, and a :class:`Redacted` whose ``text`` is empty and whose
        ``findings`` are those of every string (offsets are per string).

    Example:
        >>> redact_value({"from": "a@x.io", "cc": ["a@x.io"]}, "tag")[0]
        {'from': '<EMAIL_1>', 'cc': ['<EMAIL_1>']}
    """
    if mode == "pseudonymize" and vault is None:
        raise PiiError("pseudonymize needs a vault", hint="pass vault=open_vault(settings, store)")
    tagger = Tagger()
    mapping: dict[str, str] = {}
    findings: list[Finding] = []

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            r = redact(
                v, "tag" if mode == "pseudonymize" else mode, detector=detector, tagger=tagger
            )
            findings.extend(r.findings)
            mapping.update(r.mapping or {})
            return r.text
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    out = walk(value)
    if mode == "mask":
        return out, Redacted("", tuple(findings))
    ref = vault.seal(mapping, actor=actor) if vault is not None and mode == "pseudonymize" else None
    return out, Redacted("", tuple(findings), mapping, ref)


def restore(text: str, mapping: Mapping[str, str]) -> str:
    """Put the original values back in place of their tags (unknown tags stay).

    Example:
        >>> restore("Dear <PERSON_1>,", {"<PERSON_1>": "Ana"})
        'Dear Ana,'
    """
    return _TAG.sub(lambda m: mapping.get(m.group(), m.group()), text)
