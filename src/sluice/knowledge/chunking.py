r"""Chunking: structure first, then sentences, bounded by tokens, with overlap.

How a document becomes chunks:

1. It is cut into sections at its headings (:func:`~sluice.knowledge.segments.sections`).
   A chunk never crosses a heading, so every chunk has one heading path. A section with
   nothing but its heading line makes no chunk (its title is in its children's paths).
2. Each section is cut into sentences, each knowing whether it opens a paragraph. A
   sentence over the token bound is cut at spaces, and a word over the bound (a long
   unbroken string, CJK text without spaces) at characters.
3. Sentences are packed greedily up to ``max_tokens``. When the next sentence does not
   fit, the chunk ends at the last paragraph break if the chunk is at least
   ``min_fill`` full there, else after the last sentence that fits.
4. The next chunk of the same section starts with the previous chunk's last sentences,
   up to ``overlap_tokens`` (whole sentences only, never the whole previous chunk), so
   that a fact cut at a boundary is still whole in one of the two chunks.

A chunk is the contiguous text from its first sentence to its last, so its offsets slice
the document's text exactly. Its ``token_count`` is counted on that text; it never
exceeds ``max_tokens``. Defaults suit all-MiniLM-L6-v2, which reads 256 word pieces
including its two special tokens: 200-token chunks leave room to spare.

Example:
    >>> from sluice.knowledge.readers import read_markdown
    >>> doc = read_markdown(
    ...     b"# Refunds\n\nRefunds are sent within 3 days. Cards take 5-10 days.\n\n"
    ...     b"## Gift cards\n\nGift card refunds are instant.",
    ...     source="refunds.md",
    ... )
    >>> chunker = Chunker(ChunkingConfig(max_tokens=50, overlap_tokens=10))
    >>> [(c.heading_path, c.text) for c in chunker.chunk(doc)]  # doctest: +NORMALIZE_WHITESPACE
    [(('Refunds',), '# Refunds\n\nRefunds are sent within 3 days. Cards take 5-10 days.'),
     (('Refunds', 'Gift cards'), '## Gift cards\n\nGift card refunds are instant.')]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from itertools import accumulate
from typing import Any

from sluice.knowledge.documents import Chunk, Document
from sluice.knowledge.segments import Span, sections, sentence_spans, word_spans
from sluice.knowledge.tokens import TokenCounter, default_token_counter

__all__ = ["CHUNKER_VERSION", "Chunker", "ChunkingConfig", "chunk_document"]

#: Bumped whenever the same text and config would be cut differently; index versions
#: record it with the config.
CHUNKER_VERSION = 1


@dataclass(frozen=True)
class ChunkingConfig:
    """How big chunks are and how much consecutive chunks share.

    Attributes:
        max_tokens: The bound on every chunk's tokens (special tokens excluded).
        overlap_tokens: At most this many tokens of whole sentences repeat from the
            previous chunk of the same section; 0 for none.
        min_fill: Prefer ending a chunk at a paragraph break when the chunk is at least
            this fraction of ``max_tokens`` there; 1.0 ignores paragraph breaks.
    """

    max_tokens: int = 200
    overlap_tokens: int = 40
    min_fill: float = 0.5

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, not {self.max_tokens}")
        if not 0 <= self.overlap_tokens < self.max_tokens:
            raise ValueError(
                f"overlap_tokens must be in [0, max_tokens), not {self.overlap_tokens}"
            )
        if not 0.0 <= self.min_fill <= 1.0:
            raise ValueError(f"min_fill must be in [0, 1], not {self.min_fill}")


class Chunker:
    """Cuts documents into chunks (module docs).

    Args:
        config: Sizes; the defaults suit the packaged MiniLM encoder.
        counter: Counts tokens; the packaged encoder's tokenizer by default.
    """

    def __init__(
        self, config: ChunkingConfig | None = None, counter: TokenCounter | None = None
    ) -> None:
        self.config = config or ChunkingConfig()
        self.counter = counter or default_token_counter()

    def describe(self) -> dict[str, Any]:
        """What an index version records to say how its chunks were made."""
        return {"chunker": CHUNKER_VERSION, "tokenizer": self.counter.name} | asdict(self.config)

    def chunk(self, document: Document) -> list[Chunk]:
        """The document's chunks, in text order, ordinals from 0."""
        text = document.text
        ranges: list[tuple[int, int, tuple[str, ...], int]] = []
        for section in sections(document):
            spans = sentence_spans(text, section.start, section.end)
            if not any(s.start >= section.body_start for s in spans):
                continue  # a heading alone
            for start, end, tokens in self._section_chunks(text, spans):
                ranges.append((start, end, section.heading_path, tokens))
        return [
            Chunk.create(
                document, ordinal=i, start=start, end=end, heading_path=path, token_count=tokens
            )
            for i, (start, end, path, tokens) in enumerate(ranges)
        ]

    def chunk_many(self, documents: Iterable[Document]) -> list[Chunk]:
        """The chunks of each document, one document after the other."""
        return [chunk for doc in documents for chunk in self.chunk(doc)]

    def _atoms(self, text: str, spans: list[Span]) -> tuple[list[Span], list[int]]:
        """Sentences, with over-long ones cut down to pieces within the bound."""
        limit = self.config.max_tokens
        counts = self.counter.count_many([text[s.start : s.end] for s in spans])
        atoms: list[Span] = []
        tokens: list[int] = []
        for span, count in zip(spans, counts, strict=True):
            if count <= limit:
                atoms.append(span)
                tokens.append(count)
                continue
            words = word_spans(text, span.start, span.end)
            word_counts = self.counter.count_many([text[w.start : w.end] for w in words])
            first = True
            for word, word_count in zip(words, word_counts, strict=True):
                pieces = (
                    [(word, word_count)] if word_count <= limit else self._split_word(text, word)
                )
                for piece, piece_count in pieces:
                    atoms.append(Span(piece.start, piece.end, span.opens_paragraph and first))
                    tokens.append(piece_count)
                    first = False
        return atoms, tokens

    def _split_word(self, text: str, word: Span) -> list[tuple[Span, int]]:
        """A word over the bound, cut at characters into the longest pieces that fit."""
        limit = self.config.max_tokens
        pieces: list[tuple[Span, int]] = []
        start = word.start
        while start < word.end:
            low, high = start + 1, word.end  # find the longest prefix within the bound
            while low < high:
                mid = (low + high + 1) // 2
                if self.counter.count(text[start:mid]) <= limit:
                    low = mid
                else:
                    high = mid - 1
            pieces.append((Span(start, low, False), self.counter.count(text[start:low])))
            start = low
        return pieces

    def _section_chunks(self, text: str, spans: list[Span]) -> list[tuple[int, int, int]]:
        atoms, tokens = self._atoms(text, spans)
        out: list[tuple[int, int, int]] = []
        for first, last in pack(
            tokens,
            [a.opens_paragraph for a in atoms],
            max_tokens=self.config.max_tokens,
            overlap_tokens=self.config.overlap_tokens,
            min_fill=self.config.min_fill,
        ):
            out.extend(self._exact(text, atoms, first, last))
        return out

    def _exact(
        self, text: str, atoms: list[Span], first: int, last: int
    ) -> list[tuple[int, int, int]]:
        """Count the chunk's real text; re-cut it in the rare case the sum was short.

        Sentence counts add up exactly when sentences are separated by whitespace; pieces
        of one word cut at characters can tokenize differently once joined again.
        """
        start, end = atoms[first].start, atoms[last - 1].end
        count = self.counter.count(text[start:end])
        if count <= self.config.max_tokens or last - first == 1:
            return [(start, end, count)]
        out: list[tuple[int, int]] = []
        i = first
        while i < last:
            j = i + 1
            while j < last and (
                self.counter.count(text[atoms[i].start : atoms[j].end]) <= self.config.max_tokens
            ):
                j += 1
            out.append((atoms[i].start, atoms[j - 1].end))
            i = j
        return [(s, e, self.counter.count(text[s:e])) for s, e in out]


