r"""Documents and chunks: what the knowledge base keeps, and the ids that tie them together.

A :class:`Document` is one source turned into normalized text: a file, or one record of a
JSONL or CSV file. A :class:`Chunk` is a span ``[start, end)`` of that text, the unit the
indexes embed and search, so ``doc.text[chunk.start:chunk.end] == chunk.text`` always
holds and a citation can point at the exact words it quotes.

Ids are derived, never random, so re-reading the same sources gives the same ids:

- ``doc_id``: sha256 of the source URI and the record key (JSONL id, FAQ question);
- ``chunk_id``: sha256 of the doc id, the chunk's ordinal and the sha256 of its text.

Two hashes serve change detection (see :func:`sluice.knowledge.plan_changes`):
``sha256`` is the content hash of the raw bytes (or of the record, as canonical JSON);
``fingerprint`` also covers what Sluice derived from them (title, metadata, extraction
version), so re-labelling a batch is a change even when the bytes are not.

Example:
    >>> doc = Document.create(
    ...     source="kb/refunds.md",
    ...     format=DocumentFormat.MARKDOWN,
    ...     text="# Refunds\n\nRefunds take 5 days.",
    ...     raw=b"# Refunds\n\nRefunds take 5 days.",
    ...     title="Refunds",
    ...     headings=(Heading(level=1, title="Refunds", start=0, end=9),),
    ... )
    >>> doc.doc_id == make_doc_id("kb/refunds.md")
    True
    >>> chunk = Chunk.create(doc, ordinal=0, start=11, end=31, heading_path=("Refunds",),
    ...                      token_count=6)
    >>> chunk.text
    'Refunds take 5 days.'
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "EXTRACTION_VERSION",
    "Chunk",
    "Document",
    "DocumentFormat",
    "Heading",
    "MetadataValue",
    "make_chunk_id",
    "make_doc_id",
    "normalize_text",
    "sha256_hex",
]

#: Bumped whenever a reader or :func:`normalize_text` changes the text it produces for
#: the same bytes; it is part of every fingerprint, so the next ingest re-chunks.
EXTRACTION_VERSION = 1

#: A metadata value: scalars for equality and range filters, a tuple of strings for tags.
MetadataValue = str | int | float | bool | tuple[str, ...]

_ID_HEX = 32  # 128 bits: collision-free for any knowledge base, short enough to read


class DocumentFormat(StrEnum):
    """The reader a document came through."""

    MARKDOWN = "markdown"
    TEXT = "text"
    HTML = "html"
    PDF = "pdf"
    JSONL = "jsonl"
    CSV_FAQ = "csv_faq"


def sha256_hex(data: bytes | str) -> str:
    """Hex sha256 of bytes, or of a string's UTF-8 encoding.

    Example:
        >>> sha256_hex("")[:12]
        'e3b0c44298fc'
    """
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def make_doc_id(source: str, record_key: str | None = None) -> str:
    """The stable id of the document at ``source`` (and ``record_key`` inside it).

    Example:
        >>> make_doc_id("kb/faq.csv", "How do I reset my password?") != make_doc_id("kb/faq.csv")
        True
    """
    return sha256_hex(f"{source}\x00{record_key or ''}")[:_ID_HEX]


def make_chunk_id(doc_id: str, ordinal: int, text: str) -> str:
    """The stable id of a document's ``ordinal``-th chunk with this text.

    Example:
        >>> len(make_chunk_id("0" * 32, 0, "Refunds take 5 days."))
        32
    """
    return sha256_hex(f"{doc_id}\x00{ordinal}\x00{sha256_hex(text)}")[:_ID_HEX]


# Spaces that are not ASCII spaces become one; invisible characters go.
_ODD_SPACES = re.compile("[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")
_TRAILING = re.compile(r"[ \t]+(?=\n|$)")
_BLANK_RUNS = re.compile(r"\n{3,}")


def normalize_text(text: str) -> str:
    r"""The canonical form every reader produces and every chunk offset refers to.

    Line ends become ``\n``; NFC; odd spaces become plain spaces; invisible and control
    characters (except tab and newline) are removed; trailing spaces on each line are
    removed; runs of blank lines become one blank line; the ends are stripped. Applying
    it twice changes nothing.

    Example:
        >>> normalize_text("Title\r\n\r\n\r\nBody\u00a0text  \n")
        'Title\n\nBody text'
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = unicodedata.normalize("NFC", text)
    text = _ODD_SPACES.sub(" ", text)
    text = _INVISIBLE.sub("", text)
    text = _CONTROL.sub("", text)
    text = _TRAILING.sub("", text)
    text = _BLANK_RUNS.sub("\n\n", text)
    return text.strip()


