r"""The knowledge layer: documents in, chunks out (search and indexes come next).

This increment reads sources and cuts them into chunks; it stores nothing yet.

- :func:`read_sources` walks files and folders (Markdown, text, HTML, PDF, JSONL, CSV
  FAQ) into :class:`Document` s, reporting each bad file or record as an
  :class:`IngestFailure` while the rest are read.
- :func:`plan_changes` tells which documents are new, changed, unchanged or gone,
  against a store's fingerprints.
- :class:`Chunker` cuts a document into :class:`Chunk` s by headings, paragraphs and
  sentences, bounded in the encoder's tokens, with overlap; every chunk's offsets slice
  its document's text exactly.

It knows nothing of workflows or reviews: it answers calls.

Example:
    >>> import tempfile, pathlib
    >>> tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(tmp.name)
    >>> _ = (folder / "refunds.md").write_text(
    ...     "---\ntitle: Refunds\nproduct: billing\n---\n# Timing\n\nRefunds take 5 days."
    ... )
    >>> batch = read_sources(folder, root=folder)
    >>> chunks = Chunker(counter=ApproxTokenCounter()).chunk(batch.documents[0])
    >>> [(c.heading_path, c.text) for c in chunks]
    [(('Timing',), '# Timing\n\nRefunds take 5 days.')]
    >>> tmp.cleanup()
"""

from sluice.knowledge.chunking import CHUNKER_VERSION, Chunker, ChunkingConfig, chunk_document
from sluice.knowledge.documents import (
    EXTRACTION_VERSION,
    Chunk,
    Document,
    DocumentFormat,
    Heading,
    MetadataValue,
    make_chunk_id,
    make_doc_id,
    normalize_text,
)
from sluice.knowledge.ingest import (
    DEFAULT_MAX_FILE_BYTES,
    ChangePlan,
    IngestBatch,
    IngestFailure,
    ReaderOptions,
    plan_changes,
    read_sources,
)
from sluice.knowledge.readers import (
    FaqColumns,
    JsonlFields,
    RecordsRead,
    read_faq_csv,
    read_html,
    read_jsonl,
    read_markdown,
    read_pdf,
    read_text,
)
from sluice.knowledge.tokens import (
    ApproxTokenCounter,
    TokenCounter,
    WordPieceCounter,
    default_token_counter,
)

__all__ = [
    "CHUNKER_VERSION",
    "DEFAULT_MAX_FILE_BYTES",
    "EXTRACTION_VERSION",
    "ApproxTokenCounter",
    "ChangePlan",
    "Chunk",
    "Chunker",
    "ChunkingConfig",
    "Document",
    "DocumentFormat",
    "FaqColumns",
    "Heading",
    "IngestBatch",
    "IngestFailure",
    "JsonlFields",
    "MetadataValue",
    "ReaderOptions",
    "RecordsRead",
    "TokenCounter",
    "WordPieceCounter",
    "chunk_document",
    "default_token_counter",
    "make_chunk_id",
    "make_doc_id",
    "normalize_text",
    "plan_changes",
    "read_faq_csv",
    "read_html",
    "read_jsonl",
    "read_markdown",
    "read_pdf",
    "read_sources",
    "read_text",
]
