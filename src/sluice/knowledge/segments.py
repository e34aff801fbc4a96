r"""Cutting a document's text into sections and sentences, by offsets only.

The chunker's raw material (:mod:`sluice.knowledge.chunking`): a :class:`Section` runs
from one heading to the next (the text before the first heading is a section with an
empty heading path), and :func:`sentence_spans` cuts a section into sentences, each
marked when it opens a paragraph. Nothing here copies or changes text: every span is a
pair of offsets into :attr:`Document.text`, trimmed of surrounding whitespace.

Sentences end at ``.``, ``!``, ``?``, ``…`` or their CJK forms followed by whitespace
and a character that is not a lower-case letter (so ``e.g. this`` stays whole), and at
every line break (list items, table rows, ``Q:``/``A:`` lines). It is a heuristic, not
a linguistic parser: an abbreviation before a capital (``Dr. Smith``) splits, which
only costs a slightly earlier cut.

Example:
    >>> text = "Refunds take 5 days. Cards may need 10.\n\nAsk us."
    >>> [(s.start, s.end, s.opens_paragraph) for s in sentence_spans(text, 0, len(text))]
    [(0, 20, True), (21, 39, False), (41, 48, True)]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sluice.knowledge.documents import Document

__all__ = ["Section", "Span", "sections", "sentence_spans", "word_spans"]

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
# Closing quotes and brackets after the mark stay with the sentence; \u3002\uff01\uff1f are
# the CJK full stop, exclamation and question marks (no space follows them).
_SENTENCE_END = re.compile(
    r"(?:[.!?\u2026]+[\"'\u201d\u2019)\]]*|[\u3002\uff01\uff1f]+)(?=\s+[^a-z\s]|\s*$)|\n"
)
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Section:
    """The text from one heading (included) to the next: ``[start, end)``.

    Attributes:
        start: Offset of the heading line (or 0 for the text before any heading).
        end: Offset of the next heading, or the end of the text.
        body_start: Offset just past the heading line (``start`` when there is none).
        heading_path: Titles of this heading and the ones enclosing it, outermost first.
    """

    start: int
    end: int
    body_start: int
    heading_path: tuple[str, ...]


@dataclass(frozen=True)
class Span:
    """A piece of text ``[start, end)``.

    ``opens_paragraph`` is true when a blank line precedes it or it starts its section.
    """

    start: int
    end: int
    opens_paragraph: bool


def sections(document: Document) -> list[Section]:
    r"""The document's sections in order; together they cover its text.

    Example:
        >>> from sluice.knowledge.readers import read_markdown
        >>> doc = read_markdown(b"Intro\n# A\nx\n## B\ny\n# C\nz", source="d.md")
        >>> [s.heading_path for s in sections(doc)]
        [(), ('A',), ('A', 'B'), ('C',)]
    """
    out: list[Section] = []
    headings = document.headings
    first = headings[0].start if headings else len(document.text)
    if first > 0:
        out.append(Section(0, first, 0, ()))
    stack: list[tuple[int, str]] = []
    for i, heading in enumerate(headings):
        while stack and stack[-1][0] >= heading.level:
            stack.pop()
        stack.append((heading.level, heading.title))
        end = headings[i + 1].start if i + 1 < len(headings) else len(document.text)
        out.append(Section(heading.start, end, heading.end, tuple(t for _, t in stack)))
    return out


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def sentence_spans(text: str, start: int, end: int) -> list[Span]:
    """The sentences of ``text[start:end]`` as offsets into ``text`` (module docs)."""
    spans: list[Span] = []
    paragraph_start = start
    breaks = [*_PARAGRAPH_BREAK.finditer(text, start, end), None]
    for match in breaks:
        paragraph_end = match.start() if match is not None else end
        opens = True
        cursor = paragraph_start
        for stop in _SENTENCE_END.finditer(text, paragraph_start, paragraph_end):
            s, e = _trimmed(text, cursor, stop.end())
            if s < e:
                spans.append(Span(s, e, opens))
                opens = False
            cursor = stop.end()
        s, e = _trimmed(text, cursor, paragraph_end)
        if s < e:
            spans.append(Span(s, e, opens))
        if match is not None:
            paragraph_start = match.end()
    return spans


def word_spans(text: str, start: int, end: int) -> list[Span]:
    """The whitespace-separated words of ``text[start:end]`` (for over-long sentences)."""
    return [Span(m.start(), m.end(), False) for m in _WORD.finditer(text, start, end)]
