"""Hybrid retrieval: BM25 and vector candidates, filtered, fused by reciprocal rank.

One search, inside one read transaction of the store:

1. the filters (:mod:`sluice.knowledge.filters`) become the list of documents allowed,
   evaluated in Python over the index's document metadata (cached per process until the
   documents change);
2. the keyword index returns its best ``pool`` chunks for the query's terms
   (:mod:`sluice.knowledge.keyword_index`), the vector index its best ``pool`` chunks for
   the query's embedding (:mod:`sluice.knowledge.vector_index`), both restricted to the
   allowed documents;
3. in ``hybrid`` mode the two rankings are fused: ``fused(c) = sum_r w_r / (k + rank_r(c))``
   (Cormack, Clarke and Buettcher 2009; ``k = 60``), ties broken by the better single
   rank, then by chunk id; in ``bm25`` and ``dense`` mode the one ranking is kept;
4. the first ``top_k`` are read back with their documents to make hits and citations.

Example:
    >>> fuse({1: 1, 2: 2}, {2: 1, 3: 2}, FusionConfig())  # doctest: +ELLIPSIS
    [(2, 0.0325...), (1, 0.0163...), (3, 0.0161...)]
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select

from sluice.knowledge.filters import Filter, matches_all
from sluice.knowledge.index_store import DocumentRow, chunk_rows, document_rows
from sluice.knowledge.results import (
    Citation,
    FusionConfig,
    RetrievalMode,
    RetrieverScores,
    SearchHit,
)
from sluice.knowledge.tables import kb_indexes

__all__ = ["DocumentFilterCache", "fuse", "make_hits"]


def fuse(
    bm25_ranks: Mapping[int, int], dense_ranks: Mapping[int, int], fusion: FusionConfig
) -> list[tuple[int, float]]:
    """Weighted reciprocal rank fusion of two rankings (``chunk -> rank``, 1 = best).

    Returns ``[(chunk, fused score)]``, best first (module docs).
    """
    scores: dict[int, float] = {}
    for ranks, weight in ((bm25_ranks, fusion.bm25_weight), (dense_ranks, fusion.dense_weight)):
        for chunk, rank in ranks.items():
            scores[chunk] = scores.get(chunk, 0.0) + weight / (fusion.k + rank)

    def best_single(chunk: int) -> int:
        return min(bm25_ranks.get(chunk, 1 << 30), dense_ranks.get(chunk, 1 << 30))

    order = sorted(scores, key=lambda c: (-scores[c], best_single(c), c))
    return [(c, scores[c]) for c in order]


class DocumentFilterCache:
    """Which documents meet a set of filters, per index, until its documents change."""

    def __init__(self, max_filters: int = 64) -> None:
        self._docs: dict[str, tuple[int, list[DocumentRow]]] = {}
        self._allowed: OrderedDict[tuple[str, int, tuple[Filter, ...]], list[int]] = OrderedDict()
        self._max = max_filters
        self._lock = threading.Lock()

    def allowed(self, conn: Connection, index: str, filters: Sequence[Filter]) -> list[int] | None:
        """Row ids of the documents meeting every filter; None when there are no filters."""
        if not filters:
            return None
        generation = int(
            conn.execute(
                select(kb_indexes.c.docs_generation).where(kb_indexes.c.name == index)
            ).scalar()
            or 0
        )
        key = (index, generation, tuple(filters))
        with self._lock:
            if key in self._allowed:
                self._allowed.move_to_end(key)
                return self._allowed[key]
            held = self._docs.get(index)
        if held is None or held[0] != generation:
            held = (generation, document_rows(conn, index))
        allowed = [d.pk for d in held[1] if matches_all(filters, d.filterable())]
        with self._lock:
            self._docs[index] = held
            self._allowed[key] = allowed
            while len(self._allowed) > self._max:
                self._allowed.popitem(last=False)
        return allowed


def make_hits(
    conn: Connection,
    ranked: Sequence[tuple[int, float]],
    *,
    mode: RetrievalMode,
    bm25: Mapping[int, tuple[int, float]],
    dense: Mapping[int, tuple[int, float]],
    version_ref: str,
) -> list[SearchHit]:
    """Hits for the ranked chunk ids, read back with their documents.

    ``bm25``/``dense`` map a chunk id to its ``(rank, score)`` in that retriever.
    """
    rows = chunk_rows(conn, [c for c, _ in ranked])
    hits: list[SearchHit] = []
    for chunk, score in ranked:
        row: Any = rows.get(chunk)
        if row is None:  # pragma: no cover - deleted between retrieval and read: same txn
            continue
        b, d = bm25.get(chunk), dense.get(chunk)
        scores = RetrieverScores(
            bm25=b[1] if b else None,
            bm25_rank=b[0] if b else None,
            dense=d[1] if d else None,
            dense_rank=d[0] if d else None,
            fused=score if mode == "hybrid" else None,
        )
        metadata = {
            k: tuple(v) if isinstance(v, list) else v for k, v in (row.doc_metadata or {}).items()
        }
        hits.append(
            SearchHit(
                rank=len(hits) + 1,
                score=score,
                text=row.text,
                citation=Citation(
                    doc_id=row.doc_id,
                    source=row.source,
                    title=row.title,
                    chunk_id=row.chunk_id,
                    start=int(row.start),
                    end=int(row.end),
                    heading_path=tuple(row.heading_path),
                    index_version=version_ref,
                ),
                scores=scores,
                metadata=metadata,
            )
        )
    return hits