@dataclass(frozen=True)
class Heading:
    """A heading in a document's text: its level (1 = top), its plain title, its line.

    ``start``/``end`` delimit the heading's line(s) in :attr:`Document.text`; the section
    it opens runs to the next heading.
    """

    level: int
    title: str
    start: int
    end: int


@dataclass(frozen=True)
class Document:
    """One source as normalized text, with its ids, hashes, headings and metadata.

    Build it with :meth:`create`, which derives the id and hashes; readers do that.

    Attributes:
        doc_id: ``make_doc_id(source, record_key)``.
        source: Where it came from: a ``file://`` URI, or a path relative to the ingest
            root when one was given.
        format: The reader that produced it.
        title: From front matter, ``<title>``, the first heading, the record or the
            file name, in that order of preference.
        text: The normalized text (:func:`normalize_text`); chunk offsets refer to it.
        sha256: Content hash of the raw bytes, or of the record as canonical JSON.
        metadata: ``title``, ``tags``, ``language``, ``product`` where known, plus any
            key=value the caller gave (the caller's values win).
        headings: The headings found in ``text``, in order.
        record_key: The record's key inside a JSONL/CSV file; ``None`` for whole files.
    """

    doc_id: str
    source: str
    format: DocumentFormat
    title: str
    text: str
    sha256: str
    metadata: Mapping[str, MetadataValue] = field(default_factory=dict, hash=False)
    headings: tuple[Heading, ...] = ()
    record_key: str | None = None

    def __post_init__(self) -> None:
        # A private copy, typed read-only (a plain dict so that documents pickle).
        object.__setattr__(self, "metadata", dict(self.metadata))
        last = 0
        for heading in self.headings:
            if not last <= heading.start < heading.end <= len(self.text):
                raise ValueError(f"heading {heading.title!r} is outside {self.source}'s text")
            last = heading.end

    @classmethod
    def create(
        cls,
        *,
        source: str,
        format: DocumentFormat,
        text: str,
        raw: bytes,
        title: str,
        metadata: Mapping[str, MetadataValue] | None = None,
        headings: tuple[Heading, ...] = (),
        record_key: str | None = None,
    ) -> Document:
        """A document with its id and content hash derived; ``title`` joins the metadata.

        Args:
            source: The source URI (or root-relative path).
            format: The reader's format.
            text: Already normalized text.
            raw: The bytes the content hash is taken over.
            title: The document's title.
            metadata: Metadata; ``title`` is set from ``title``.
            headings: Headings found in ``text``.
            record_key: The record's key inside the file, if it is one record of many.
        """
        meta = dict(metadata or {})
        meta["title"] = title
        return cls(
            doc_id=make_doc_id(source, record_key),
            source=source,
            format=format,
            title=title,
            text=text,
            sha256=sha256_hex(raw),
            metadata=meta,
            headings=headings,
            record_key=record_key,
        )

    @property
    def fingerprint(self) -> str:
        """sha256 over the content hash and everything derived from it.

        What a store compares to decide whether a document changed: the bytes, the
        title, the metadata, the format and :data:`EXTRACTION_VERSION`.
        """
        meta = {k: list(v) if isinstance(v, tuple) else v for k, v in self.metadata.items()}
        body = json.dumps(
            [EXTRACTION_VERSION, self.format.value, self.sha256, self.title, meta],
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return sha256_hex(body)


@dataclass(frozen=True)
class Chunk:
    """A span of a document's text: the unit that is indexed, retrieved and cited.

    Attributes:
        chunk_id: ``make_chunk_id(doc_id, ordinal, text)``.
        doc_id: The document it belongs to.
        ordinal: 0-based position among the document's chunks.
        text: Exactly ``document.text[start:end]``.
        start: Offset of the first character in :attr:`Document.text`.
        end: Offset one past the last character.
        heading_path: Titles of the enclosing headings, outermost first; ``()`` before
            the first heading.
        token_count: Tokens in ``text`` as the chunker's counter counts them, without
            the encoder's special tokens.
    """

    chunk_id: str
    doc_id: str
    ordinal: int
    text: str
    start: int
    end: int
    heading_path: tuple[str, ...]
    token_count: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end or self.end - self.start != len(self.text):
            raise ValueError(
                f"chunk {self.ordinal} of {self.doc_id}: offsets [{self.start}, {self.end}) "
                f"do not fit its {len(self.text)} characters"
            )

    @classmethod
    def create(
        cls,
        document: Document,
        *,
        ordinal: int,
        start: int,
        end: int,
        heading_path: tuple[str, ...],
        token_count: int,
    ) -> Chunk:
        """The chunk of ``document`` at ``[start, end)``, its text sliced and id derived."""
        text = document.text[start:end]
        return cls(
            chunk_id=make_chunk_id(document.doc_id, ordinal, text),
            doc_id=document.doc_id,
            ordinal=ordinal,
            text=text,
            start=start,
            end=end,
            heading_path=heading_path,
            token_count=token_count,
        )
