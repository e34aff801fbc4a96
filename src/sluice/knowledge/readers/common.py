"""What every reader shares: decoding, titles from file names, metadata values.

A reader turns the bytes of one file into documents. It raises
:class:`~sluice.errors.IngestError` for a file it cannot read at all, and a record reader
(JSONL, CSV) returns the records it could not read beside the ones it could, so that one
bad line costs one record, not the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from urllib.parse import unquote, urlparse

from sluice.errors import IngestError
from sluice.knowledge.documents import Document, MetadataValue

__all__ = [
    "RecordsRead",
    "coerce_metadata_value",
    "decode_utf8",
    "merge_metadata",
    "split_tags",
    "title_from_source",
]

# Keys whose value is a list of labels, written "a, b" or "[a, b]".
LIST_KEYS = frozenset({"tags", "keywords", "intents"})
# Other spellings of the standard keys.
ALIASES = {"lang": "language", "keywords": "tags", "product_area": "product"}


@dataclass
class RecordsRead:
    """What a record reader got from one file: documents, and the records it refused."""

    documents: list[Document] = field(default_factory=list)
    failures: list[IngestError] = field(default_factory=list)


def decode_utf8(data: bytes, source: str) -> str:
    """UTF-8 text (a BOM is dropped), or an ``IngestError`` that says how to fix it."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(
            f"{source} is not UTF-8 text (byte {exc.start}: {exc.reason})",
            path=source,
            reason="not_utf8",
            hint="convert it to UTF-8, e.g. iconv -f cp1252 -t utf-8",
        ) from None


def title_from_source(source: str) -> str:
    """A readable title from a file name: ``kb/double-charges.md`` -> ``double charges``.

    Example:
        >>> title_from_source("file:///srv/kb/double_charges.md")
        'double charges'
    """
    path = unquote(urlparse(source).path) if "://" in source else source
    stem = PurePosixPath(path).stem
    return re.sub(r"[-_]+", " ", stem).strip() or stem


def split_tags(value: str) -> tuple[str, ...]:
    """``"a, b"``, ``"a; b"`` or ``"[a, 'b']"`` as a tuple of labels.

    Example:
        >>> split_tags("[refunds, 'billing' ]")
        ('refunds', 'billing')
    """
    inner = value.strip().removeprefix("[").removesuffix("]")
    parts = (p.strip().strip("'\"").strip() for p in re.split(r"[,;]", inner))
    return tuple(p for p in parts if p)


def coerce_metadata_value(key: str, value: object) -> MetadataValue | None:
    """A JSON or front-matter value as metadata, or ``None`` when it has no flat form.

    Lists of scalars become tuples of strings; list keys (``tags``...) given as strings
    are split; nested objects are not metadata.
    """
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return split_tags(value) if key in LIST_KEYS else value
    if isinstance(value, list | tuple) and all(
        isinstance(v, str | int | float) and not isinstance(v, bool) for v in value
    ):
        return tuple(str(v) for v in value)
    return None


def merge_metadata(
    found: Mapping[str, object], given: Mapping[str, MetadataValue] | None
) -> dict[str, MetadataValue]:
    """Metadata found in the source, normalized, overlaid with the caller's (which wins)."""
    out: dict[str, MetadataValue] = {}
    for raw_key, value in found.items():
        key = ALIASES.get(raw_key.strip().lower(), raw_key.strip().lower())
        coerced = coerce_metadata_value(key, value)
        if key and coerced is not None and coerced not in ("", ()):
            out[key] = coerced
    out.update(given or {})
    return out
