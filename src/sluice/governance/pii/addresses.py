"""Postal and street addresses, by rule: a street core, extended over what follows it.

A *core* is one of:

* a house number and words ending in a street type (``3784 Archwood Avenue``);
* a street-type word first, then words and a number (``Rue de Kairouan 63``,
  ``ul. Chrzanowska 61``, ``Via Franscini 71``), or the number first
  (``63 Rue de Kairouan``);
* a compound street name of the Nordic, German, Dutch, Hungarian or Baltic kind and a
  number (``Kiannonkatu 98``, ``Söndergade 52``, ``Brucker Bundesstrasse 31``);
* a post-office or military box (``P.O. Box 242``, ``PSC 0729, Box 5797 APO AP 96854``).

The core is then extended over the pieces that usually follow it: ``Apt. 864``,
``Suite 245``, a city, a state code, a postal code, a country, across commas and line
breaks, and stops at anything else (a lower-case word, a label such as ``Phone:``).
``usaddress`` was measured and not used: it labels every token of whatever it is given
as some address part, so it parses an address but does not find one (docs/pii.md).

Example:
    >>> t = "Ship it to 3784 Archwood Avenue, Springfield, IL 62704 please."
    >>> [t[f.start : f.end] for f in find_addresses(t)]
    ['3784 Archwood Avenue, Springfield, IL 62704']
"""

from __future__ import annotations

import re

from sluice.governance.pii.findings import Finding

__all__ = ["find_addresses"]

_W = r"[^\W\d_][\w'\u2019.-]*"  # a word
_CAPW = r"[^\W\d_a-zß-ÿ][\w'\u2019.-]*"  # a capitalized word (any script with case)
_SUFFIX = (
    r"(?:Street|St\.?|Avenue|Ave\.?|Road|Rd\.?|Drive|Dr\.?|Lane|Ln\.?|Way|Court|Ct\.?|"
    r"Square|Sq\.?|Boulevard|Blvd\.?|Place|Pl\.?|Terrace|Crescent|Close|Parkway|Pkwy\.?|"
    r"Highway|Hwy\.?|Circle|Cir\.?|Trail|Row|Gardens|Walk|Hill|Forges?|Plaza|Alley|Loop|"
    r"Pike|Mews|Grove|Park|Green|Heights|Vale|View|Ridge|Point|Crossing|Junction|Port|"
    r"Estates?|Meadows?|Fields?|Cove|Harbor|Harbour|Creek|Springs?|Falls|Mill|Mall)"
)
_PREFIX = (
    r"(?:Rue|Rua|Rúa|Via|Viale|Calle|Carrer|Avenida|Av\.?|Avda\.?|Piazza|Plaza|Praça|"
    r"Largo|Chemin|Allée|Quai|Impasse|Route|Boulevard|Bd\.?|ul\.|ulica|Ulica|Strada|"
    r"Str\.|Travessa|Estrada|Camino|Paseo|Ronda|Vicolo|Corso|Platz|Plateia|Πλατεία|Οδός)"
)
_COMPOUND = (
    r"(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|katu|kuja|tie|polku|kaari|"
    r"gata|gatan|gade|vej|veien|vegen|vägen|väg|stræde|straat|laan|plein|gracht|dijk|"
    r"utca|út|tér|tänav|iela|gatvė|gatve|stigur|braut|vegur|gränd|stig)"
)
# Street types written in lower case after the name ("Piroska u. 97", "Trenerys gate 232").
_LOWER_TYPE = (
    r"(?:u\.|utca|út|útja|rkp\.|gate|vei|vej|terrasse|kapu|gasse|straat|tee|tänav|sokak|"
    r"caddesi|cesta|ulica|utca|ut\.|vegen|veien|gränd)"
)
_NUM = r"\d{1,6}[A-Za-z]?(?:[-/]\d{1,4})?"
_CORE = re.compile(
    rf"(?:(?<![\w-]){_NUM}\s+(?:{_NUM}\s+)?(?:{_CAPW}\s+){{0,4}}{_SUFFIX}(?![\w])"
    rf"|(?<![\w-])(?:{_NUM}\s+)?{_PREFIX}\s+(?:{_W}\s+){{0,4}}?{_NUM}(?![\w])"
    rf"|(?<![\w-])(?:{_NUM}\s+)?{_PREFIX}\s+(?:{_W}\s+){{0,3}}?{_CAPW}"
    rf"|(?<![\w-])(?:{_NUM}\s+)?(?:{_CAPW}\s+){{0,2}}{_CAPW}{_COMPOUND}\s+{_NUM}(?![\w])"
    rf"|(?<![\w-])\d{{2,6}}\s+(?:{_CAPW}\s+){{1,3}}(?:{_LOWER_TYPE}\s+)?\d{{1,5}}[a-z]?\.?(?![\w])"
    rf"|(?<![\w-])(?:the\s+)?corner of\s+[^\n,.?!]{{3,50}}?\s+and\s+{_CAPW}(?:\s{_CAPW}){{0,2}}"
    rf"|(?<=\bat\s)(?:{_CAPW}\s+){{1,3}}\d{{1,5}}(?![\w])"
    rf"|(?<=\bon\s)(?:{_CAPW}\s+){{1,3}}\d{{1,5}}(?![\w])"
    rf"|(?<=address:\s)(?:{_CAPW}\s+){{1,3}}\d{{1,5}}(?![\w])"
    r"|(?<![\w-])(?:P\.?\s?O\.?\s?Box|Post\s?box|Post Office Box|PO Box|Postfach)\s+\d{1,6}"
    r"|(?<![\w-])(?:PSC|Unit|USNS|USS|USCGC)\s+\d{3,5},?\s+Box\s+\d{2,5}"
    r"(?:\s+(?:APO|FPO|DPO)\s+A[AEP]\s+\d{5})?)",
    re.UNICODE,
)
# One piece that may follow a core: a unit, a box, a postcode, a state code, a
# capitalized word (a city or a country), or a military post office.
_PIECE = re.compile(
    rf"(?:(?:Apt\.?|Apartment|Suite|Ste\.?|Unit|Floor|Fl\.?|Flat|Room|Box|#)\s*[\w-]+"
    r"|(?:APO|FPO|DPO)\s+A[AEP]\s+\d{5}"
    r"|\d{3,6}(?:-\d{3,4})?|[A-Z]{1,2}\d[A-Z\d]?\s\d[A-Z]{2}|\d{2}-\d{3}|\d{3}\s\d{2}"
    rf"|{_CAPW}(?:\s{_CAPW}){{0,3}}(?:\s\([^)\n]{{1,30}}\))?)",
    re.UNICODE,
)
_SEP = re.compile(r"[ \t]*(?:,[ \t]*|\n[ \t]*,?[ \t]*|>[ \t]*|[ \t]+)")
_LABEL = re.compile(
    r"(?:Phone|Mobile|Desk|Fax|Tel|E-?mail|Website|Web|Address|Personal|Office|User|"
    r"Agent|It|The|I|We|You|He|She|They|My|Please|Thanks|Thank|Is|Are|Can|Could|"
    r"Would|Will|And|But|Or|So|If|When|Where|What|How|Who|This|That|Meet|Call)\b"
)
_MAX_EXTENSION = 160
# What makes a core certain: a street type, a box. Cores without one (a name and a
# number, "Allika 46") are kept only if no word is a common English word, a weekday or
# month or a thing with numbers ("Gate 12", "Floor 4"), and no number is a year.
_STRONG = re.compile(
    rf"(?<![\w]){_SUFFIX}(?![\w])|(?<![\w]){_PREFIX}(?![\w])|{_COMPOUND}\s+\d|box|corner of",
    re.IGNORECASE,
)
_NOT_STREET = frozenset(
    [
        "gate",
        "floor",
        "room",
        "level",
        "platform",
        "terminal",
        "page",
        "chapter",
        "section",
        "step",
        "item",
        "version",
        "model",
        "size",
        "week",
        "day",
        "hour",
        "table",
        "row",
        "seat",
        "stage",
        "phase",
        "part",
        "unit",
        "lot",
        "batch",
        "order",
        "invoice",
        "ticket",
        "case",
        "flight",
        "bus",
        "train",
        "line",
        "track",
        "volume",
        "issue",
        "edition",
        "grade",
        "class",
        "year",
    ]
)
_YEAR = re.compile(r"^(?:19|20)\d\d\b")


