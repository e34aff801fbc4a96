"""Readers: one per source format, each turning a file's bytes into documents.

Single-document readers (Markdown, text, HTML, PDF) return a
:class:`~sluice.knowledge.Document` or raise :class:`~sluice.errors.IngestError`; record
readers (JSONL, CSV FAQ) return :class:`RecordsRead`, the records they read beside the
ones they refused. :func:`sluice.knowledge.read_sources` picks the reader by extension.
"""

from sluice.knowledge.readers.common import RecordsRead
from sluice.knowledge.readers.html import read_html
from sluice.knowledge.readers.markdown import parse_front_matter, read_markdown
from sluice.knowledge.readers.pdf import read_pdf
from sluice.knowledge.readers.plain import read_text
from sluice.knowledge.readers.records import (
    FaqColumns,
    JsonlFields,
    read_faq_csv,
    read_jsonl,
    split_faq_text,
)

__all__ = [
    "FaqColumns",
    "JsonlFields",
    "RecordsRead",
    "parse_front_matter",
    "read_faq_csv",
    "read_html",
    "read_jsonl",
    "read_markdown",
    "read_pdf",
    "read_text",
    "split_faq_text",
]
