r"""Record files: JSONL (one document per line) and CSV FAQ tables (one per row).

Each record becomes its own document, keyed inside its file so that its id survives
reordering: the JSONL id field (``_id`` or ``id`` by default; the line number when there
is none), the FAQ ``id`` column or else the question itself. The content hash is taken
over the record as canonical JSON, so reformatting a line changes nothing but editing a
value does. Every other flat field or column becomes metadata.

A record that cannot be read (bad JSON, no text, a repeated key ...) is reported with
its line or row and skipped; the others are read. A file that cannot be read at all
(not UTF-8, no question/answer header) raises.

Example:
    >>> read = read_jsonl(
    ...     b'{"_id": "a1", "title": "Fees", "text": "No fees.", "product": "billing"}\n'
    ...     b'{"_id": "a2"}\n',
    ...     source="articles.jsonl",
    ... )
    >>> [(d.record_key, d.title, d.metadata["product"]) for d in read.documents]
    [('a1', 'Fees', 'billing')]
    >>> [(f.reason, f.location) for f in read.failures]
    [('bad_record', 'line 2')]
    >>> faq = read_faq_csv(b"question,answer\nCan I pay later?,No.\n", source="faq.csv")
    >>> faq.documents[0].text
    'Q: Can I pay later?\nA: No.'
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from sluice.errors import IngestError
from sluice.knowledge.documents import Document, DocumentFormat, MetadataValue, normalize_text
from sluice.knowledge.readers.common import (
    RecordsRead,
    decode_utf8,
    merge_metadata,
    title_from_source,
)

__all__ = ["FaqColumns", "JsonlFields", "read_faq_csv", "read_jsonl", "split_faq_text"]


@dataclass(frozen=True)
class JsonlFields:
    """Which JSONL fields hold the text, the title and the record id.

    Attributes:
        text: The field with the document text (required in every record).
        title: The field with the title; absent -> the file name and record key.
        id: The field with the record's id; ``None`` tries ``_id`` then ``id``, then
            falls back to the line number (which changes if lines move: give ids).
    """

    text: str = "text"
    title: str = "title"
    id: str | None = None


@dataclass(frozen=True)
class FaqColumns:
    """Which CSV columns hold the question, the answer and an optional row id.

    Header names match case-insensitively, surrounding spaces ignored.
    """

    question: str = "question"
    answer: str = "answer"
    id: str = "id"


def _canonical(record: Mapping[str, object]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _refuse(source: str, location: str, message: str, reason: str = "bad_record") -> IngestError:
    return IngestError(f"{source} {location}: {message}", path=source, reason=reason,
                       location=location)  # fmt: skip


def _record_key(record: Mapping[str, object], fields: JsonlFields, line: int) -> str:
    names = [fields.id] if fields.id else ["_id", "id"]
    for name in names:
        value = record.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return f"line:{line}"


def read_jsonl(
    data: bytes,
    *,
    source: str,
    fields: JsonlFields = JsonlFields(),
    metadata: Mapping[str, MetadataValue] | None = None,
) -> RecordsRead:
    """One document per JSONL line (module docs); blank lines are skipped.

    Args:
        data: The file's bytes (UTF-8).
        source: Its source URI.
        fields: Where the text, title and id are.
        metadata: The caller's key=value metadata, for every record.

    Raises:
        IngestError: The file is not UTF-8 (``not_utf8``).
    """
    out = RecordsRead()
    seen: set[str] = set()
    name = title_from_source(source)
    for number, line in enumerate(decode_utf8(data, source).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            out.failures.append(_refuse(source, where, f"not JSON ({exc.msg})"))
            continue
        if not isinstance(record, dict):
            out.failures.append(_refuse(source, where, "not a JSON object"))
            continue
        text = record.get(fields.text)
        if not isinstance(text, str) or not normalize_text(text):
            out.failures.append(
                _refuse(source, where, f"no text in field {fields.text!r} (a non-empty string)")
            )
            continue
        key = _record_key(record, fields, number)
        if key in seen:
            out.failures.append(_refuse(source, where, f"id {key!r} repeats", "duplicate_id"))
            continue
        seen.add(key)
        title = record.get(fields.title)
        own = {fields.text, fields.title, *([fields.id] if fields.id else ["_id", "id"])}
        found = {k: v for k, v in record.items() if k not in own}
        nested = record.get("metadata")
        if isinstance(nested, dict):
            found = {k: v for k, v in found.items() if k != "metadata"} | nested
        out.documents.append(
            Document.create(
                source=source,
                format=DocumentFormat.JSONL,
                text=normalize_text(text),
                raw=_canonical(record),
                title=" ".join(title.split()) if isinstance(title, str) and title.strip()
                else f"{name} {key}",
                metadata=merge_metadata(found, metadata),
                record_key=key,
            )
        )  # fmt: skip
    return out


def read_faq_csv(
    data: bytes,
    *,
    source: str,
    columns: FaqColumns = FaqColumns(),
    metadata: Mapping[str, MetadataValue] | None = None,
) -> RecordsRead:
    r"""One document per FAQ row: text ``"Q: question\nA: answer"``, title the question.

    Args:
        data: The file's bytes (UTF-8, RFC 4180 CSV with a header row).
        source: Its source URI.
        columns: The question, answer and id column names.
        metadata: The caller's key=value metadata, for every row.

    Raises:
        IngestError: Not UTF-8 (``not_utf8``), or the header lacks the question or
            answer column (``missing_column``).
    """
    text = decode_utf8(data, source)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        header = []
    except csv.Error as exc:
        raise _refuse(source, "row 0", f"not CSV ({exc})", "corrupt") from None
    missing = [c for c in (columns.question, columns.answer) if c.lower() not in header]
    if missing:
        raise IngestError(
            f"{source} has no {' or '.join(map(repr, missing))} column (header: {header})",
            path=source,
            reason="missing_column",
            hint=f"an FAQ table needs a header row with {columns.question!r} and "
            f"{columns.answer!r} columns",
        )
    q_col, a_col = header.index(columns.question.lower()), header.index(columns.answer.lower())
    id_col = header.index(columns.id.lower()) if columns.id.lower() in header else None
    out = RecordsRead()
    seen: set[str] = set()
    row_number = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            row_number += 1
            out.failures.append(_refuse(source, f"row {row_number}", f"not CSV ({exc})"))
            continue
        row_number += 1
        where = f"row {row_number}"
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            out.failures.append(
                _refuse(source, where, f"{len(row)} cells for {len(header)} columns")
            )
            continue
        record = dict(zip(header, row, strict=True))
        question, answer = normalize_text(row[q_col]), normalize_text(row[a_col])
        if not question or not answer:
            out.failures.append(_refuse(source, where, "an empty question or answer"))
            continue
        key = row[id_col].strip() if id_col is not None and row[id_col].strip() else question
        if key in seen:
            out.failures.append(_refuse(source, where, f"{key!r} repeats", "duplicate_id"))
            continue
        seen.add(key)
        found = {k: v for i, (k, v) in enumerate(record.items()) if i not in (q_col, a_col, id_col)}
        out.documents.append(
            Document.create(
                source=source,
                format=DocumentFormat.CSV_FAQ,
                text=f"Q: {question}\nA: {answer}",
                raw=_canonical(record),
                title=" ".join(question.split()),
                metadata=merge_metadata(found, metadata),
                record_key=key,
            )
        )
    return out


_FAQ_TEXT = re.compile(r"\AQ: (?P<question>.+?)\nA: (?P<answer>.+)\Z", re.DOTALL)


def split_faq_text(text: str) -> tuple[str, str] | None:
    r"""(question, answer) of a whole FAQ entry as :func:`read_faq_csv` writes it, else None.

    Example:
        >>> split_faq_text("Q: Can I pay later?\nA: No.")
        ('Can I pay later?', 'No.')
        >>> split_faq_text("# Refunds\n\nThey take 5 days.") is None
        True
    """
    found = _FAQ_TEXT.match(text)
    return (found["question"], found["answer"]) if found else None
