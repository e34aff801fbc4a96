"""The parts of ``bench.retrieval`` that talk to the knowledge base.

* :func:`write_corpus` turns a BEIR corpus into the JSONL that ``KnowledgeBase.ingest``
  reads (in a temporary folder, never in the repository): one record per document, its
  text the title and the abstract as two paragraphs, its BEIR id kept as metadata.
* :func:`document_ranking` turns chunk hits into BEIR's per-document ranking: a document
  ranks where its best chunk ranks (max score), and the search is widened until it
  yields ``depth`` distinct documents or the retriever runs out.
* :func:`latencies` times ordinary searches (``k`` chunks) one after the other.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench._retrieval_reference import joined

#: The metadata key that carries a document's BEIR id through the knowledge base.
CORPUS_ID = "corpus_id"

#: ``tick(phase, done, total)``, as the knowledge base's progress callbacks.
Tick = Callable[[str, int, int], None]


def write_corpus(corpus: Mapping[str, tuple[str, str]], path: Path) -> None:
    with path.open("w", encoding="utf-8") as out:
        for doc_id, (title, text) in corpus.items():
            record = {"_id": doc_id, "title": title, "text": joined(title, text), CORPUS_ID: doc_id}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


@contextmanager
def progress_bars(enabled: bool) -> Iterator[Tick]:
    """Rich progress bars on stderr (a no-op when stderr is not a terminal)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield lambda phase, done, total: None
        return
    with Progress(
        TextColumn("{task.description:<34}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bars:
        tasks: dict[str, Any] = {}

        def tick(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bars.add_task(phase, total=total)
            bars.update(tasks[phase], completed=done, total=total)

        yield tick


def document_ranking(
    kb: Any, query: str, mode: str, *, version: int, depth: int, chunks_per_doc: float
) -> tuple[list[str], int]:
    """The first ``depth`` documents for ``query`` and how many chunks were asked for.

    Starts with enough chunks for ``depth`` documents at the index's mean chunks per
    document and doubles until ``depth`` distinct documents come back or the search
    returns fewer hits than asked (nothing more to find).
    """
    k = max(depth, math.ceil(depth * chunks_per_doc * 1.5))
    while True:
        result = kb.search(query, k=k, mode=mode, version=version)
        ranked = list(dict.fromkeys(str(h.metadata[CORPUS_ID]) for h in result.hits))
        if len(ranked) >= depth or len(result.hits) < k:
            return ranked[:depth], k
        k *= 2


def rankings(
    kb: Any,
    queries: Mapping[str, str],
    mode: str,
    *,
    version: int,
    depth: int,
    chunks_per_doc: float,
    tick: Tick,
    label: str,
) -> tuple[dict[str, list[str]], dict[str, float]]:
    """Per-document rankings of every query, and what the searches took."""
    out: dict[str, list[str]] = {}
    seconds: list[float] = []
    asked: list[int] = []
    for i, (qid, query) in enumerate(queries.items()):
        t0 = time.perf_counter()
        out[qid], k = document_ranking(
            kb, query, mode, version=version, depth=depth, chunks_per_doc=chunks_per_doc
        )
        seconds.append(time.perf_counter() - t0)
        asked.append(k)
        tick(label, i + 1, len(queries))
    return out, {
        "chunks_asked_p50": statistics.median(asked),
        "chunks_asked_max": max(asked),
        "ms_p50": round(statistics.median(seconds) * 1000, 2),
    }


def percentiles_ms(seconds: Sequence[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
    return {
        "p50": round(statistics.median(ordered) * 1000, 2),
        "p95": round(p95 * 1000, 2),
        "n": len(ordered),
    }


def latencies(
    kb: Any,
    queries: Sequence[str],
    modes: Sequence[str],
    *,
    version: int,
    k: int,
    tick: Tick,
    label: str,
) -> dict[str, dict[str, float]]:
    """p50/p95 wall time of ``kb.search(query, k=k)`` per mode, queries one at a time.

    Modes alternate query by query, so that a slow spell of the machine is shared. One
    untimed search per mode first loads what a process loads once (vectors, filters).
    """
    for mode in modes:
        kb.search(queries[0], k=k, mode=mode, version=version)
    times: dict[str, list[float]] = {m: [] for m in modes}
    for i, query in enumerate(queries):
        for mode in modes:
            t0 = time.perf_counter()
            kb.search(query, k=k, mode=mode, version=version)
            times[mode].append(time.perf_counter() - t0)
        tick(label, i + 1, len(queries))
    return {m: percentiles_ms(t) for m, t in times.items()}


def ann_recall(
    ann: Any,
    exact: Any,
    queries: Sequence[str],
    *,
    version: int,
    k: int,
    tick: Tick,
    label: str,
) -> float:
    """Mean share of the exact dense top ``k`` that the approximate index also returns.

    ``ann`` and ``exact`` are knowledge bases over the same store, one searching with
    pgvector's HNSW index and one with the exact in-process index.
    """
    shares = []
    for i, query in enumerate(queries):
        truth = {h.chunk_id for h in exact.search(query, k=k, mode="dense", version=version).hits}
        found = {h.chunk_id for h in ann.search(query, k=k, mode="dense", version=version).hits}
        shares.append(len(truth & found) / max(1, len(truth)))
        tick(label, i + 1, len(queries))
    return round(statistics.fmean(shares), 4)
