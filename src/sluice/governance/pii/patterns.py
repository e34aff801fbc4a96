"""Recognizers of identifiers with a syntax or a checksum: e-mail, IP, cards, IBANs, ids.

Each is a function ``text -> list[Finding]``. A regular expression proposes a
candidate, a validator keeps it: the Luhn check for payment cards, ISO 7064 for IBANs
(``python-stdnum``), the Social Security Administration's rules for US SSNs, and
``python-stdnum``'s checksums for national ids. A bare digit run that fails its check
(an order number, an amount) is never reported.

Example:
    >>> [f.entity_type for f in find_cards("card 4111 1111 1111 1111, order 1234567890123")]
    ['CREDIT_CARD']
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable

from stdnum import iban as _iban
from stdnum import luhn as _luhn

from sluice.governance.pii.findings import Finding

__all__ = [
    "find_cards",
    "find_emails",
    "find_ibans",
    "find_ips",
    "find_national_ids",
    "find_us_ssns",
]

# Bounded and anchored on what precedes it, so a long run without "@" stays linear.
_EMAIL = re.compile(
    r"(?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){0,8}\.[^\W\d_]{2,24}(?![\w-])"
)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-]|[ -]\d)")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
_SSN = re.compile(r"(?<![\w-])(\d{3})([- ]?)(\d{2})\2(\d{4})(?![\w-])")
_SSN_CONTEXT = re.compile(r"\b(?:ssn|social security|ss#|ss no)", re.IGNORECASE)
_ID_CONTEXT = re.compile(
    r"\b(?:national id|identity|id (?:no|number|card)|personal (?:id|number|code)|"
    r"tax (?:id|number|code)|bsn|pesel|personnummer|nir|nie|dni|nif|cpf|codice fiscale|"
    r"fødselsnummer|henkilötunnus|hetu|cpr|sin|aadhaar|steuer|insurance number|nhs)",
    re.IGNORECASE,
)
_ID_CANDIDATE = re.compile(r"(?<![\w-])[0-9A-Z][0-9A-Z.\- /]{6,20}[0-9A-Z](?![\w-])")
_CONTEXT_WINDOW = 48


def find_emails(text: str) -> list[Finding]:
    """E-mail addresses (local part, ``@``, a domain with a letter-only top level)."""
    if "@" not in text:
        return []
    return [
        Finding("EMAIL_ADDRESS", m.start(), m.end(), 1.0, "email") for m in _EMAIL.finditer(text)
    ]


def find_ips(text: str) -> list[Finding]:
    """IPv4 and IPv6 addresses that :mod:`ipaddress` accepts (not version numbers)."""
    out = []
    for m in _IPV4.finditer(text):
        try:
            ipaddress.IPv4Address(m.group())
        except ValueError:
            continue
        out.append(Finding("IP_ADDRESS", m.start(), m.end(), 0.95, "ip"))
    if "::" in text or text.count(":") >= 5:
        for m in _IPV6.finditer(text):
            try:
                ipaddress.IPv6Address(m.group())
            except ValueError:
                continue
            out.append(Finding("IP_ADDRESS", m.start(), m.end(), 0.95, "ip"))
    return out


def find_cards(text: str) -> list[Finding]:
    """Payment cards: 13 to 19 digits (spaces or dashes between) passing the Luhn check.

    Runs of one repeated digit pass Luhn and are not cards; they are skipped.
    """
    out = []
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if len(set(digits)) > 1 and _luhn.is_valid(digits):
            out.append(Finding("CREDIT_CARD", m.start(), m.end(), 1.0, "luhn"))
    return out


def find_ibans(text: str) -> list[Finding]:
    """IBANs: a country code, two check digits and a BBAN valid for that country."""
    out = []
    for m in _IBAN.finditer(text):
        value = m.group().rstrip()
        if _iban.is_valid(value):
            out.append(Finding("IBAN_CODE", m.start(), m.start() + len(value), 1.0, "iban"))
    return out


def _ssn_valid(area: str, group: str, serial: str) -> bool:
    # SSA rules: no area 000, 666 or 900-999, no group 00, no serial 0000; and the
    # numbers used in advertising and examples are not anybody's.
    if area in {"000", "666"} or area >= "900" or group == "00" or serial == "0000":
        return False
    return f"{area}{group}{serial}" not in {"078051120", "219099999", "123456789"}


def find_us_ssns(text: str) -> list[Finding]:
    """US Social Security numbers by the SSA's rules.

    ``123-45-6789`` or ``123 45 6789`` counts as is (score 0.85); nine bare digits only
    near a mention of SSN or social security.
    """
    out = []
    for m in _SSN.finditer(text):
        area, sep, group, serial = m.groups()
        if not _ssn_valid(area, group, serial):
            continue
        if sep:
            score = 0.85
        elif _SSN_CONTEXT.search(text, max(0, m.start() - _CONTEXT_WINDOW), m.start()):
            score = 0.8
        else:
            continue
        out.append(Finding("US_SSN", m.start(), m.end(), score, "us_ssn"))
    return out


@functools.cache
def _validators() -> tuple[Callable[[str], bool], ...]:
    # Imported on first use (once, thread-safe): each stdnum module is small, but there
    # are many.
    from stdnum.util import get_cc_module

    out: list[Callable[[str], bool]] = []
    for cc, name in _ID_MODULES:
        module = get_cc_module(cc, name)
        if module is not None:
            out.append(module.is_valid)
    return tuple(out)


#: (country, stdnum module) of the national ids checked; all have a checksum.
_ID_MODULES = (
    ("nl", "bsn"),
    ("pl", "pesel"),
    ("se", "personnummer"),
    ("es", "dni"),
    ("es", "nie"),
    ("it", "codicefiscale"),
    ("fr", "nir"),
    ("de", "idnr"),
    ("dk", "cpr"),
    ("fi", "hetu"),
    ("no", "fodselsnummer"),
    ("ca", "sin"),
    ("br", "cpf"),
    ("gb", "nhs"),
    ("in", "aadhaar"),
    ("be", "nn"),
    ("ch", "ssn"),
    ("ee", "ik"),
    ("us", "itin"),
)


def find_national_ids(text: str) -> list[Finding]:
    """National ids with a checksum (``python-stdnum``), near a word that names one.

    Short checksums pass by chance (one in ten for a mod-11 check), so a candidate
    counts only within a few words after "national id", "BSN", "PESEL", "NIR" ...
    """
    if not _ID_CONTEXT.search(text):
        return []
    validators = _validators()
    out = []
    for ctx in _ID_CONTEXT.finditer(text):
        window = text[ctx.end() : ctx.end() + _CONTEXT_WINDOW]
        for m in _ID_CANDIDATE.finditer(window):
            value = m.group().strip()
            if not any(ch.isdigit() for ch in value):
                continue
            if any(_safe(check, value) for check in validators):
                start = ctx.end() + m.start()
                out.append(Finding("NATIONAL_ID", start, start + len(value), 0.8, "stdnum"))
                break
    return out


def _safe(check: Callable[[str], bool], value: str) -> bool:
    try:
        return bool(check(value))
    except Exception:  # a validator that trips on odd input says no, never raises
        return False
