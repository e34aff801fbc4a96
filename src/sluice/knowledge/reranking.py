"""Reranking: re-score the best hits of a search with a :class:`~.results.Reranker`.

The hook is ready; Sluice ships no reranker model (docs/knowledge.md, 'Reranking').
A reranker sees the query and the texts of the first ``depth`` hits and returns one score
each; those hits are re-ordered by it (ties keep their earlier order) and keep their
retriever scores, the reranker's joining them. Hits past ``depth`` follow unchanged.

Example:
    >>> class Longest:
    ...     name, depth = "longest", 10
    ...     def score(self, query, texts):
    ...         return [float(len(t)) for t in texts]
    >>> isinstance(Longest(), Reranker)
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sluice.knowledge.results import Reranker, SearchHit

__all__ = ["rerank"]


def rerank(reranker: Reranker, query: str, hits: Sequence[SearchHit]) -> list[SearchHit]:
    """``hits`` with the first ``reranker.depth`` re-scored and re-ordered (module docs)."""
    head, tail = list(hits[: reranker.depth]), list(hits[reranker.depth :])
    scores = list(reranker.score(query, [h.text for h in head]))
    if len(scores) != len(head):
        raise ValueError(
            f"reranker {reranker.name!r} returned {len(scores)} scores for {len(head)} texts"
        )
    order = sorted(range(len(head)), key=lambda i: -scores[i])
    ranked = [
        replace(head[i], score=scores[i], scores=replace(head[i].scores, rerank=scores[i]))
        for i in order
    ] + tail
    return [replace(hit, rank=n + 1) for n, hit in enumerate(ranked)]
