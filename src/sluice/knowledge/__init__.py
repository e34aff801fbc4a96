r"""The knowledge layer: documents in, hybrid search with citations out, versioned indexes.

- :func:`read_sources` walks files and folders (Markdown, text, HTML, PDF, JSONL, CSV
  FAQ) into :class:`Document` s, reporting each bad file or record as an
  :class:`IngestFailure` while the rest are read.
- :func:`plan_changes` tells which documents are new, changed, unchanged or gone,
  against a store's fingerprints.
- :class:`Chunker` cuts a document into :class:`Chunk` s by headings, paragraphs and
  sentences, bounded in the encoder's tokens, with overlap; every chunk's offsets slice
  its document's text exactly.
- :class:`KnowledgeBase` stores documents, indexes them into index versions (BM25 and
  vectors, embedded through the model gateway), searches them (``bm25``, ``dense`` or
  ``hybrid`` with reciprocal rank fusion, metadata :class:`Filter` s) and returns a
  :class:`SearchResult`: hits with per-retriever scores and :class:`Citation` s, and the
  :class:`IndexVersion` that answered. Versions are built beside the active one,
  activated atomically and rolled back (audited).

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

from sluice.knowledge.analysis import ANALYZER, Analyzer
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
from sluice.knowledge.filters import Filter, parse_filter, parse_filters
from sluice.knowledge.ingest import (
    DEFAULT_MAX_FILE_BYTES,
    ChangePlan,
    IngestBatch,
    IngestFailure,
    ReaderOptions,
    plan_changes,
    read_sources,
)
from sluice.knowledge.ingestion import IngestReport
from sluice.knowledge.keyword_index import KeywordIndex
from sluice.knowledge.knowledge_base import (
    DEFAULT_CHUNKING,
    DEFAULT_INDEX,
    KnowledgeBase,
    KnowledgeStats,
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
    split_faq_text,
)
from sluice.knowledge.results import (
    Citation,
    FusionConfig,
    Reranker,
    RetrievalMode,
    RetrieverScores,
    SearchHit,
    SearchResult,
)
from sluice.knowledge.tokens import (
    ApproxTokenCounter,
    TokenCounter,
    WordPieceCounter,
    default_token_counter,
)
from sluice.knowledge.versions import Activation, IndexVersion, VersionStatus

__all__ = [
    "ANALYZER",
    "CHUNKER_VERSION",
    "DEFAULT_CHUNKING",
    "DEFAULT_INDEX",
    "DEFAULT_MAX_FILE_BYTES",
    "EXTRACTION_VERSION",
    "Activation",
    "Analyzer",
    "ApproxTokenCounter",
    "ChangePlan",
    "Chunk",
    "Chunker",
    "ChunkingConfig",
    "Citation",
    "Document",
    "DocumentFormat",
    "FaqColumns",
    "Filter",
    "FusionConfig",
    "Heading",
    "IndexVersion",
    "IngestBatch",
    "IngestFailure",
    "IngestReport",
    "JsonlFields",
    "KeywordIndex",
    "KnowledgeBase",
    "KnowledgeStats",
    "MetadataValue",
    "ReaderOptions",
    "RecordsRead",
    "Reranker",
    "RetrievalMode",
    "RetrieverScores",
    "SearchHit",
    "SearchResult",
    "TokenCounter",
    "VersionStatus",
    "WordPieceCounter",
    "chunk_document",
    "default_token_counter",
    "make_chunk_id",
    "make_doc_id",
    "normalize_text",
    "parse_filter",
    "parse_filters",
    "plan_changes",
    "read_faq_csv",
    "read_html",
    "read_jsonl",
    "read_markdown",
    "read_pdf",
    "read_sources",
    "read_text",
    "split_faq_text",
]