def _extend(text: str, end: int) -> int:
    """The end of the address that starts with a core ending at ``end``."""
    limit = min(len(text), end + _MAX_EXTENSION)
    newlines = 0
    while end < limit:
        sep = _SEP.match(text, end)
        if sep is None or sep.end() == end:
            # Glued pieces ("Apt. 595") still need a space; a period may end the core.
            break
        gap = sep.group()
        newlines += gap.count("\n")
        if newlines > 4 or "\n\n" in gap.replace(" ", ""):
            break
        piece = _PIECE.match(text, sep.end())
        if piece is None or _LABEL.match(text, sep.end()):
            break
        end = piece.end()
    return end


def find_addresses(text: str) -> list[Finding]:
    """Street and postal addresses (score 0.7; see the module docs for the rules)."""
    out: list[Finding] = []
    pos = 0
    while True:
        m = _CORE.search(text, pos)
        if m is None:
            return out
        if not _STRONG.search(m.group()) and not _plausible(m.group()):
            pos = m.start() + 1
            continue
        end = _extend(text, m.end())
        value = text[m.start() : end].rstrip(" ,>\n\t")
        if re.search(r"[^\W\d_]{4,}\.$", value):  # a sentence's period, not "Apt."
            value = value[:-1]
        out.append(Finding("STREET_ADDRESS", m.start(), m.start() + len(value), 0.7, "address"))
        pos = max(end, m.start() + 1)


def _plausible(core: str) -> bool:
    """Whether a core without a street type still looks like a street and number."""
    from sluice.governance.pii.names import gazetteer

    if _YEAR.match(core):
        return False
    common = gazetteer().common
    words = [w.lower().strip(".,") for w in re.findall(r"[^\W\d_][\w'\u2019.-]*", core)]
    return bool(words) and not any(w in common or w in _NOT_STREET for w in words)