def pack(
    tokens: Sequence[int],
    opens_paragraph: Sequence[bool],
    *,
    max_tokens: int,
    overlap_tokens: int,
    min_fill: float,
) -> list[tuple[int, int]]:
    """Group consecutive atoms into chunks: ``[(first, last), ...]``, ``last`` exclusive.

    Steps 3 and 4 of the module docs, on token counts alone. Every atom must fit the
    bound by itself. Chunks after the first may start with atoms of the previous one
    (the overlap); each chunk adds at least one atom of its own.

    Example:
        Five 4-token sentences, a paragraph break before the third: the first chunk ends
        at the break rather than after the third sentence. With an overlap of 4, the
        second chunk would start with the second sentence.

        >>> pack([4, 4, 4, 4, 4], [True, False, True, False, False], max_tokens=12,
        ...      overlap_tokens=0, min_fill=0.5)
        [(0, 2), (2, 5)]
        >>> pack([4, 4, 4, 4, 4], [True, False, True, False, False], max_tokens=12,
        ...      overlap_tokens=4, min_fill=0.5)
        [(0, 2), (1, 4), (3, 5)]
    """
    n = len(tokens)
    before = [0, *accumulate(tokens)]  # before[i]: tokens in atoms [0, i)

    def total(i: int, j: int) -> int:
        return before[j] - before[i]

    chunks: list[tuple[int, int]] = []
    start = 0  # first atom of the current chunk (may belong to the overlap)
    fresh = 0  # first atom not yet in any chunk
    i = 0
    while i < n:
        if i == start or total(start, i + 1) <= max_tokens:
            i += 1
            continue
        cut = i  # the chunk [start, i) is full: end it at a paragraph break if one is good
        for j in range(i - 1, max(start, fresh), -1):
            if opens_paragraph[j] and total(start, j) >= min_fill * max_tokens:
                cut = j
                break
        chunks.append((start, cut))
        fresh = cut
        # Overlap: whole atoms from the end of that chunk, never its first one, as long
        # as they, the atoms carried over [cut, i) and atom i fit the bound together.
        carried = total(cut, i + 1)
        start = cut
        while (
            start - 1 > chunks[-1][0]
            and total(start - 1, cut) <= overlap_tokens
            and total(start - 1, cut) + carried <= max_tokens
        ):
            start -= 1
    if fresh < n:
        chunks.append((start, n))
    return chunks


def chunk_document(
    document: Document,
    config: ChunkingConfig | None = None,
    counter: TokenCounter | None = None,
) -> list[Chunk]:
    """Shorthand for ``Chunker(config, counter).chunk(document)``."""
    return Chunker(config, counter).chunk(document)
