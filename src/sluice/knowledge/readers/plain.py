r"""Plain text: paragraphs only, no headings; the title is the file name.

Example:
    >>> doc = read_text(b"Opening hours\r\n\r\nWe answer within one day.", source="hours.txt")
    >>> doc.title, doc.text
    ('hours', 'Opening hours\n\nWe answer within one day.')
"""

from __future__ import annotations

from collections.abc import Mapping

from sluice.knowledge.documents import Document, DocumentFormat, MetadataValue, normalize_text
from sluice.knowledge.readers.common import decode_utf8, merge_metadata, title_from_source

__all__ = ["read_text"]


def read_text(
    data: bytes, *, source: str, metadata: Mapping[str, MetadataValue] | None = None
) -> Document:
    """One UTF-8 text file as a document.

    Args:
        data: The file's bytes.
        source: Its source URI.
        metadata: The caller's key=value metadata.

    Raises:
        IngestError: The bytes are not UTF-8 (``not_utf8``).
    """
    return Document.create(
        source=source,
        format=DocumentFormat.TEXT,
        text=normalize_text(decode_utf8(data, source)),
        raw=data,
        title=title_from_source(source),
        metadata=merge_metadata({}, metadata),
    )
