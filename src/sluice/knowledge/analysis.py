r"""Text analysis for the keyword index: one analyzer, the same terms on every backend.

Both keyword backends index the terms this module produces, not raw text: SQLite's FTS5
receives them joined by spaces (its ``unicode61`` tokenizer then only splits at the
spaces), PostgreSQL stores them as postings. So a query matches the same chunks with
the same term frequencies and lengths on both, and BM25 scores agree (the contract
tests check it).

The English analyzer (``en-porter-1``), close to Lucene's ``EnglishAnalyzer``, which
BM25 baselines such as BEIR's are computed with:

1. possessive ``'s`` is dropped (``customer's`` -> ``customer``);
2. the text is case-folded and cut into runs of letters and digits (anything else,
   ``_`` included, separates terms);
3. Lucene's 33 English stop words are dropped;
4. each term is stemmed with the original Porter algorithm (Snowball's ``porter``).

Example:
    >>> ANALYZER.terms("The customer's refunds were refunded in 5-10 days")
    ['custom', 'refund', 'were', 'refund', '5', '10', 'dai']
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from functools import lru_cache
from typing import Any

__all__ = ["ANALYZER", "ENGLISH_STOP_WORDS", "Analyzer", "analyzer_named"]

#: Lucene's ``EnglishAnalyzer.ENGLISH_STOP_WORDS_SET``.
ENGLISH_STOP_WORDS = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into",
        "is", "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then",
        "there", "these", "they", "this", "to", "was", "will", "with",
    }
)  # fmt: skip

_POSSESSIVE = re.compile(r"['\u2019]s\b", re.IGNORECASE)
_TERM = re.compile(r"[^\W_]+")


# A snowballstemmer stemmer keeps its working state (the word, the cursor) on the
# instance, so one shared by threads returns other threads' stems and raises IndexError.
# Each thread gets its own; the cache of stems in front of them is shared (lru_cache is
# thread-safe, and a stem depends on the word only).
_stemmers = threading.local()


def _thread_stemmer() -> Any:
    stemmer = getattr(_stemmers, "porter", None)
    if stemmer is None:
        import snowballstemmer  # small, pure Python; only when text is analyzed

        stemmer = _stemmers.porter = snowballstemmer.stemmer("porter")
    return stemmer


@lru_cache(maxsize=200_000)
def _porter(word: str) -> str:
    return str(_thread_stemmer().stemWord(word))


class Analyzer:
    """Turns text into index terms (module docs).

    Args:
        name: Recorded by index versions; change it when the terms would change.
        stop_words: Terms dropped after case folding.
        stem: Stem each term (Porter).
    """

    def __init__(
        self, name: str, *, stop_words: frozenset[str] = ENGLISH_STOP_WORDS, stem: bool = True
    ) -> None:
        self.name = name
        self.stop_words = stop_words
        self.stem = stem

    def terms(self, text: str) -> list[str]:
        """The terms of ``text``, in order, repeats kept."""
        words = _TERM.findall(_POSSESSIVE.sub("", text).casefold())
        kept = [w for w in words if w not in self.stop_words]
        if not self.stem:
            return kept
        return [_porter(w) for w in kept]

    def query_terms(self, text: str) -> list[str]:
        """The distinct terms of a query, in first-seen order (each counts once)."""
        return list(dict.fromkeys(self.terms(text)))

    def frequencies(self, text: str) -> tuple[Counter[str], int]:
        """Term frequencies of ``text`` and its length in terms."""
        terms = self.terms(text)
        return Counter(terms), len(terms)


#: The default analyzer.
ANALYZER = Analyzer("en-porter-1")

_ANALYZERS = {ANALYZER.name: ANALYZER, "plain-1": Analyzer("plain-1", stem=False)}


def analyzer_named(name: str) -> Analyzer:
    """The analyzer an index version recorded.

    Raises:
        KeyError: No analyzer of that name in this version of Sluice.
    """
    return _ANALYZERS[name]
