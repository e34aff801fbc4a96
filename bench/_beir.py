"""BEIR-format datasets and the two retrieval measures BEIR reports, nDCG@k and Recall@k.

A BEIR folder holds ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl``
(``_id``, ``text``) and ``qrels/<split>.tsv`` (``query-id``, ``corpus-id``, ``score``,
with a header row). The measures follow ``pytrec_eval`` (which BEIR uses): the gain of a
document is its relevance grade, the discount ``log2(rank + 1)``, the ideal ranking the
judged documents by grade; documents judged 0 count as not relevant.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BeirDataset:
    """A corpus, the queries that have judgements in ``split``, and those judgements."""

    corpus: dict[str, tuple[str, str]]  # doc id -> (title, text)
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]  # query id -> doc id -> grade


def load_beir(folder: Path, split: str = "test") -> BeirDataset:
    """Read a BEIR folder; only queries judged in ``split`` are kept.

    Raises:
        SystemExit: A file is missing or a line is not what BEIR's format says.
    """
    for name in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        if not (folder / name).is_file():
            raise SystemExit(f"error: {folder} is not a BEIR folder: {name} is missing")
    corpus: dict[str, tuple[str, str]] = {}
    for number, line in enumerate((folder / "corpus.jsonl").open(encoding="utf-8"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            corpus[str(row["_id"])] = (str(row.get("title") or ""), str(row["text"]))
        except (ValueError, KeyError) as exc:
            raise SystemExit(f"error: corpus.jsonl line {number}: {exc!r}") from exc
    qrels: dict[str, dict[str, int]] = {}
    with (folder / "qrels" / f"{split}.tsv").open(encoding="utf-8") as handle:
        rows = csv.reader(handle, delimiter="\t")
        next(rows, None)  # the header
        for query_id, doc_id, grade in rows:
            qrels.setdefault(query_id, {})[doc_id] = int(grade)
    queries: dict[str, str] = {}
    for line in (folder / "queries.jsonl").open(encoding="utf-8"):
        if line.strip():
            row = json.loads(line)
            if str(row["_id"]) in qrels:
                queries[str(row["_id"])] = str(row["text"])
    missing = sorted(set(qrels) - set(queries))
    if missing:
        raise SystemExit(f"error: judged queries missing from queries.jsonl: {missing[:5]}")
    return BeirDataset(corpus, queries, qrels)


def ndcg_at(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """nDCG@k of one ranking (doc ids, best first) against its judgements."""
    dcg = sum(judged.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k]))
    ideal_grades = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    ideal = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal_grades))
    return dcg / ideal if ideal else 0.0


def recall_at(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """Share of the relevant documents found in the first ``k``."""
    relevant = {doc for doc, grade in judged.items() if grade > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def mean_scores(
    rankings: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]]
) -> dict[str, float]:
    """Mean nDCG@10 and Recall@100 over the judged queries (a missing ranking scores 0)."""
    n = len(qrels)
    return {
        "ndcg@10": sum(ndcg_at(rankings.get(q, ()), j, 10) for q, j in qrels.items()) / n,
        "recall@100": sum(recall_at(rankings.get(q, ()), j, 100) for q, j in qrels.items()) / n,
    }
