"""Phone numbers, found and validated by ``phonenumbers`` (Google's libphonenumber).

A number in international form (``+44 20 7946 0958``) is checked against its own
country's numbering plan; a national one (``(212) 555-0143``) against each of
:data:`DEFAULT_REGIONS` in turn. ``Leniency.VALID`` keeps only numbers that are
possible *and* assigned in that plan, so dates, amounts and order numbers do not
pass. The score is lower than a checksum's: a valid number can still be something else.

Example:
    >>> [f.entity_type for f in find_phones("call me on +44 20 7946 0958 tonight")]
    ['PHONE_NUMBER']
"""

from __future__ import annotations

import re

import phonenumbers

from sluice.governance.pii.findings import Finding

__all__ = ["DEFAULT_REGIONS", "find_phones"]

#: Regions tried for numbers written without a country code.
DEFAULT_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "IN", "CA", "BR", "IL")
_DIGITS = re.compile(r"\d")
_PHONE_CONTEXT = re.compile(
    r"(?:phone|tel|mobile|cell|fax|desk|call me on|call me at|reach me (?:on|at)|"
    r"answering at|number is)\W{0,3}$",
    re.IGNORECASE,
)
_PHONE_AFTER = re.compile(r"\s{1,3}(?:office|fax|mobile|cell|home|work)\b", re.IGNORECASE)
_LOOSE = re.compile(r"\+?\(?\d[\d ().-]{5,18}\d")


def find_phones(text: str, regions: tuple[str, ...] = DEFAULT_REGIONS) -> list[Finding]:
    """Phone numbers valid in their region's numbering plan.

    Args:
        text: Where to look.
        regions: Regions (ISO 3166 alpha-2) tried for national numbers.

    Returns:
        One finding per number (score 0.75; 0.6 for a loose match right after
        "phone:" that no numbering plan confirms).
    """
    if len(_DIGITS.findall(text)) < 7:
        return []
    seen: dict[tuple[int, int], Finding] = {}
    for region in regions:
        matcher = phonenumbers.PhoneNumberMatcher(
            text, region, leniency=phonenumbers.Leniency.VALID
        )
        for match in matcher:
            key = (match.start, match.end)
            if key not in seen and len(_DIGITS.findall(match.raw_string)) >= 7:
                seen[key] = Finding("PHONE_NUMBER", match.start, match.end, 0.75, "phonenumbers")
    for m in _LOOSE.finditer(text):
        covered = any(s <= m.start() < e for s, e in seen)
        digits = len(_DIGITS.findall(m.group()))
        if covered or not 7 <= digits <= 15:
            continue
        before = _PHONE_CONTEXT.search(text[max(0, m.start() - 16) : m.start()])
        if before or _PHONE_AFTER.match(text, m.end()):
            seen[(m.start(), m.end())] = Finding(
                "PHONE_NUMBER", m.start(), m.end(), 0.6, "phone_context"
            )
    return list(seen.values())
