"""Person names, offline: first- and last-name gazetteers plus context rules.

No statistical NER runs here: spaCy's and Presidio's name finders need a trained
model, and none can be downloaded at run time (see docs/pii.md for what was measured).
Instead:

* **Gazetteers** of first and last names, taken from the per-locale name lists that the
  ``Faker`` package ships (about 31,000 first and 29,000 last names across 90 locales),
  loaded once, on first use.
* **Runs** of capitalized words (with initials and particles such as *van*, *de*) are
  candidates; common English words (Faker's English word list) and country names are
  not names on their own.
* **Context**: a title (*Mr.*, *Dr.* ...) or a phrase (*my name is*, *signed*) before a
  run makes it a name even when no gazetteer knows it.

Scores: 0.85 with a title or phrase, 0.7 for a run of two or more words with a known
first or last name, 0.5 for a single known name in the middle of a sentence.

Example:
    >>> [f.entity_type for f in find_names("Please ask Dr. Meagan Wallace to call back.")]
    ['PERSON']
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from functools import lru_cache

from sluice.governance.pii.findings import Finding

__all__ = ["Gazetteer", "find_names", "gazetteer"]

_WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|['\u2019.-](?=[^\W\d_]))*\.?")
_TITLE = re.compile(
    r"(?:mr|mrs|ms|miss|mx|dr|prof|sir|madam|mme|mlle|herr|frau|sr|sra|srta)\.?$",
    re.IGNORECASE,
)
_PHRASE = re.compile(
    r"(?:my name is|name is|name:|names? was|i am|i'm|this is|call me|called|named|"
    r"signed|regards,?|sincerely,?|dear|hi|hello|contact|ask|by|with|to|from|"
    r"thank you,?|thanks,?)\s+$",
    re.IGNORECASE,
)
_STRONG_PHRASE = re.compile(r"(?:my name is|name is|name:|call me|named|signed)\s+$", re.I)
_PARTICLES = frozenset(
    {
        "van",
        "von",
        "de",
        "der",
        "den",
        "ten",
        "ter",
        "da",
        "dos",
        "das",
        "del",
        "della",
        "di",
        "du",
        "la",
        "le",
        "bin",
        "ibn",
        "al",
        "el",
        "st.",
    }
)
# Capitalized words that open sentences or lines and are never names themselves.
_OPENERS = frozenset(
    {
        "i",
        "my",
        "the",
        "a",
        "an",
        "this",
        "that",
        "these",
        "those",
        "dear",
        "hi",
        "hello",
        "hey",
        "thanks",
        "thank",
        "please",
        "we",
        "you",
        "he",
        "she",
        "they",
        "it",
        "our",
        "your",
        "his",
        "her",
        "their",
        "mr",
        "mrs",
        "ms",
        "dr",
        "mr.",
        "mrs.",
        "ms.",
        "dr.",
        "miss",
        "prof",
        "prof.",
        "sir",
        "madam",
        "is",
        "are",
        "was",
        "can",
        "could",
        "would",
        "will",
        "should",
        "what",
        "when",
        "where",
        "who",
        "why",
        "how",
        "if",
        "and",
        "or",
        "but",
        "so",
        "on",
        "in",
        "at",
        "to",
        "from",
        "for",
        "of",
        "by",
        "with",
        "here",
        "there",
        "yes",
        "no",
        "ok",
        "okay",
        "re",
        "fw",
        "fwd",
        "subject",
        "date",
        "name",
        "phone",
        "email",
        "e-mail",
        "address",
        "mobile",
        "fax",
        "desk",
        "website",
        "user",
        "agent",
        "customer",
        "street",
        "road",
        "avenue",
        "suite",
        "apt",
        "apt.",
        "box",
        "card",
        "account",
        "iban",
        "ssn",
        "ip",
        "id",
        "inc",
        "inc.",
        "ltd",
        "llc",
        "group",
        "bank",
        "company",
        "office",
        "personal",
        "info",
        "just",
        "also",
        "about",
        "after",
        "before",
        "during",
        "since",
        "said",
        "says",
        "mon",
        "tue",
        "wed",
        "thu",
        "fri",
        "sat",
        "sun",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    }
)


@dataclass(frozen=True)
class Gazetteer:
    """Known first names, last names and words that are not names (all lower case).

    Example:
        >>> g = gazetteer()
        >>> "maria" in g.first, "house" in g.common
        (True, True)
    """

    first: frozenset[str]
    last: frozenset[str]
    common: frozenset[str]
    places: frozenset[str]

    def known(self, word: str) -> bool:
        """Whether ``word`` is a known first or last name."""
        w = word.lower().rstrip(".")
        return w in self.first or w in self.last


def _strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [k for k in value if isinstance(k, str)]
    if isinstance(value, (tuple, list, set, frozenset)):
        return [v for v in value if isinstance(v, str)]
    return []


@lru_cache(maxsize=1)
def gazetteer() -> Gazetteer:
    """The name lists of every Faker locale, loaded once (about 0.1 s)."""
    import faker.providers.address as address_pkg
    import faker.providers.person as person_pkg
    from faker.providers.lorem.en_US import Provider as Lorem

    first: set[str] = set()
    last: set[str] = set()
    for info in pkgutil.iter_modules(person_pkg.__path__):
        provider = importlib.import_module(f"{person_pkg.__name__}.{info.name}").Provider
        for attr in ("first_names", "first_names_male", "first_names_female"):
            first.update(n.lower() for n in _strings(vars(provider).get(attr)))
            first.update(n.lower() for n in _strings(getattr(provider, attr, None)))
        last.update(n.lower() for n in _strings(getattr(provider, "last_names", None)))
    places: set[str] = set()
    for locale in ("en_US", "en_GB"):
        provider = importlib.import_module(f"{address_pkg.__name__}.{locale}").Provider
        places.update(c.lower() for c in _strings(getattr(provider, "countries", None)))
    common = {w.lower() for w in Lorem.word_list} | _OPENERS
    # Words that are names somewhere but mostly something else in English text.
    first -= common
    last -= common
    return Gazetteer(frozenset(first), frozenset(last), frozenset(common), frozenset(places))


def _is_cap(word: str) -> bool:
    return word[0].isupper()


def _is_initial(word: str) -> bool:
    return len(word.rstrip(".")) == 1 and word[0].isupper()


def _runs(text: str) -> list[list[re.Match[str]]]:
    """Maximal runs of name-like words separated by single spaces (not newlines)."""
    runs: list[list[re.Match[str]]] = []
    current: list[re.Match[str]] = []
    for m in _WORD.finditer(text):
        word = m.group()
        namey = _is_cap(word) or (word.lower() in _PARTICLES and bool(current))
        joined = bool(current) and text[current[-1].end() : m.start()] in (" ", "")
        if namey and (joined or not current):
            current.append(m)
            continue
        if current:
            runs.append(current)
        current = [m] if _is_cap(word) else []
    if current:
        runs.append(current)
    return runs


def _sentence_start(text: str, pos: int) -> bool:
    before = text[:pos].rstrip(" \t\"'(")
    return not before or before[-1] in ".!?\n:;>"


def find_names(text: str) -> list[Finding]:
    """Person names (see the module docs for the rules and scores)."""
    g = gazetteer()
    out: list[Finding] = []
    for run in _runs(text):
        # Drop openers and trailing particles: "The", "Dear", "Mr." are not the name.
        while run and run[0].group().lower().rstrip(".") in _OPENERS | {"mr", "mrs", "ms"}:
            run = run[1:]
        while run and run[-1].group().lower() in _PARTICLES:
            run = run[:-1]
        while run and run[-1].group().lower().rstrip(".") in g.common:
            run = run[:-1]
        # "Yesterday Krisztina Varga": a sentence's first word that no list knows, before
        # a known name, is the sentence's, not the name's.
        if (
            len(run) >= 2
            and _sentence_start(text, run[0].start())
            and not g.known(run[0].group())
            and g.known(run[1].group())
        ):
            run = run[1:]
        if not run:
            continue
        start, end = run[0].start(), run[-1].end()
        words = [m.group() for m in run]
        if words[-1].endswith(".") and not _is_initial(words[-1]):
            end -= 1
        before = text[max(0, start - 24) : start]
        prev = before.split()[-1] if before.split() else ""
        known = [w for w in words if g.known(w)]
        lowered = [w.lower().rstrip(".") for w in words]
        if any(w in g.places for w in lowered) and not _TITLE.match(prev):
            continue
        if _TITLE.match(prev) or _STRONG_PHRASE.search(before):
            score = 0.85
        elif len(words) >= 2 and known and not all(w in g.common for w in lowered):
            score = 0.7
        elif len(words) == 3 and _is_initial(words[1]):
            score = 0.6  # "Mohmad R. Vizirov": first name, initial, last name
        elif (
            len(words) == 1
            and known
            and (not _sentence_start(text, start) or _PHRASE.search(before))
        ):
            score = 0.5
        else:
            continue
        out.append(Finding("PERSON", start, end, score, "name_gazetteer"))
    out.extend(_lowercase_after_phrase(text, out))
    return out


_LOWER_NAME = re.compile(r"(?:my name is|name:)\s+([^\W\d_]+(?: [^\W\d_]+)?)", re.IGNORECASE)


def _lowercase_after_phrase(text: str, found: list[Finding]) -> list[Finding]:
    """Names typed in lower case after "my name is": the phrase vouches for them."""
    out = []
    g = gazetteer()
    for m in _LOWER_NAME.finditer(text):
        start, end = m.span(1)
        if any(f.start <= start < f.end for f in found):
            continue
        words = m.group(1).split()
        if len(words) == 2 and words[1].lower() in g.common:
            end = start + len(words[0])
        if words[0].lower() in g.common:
            continue
        out.append(Finding("PERSON", start, end, 0.8, "name_context"))
    return out
