"""Knowledge-base retrieval on a BEIR dataset: quality, ingest throughput, query latency.

    python -m bench.retrieval [--dataset scifact | --data DIR] [--postgres URL] [--json]

DIR is a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``);
``--dataset NAME`` means ``$SLUICE_DATA_DIR/NAME-beir`` (default ``scifact``). In one
process, on a fresh store (SQLite, or a scratch database on ``--postgres``'s server):

1. **reference**: BM25 rankings computed in plain Python the way the published
   baselines were made (``bench/_retrieval_reference.py``), scored with the same
   measures: the check that the evaluation is right;
2. **ingest**: the corpus, one JSONL record per document (title and abstract as two
   paragraphs), through ``KnowledgeBase.ingest`` with the default chunking (126 tokens,
   24 overlap): version 1, active. Chunks/s over the whole call, embeddings included
   (through the model gateway, cold cache);
3. **build**: version 2, whole documents (one chunk per document up to 4,096 tokens),
   built beside it from the stored documents (``KnowledgeBase.build``);
4. **quality**: for each version and each mode (bm25, dense, hybrid), nDCG@10 and
   Recall@100 over the split's judged queries, per document: a document ranks where
   its best chunk ranks, enough chunks being retrieved to fill 100 documents;
5. **latency**: p50/p95 of ordinary searches (10 chunks) for each version and mode,
   one query at a time, every query embedded (the gateway's cache is off for these);
6. **pgvector** (PostgreSQL servers that have it): dense search runs on an HNSW index
   in the database, so its recall@10 against the exact in-process index over the same
   vectors is measured for each version.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from bench._beir import BeirDataset, load_beir, mean_scores
from bench._common import Timer, data_dir, emit, machine, parser, scratch_database, write_section
from bench._retrieval_reference import PUBLISHED, reference_rankings
from bench._retrieval_runs import (
    ann_recall,
    latencies,
    progress_bars,
    rankings,
    write_corpus,
)

MODES = ("bm25", "dense", "hybrid")
#: The published BM25 figure the reference must reproduce, and the tolerance.
PUBLISHED_BM25, TOLERANCE = 0.665, 0.01
#: Chunk size of the whole-document version: more than any SciFact abstract (1,937).
WHOLE_TOKENS = 4096


def _args() -> Any:
    p = parser(__doc__.split("\n\n")[0], "scifact-beir")
    p.add_argument(
        "--dataset",
        default="scifact",
        help="dataset name: the folder $SLUICE_DATA_DIR/NAME-beir (ignored with --data)",
    )
    p.add_argument("--split", default="test", help="qrels split to evaluate (default test)")
    p.add_argument("--depth", type=int, default=100, help="documents ranked per query")
    p.add_argument("--latency-k", type=int, default=10, help="chunks per timed search")
    p.add_argument(
        "--postgres",
        default=None,
        metavar="URL",
        help="run on a scratch database on this PostgreSQL server instead of SQLite",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p.parse_args()


def main() -> None:
    args = _args()
    folder = data_dir(args.data, f"{args.dataset}-beir")
    data = load_beir(folder, args.split)
    result: dict[str, Any] = {
        "benchmark": "retrieval",
        "dataset": folder.name.removesuffix("-beir"),
        "data": str(folder),
        "split": args.split,
        "documents": len(data.corpus),
        "queries": len(data.queries),
        "judgements": sum(len(j) for j in data.qrels.values()),
        "machine": machine(),
    }
    with progress_bars(not args.no_progress) as tick:
        scifact = result["dataset"] == "scifact"
        result["reference"] = _reference(data, args.depth, published=scifact)
        with (
            tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp,
            scratch_database(args.postgres) as url,
        ):
            result.update(_run(data, Path(tmp), url, args, tick))
    result["load_1min_at_end"] = machine()["load_1min_at_start"]
    result["check"] = _check(result, published=scifact)
    _report(result, args)


def _reference(data: BeirDataset, depth: int, *, published: bool) -> dict[str, Any]:
    with Timer() as t:
        runs = reference_rankings(data.corpus, data.queries, depth)
    out: dict[str, Any] = {"seconds": round(t.seconds, 1)}
    for name, ranked in runs.items():
        out[name] = {k: round(v, 4) for k, v in mean_scores(ranked, data.qrels).items()}
        if published and name in PUBLISHED:
            out[name]["published"] = PUBLISHED[name]
    return out


def _run(data: BeirDataset, tmp: Path, url: str | None, args: Any, tick: Any) -> dict[str, Any]:
    from sluice.config import Settings
    from sluice.knowledge import (
        DEFAULT_CHUNKING,
        ChunkingConfig,
        JsonlFields,
        KnowledgeBase,
        ReaderOptions,
    )
    from sluice.models import Gateway, load_gateway_config
    from sluice.store import open_store

    corpus_file = tmp / "corpus.jsonl"
    write_corpus(data.corpus, corpus_file)
    settings = Settings(
        home=tmp / "home", database_url=url, model_cache=Settings().models_dir, executor_id="bench"
    )
    store = open_store(settings)
    gateway = Gateway(settings, store)
    # Timed searches embed every query: with the cache on, a query seen once (by an
    # earlier mode or version) would be answered from it.
    route = {"kind": "embed", "tiers": ["minilm"], "cache": {"exact": False}}
    no_cache = {"routes": {"embed": route}}
    uncached = Gateway(
        settings, store, config=load_gateway_config(settings.models_config, overrides=no_cache)
    )
    out: dict[str, Any] = {"store": store.dialect}
    try:
        kb = KnowledgeBase(store, gateway)
        out["vector_backend"] = kb.stats().vector_backend
        gateway.embed("embed", ["warm-up"])  # the encoder starts once per process: not timed
        with Timer() as t:
            report = kb.ingest(
                [corpus_file],
                actor="bench:retrieval",
                options=ReaderOptions(jsonl=JsonlFields(id="_id")),
                progress=lambda phase, done, total: tick(f"ingest ({phase})", done, total),
            )
        if report.failures:
            first = report.failures[0]
            print(
                f"warning: {len(report.failures)} record(s) not ingested, first: {first}",
                file=sys.stderr,
            )
        out["ingest"] = {
            "documents": len(report.new),
            "chunks": report.chunks,
            "failures": len(report.failures),
            "seconds": round(t.seconds, 1),
            "chunks_per_s": round(report.chunks / t.seconds, 1),
            "documents_per_s": round(len(report.new) / t.seconds, 1),
        }
        whole = ChunkingConfig(max_tokens=WHOLE_TOKENS, overlap_tokens=0)
        with Timer() as t:
            built = kb.build(
                actor="bench:retrieval",
                chunking=whole,
                note="whole documents",
                progress=lambda phase, done, total: tick("build v2 (whole documents)", done, total),
            )
        versions = {"default": kb.version(), "whole": built}
        stats = {name: _chunk_stats(kb, v.id) for name, v in versions.items()}
        chunk_counts = {name: s["chunks"] for name, s in stats.items()}
        out["build"] = {
            "chunks": chunk_counts["whole"],
            "seconds": round(t.seconds, 1),
            "chunks_per_s": round(chunk_counts["whole"] / t.seconds, 1),
        }
        configs = {"default": DEFAULT_CHUNKING, "whole": whole}
        timed = KnowledgeBase(store, uncached)
        queries = list(data.queries.values())
        out["indexes"] = {}
        for name, version in versions.items():
            per_doc = chunk_counts[name] / max(1, len(data.corpus))
            entry: dict[str, Any] = {
                "version": version.ref,
                "max_tokens": configs[name].max_tokens,
                "overlap_tokens": configs[name].overlap_tokens,
                **stats[name],
                "chunks_per_document": round(per_doc, 2),
                "quality": {},
                "evaluation_search": {},
            }
            for mode in MODES:
                ranked, search = rankings(
                    kb,
                    data.queries,
                    mode,
                    version=version.number,
                    depth=args.depth,
                    chunks_per_doc=per_doc,
                    tick=tick,
                    label=f"evaluate {name} {mode}",
                )
                scores = mean_scores(ranked, data.qrels)
                entry["quality"][mode] = {k: round(v, 4) for k, v in scores.items()}
                entry["evaluation_search"][mode] = search
            entry["latency_ms"] = latencies(
                timed,
                queries,
                MODES,
                version=version.number,
                k=args.latency_k,
                tick=tick,
                label=f"latency {name}",
            )
            if "pgvector" in out["vector_backend"] and "fallback" not in out["vector_backend"]:
                entry["ann_recall@10"] = ann_recall(
                    timed,
                    KnowledgeBase(store, uncached, vector_backend="in-process"),
                    queries,
                    version=version.number,
                    k=10,
                    tick=tick,
                    label=f"pgvector recall {name}",
                )
            out["indexes"][name] = entry
        out["encoder"] = versions["default"].encoder
        out["latency_k"] = args.latency_k
    finally:
        uncached.close()
        gateway.close()
        store.dispose()
    return out


def _chunk_stats(kb: Any, version_id: int) -> dict[str, Any]:
    """Chunks of a version, and how many the encoder truncates (over 126 word pieces)."""
    from sqlalchemy import case, func, select

    from sluice.knowledge import DEFAULT_CHUNKING
    from sluice.knowledge.tables import kb_chunks

    limit = DEFAULT_CHUNKING.max_tokens  # the encoder's 128 word pieces less [CLS], [SEP]
    query = select(
        func.count(),
        func.sum(case((kb_chunks.c.token_count > limit, 1), else_=0)),
        func.avg(kb_chunks.c.token_count),
    ).where(kb_chunks.c.version == version_id)
    with kb.store.read() as conn:
        count, over, mean = conn.execute(query).one()
    return {
        "chunks": int(count),
        "truncated_by_encoder": int(over or 0),
        "mean_tokens": round(float(mean or 0), 1),
    }


def _check(result: dict[str, Any], *, published: bool) -> dict[str, Any]:
    """Whether the reference reproduces the published BM25 figure, and Sluice's own.

    The published figure is SciFact's: on another dataset only the comparisons between
    Sluice's own runs are made.
    """
    reference = result["reference"]["anserini-multifield"]["ndcg@10"]
    sluice = result["indexes"]["whole"]["quality"]["bm25"]["ndcg@10"]
    formula = result["reference"]["sluice-formula"]["ndcg@10"]
    best = {
        name: max(entry["quality"][m]["ndcg@10"] for m in ("bm25", "dense"))
        for name, entry in result["indexes"].items()
    }
    out: dict[str, Any] = {
        "sluice_bm25_whole_ndcg@10": sluice,
        "sluice_bm25_minus_its_formula": round(sluice - formula, 4),
        "hybrid_beats_both": {
            name: entry["quality"]["hybrid"]["ndcg@10"] > best[name]
            for name, entry in result["indexes"].items()
        },
    }
    if not published:
        return out
    return out | {
        "published_bm25_ndcg@10": PUBLISHED_BM25,
        "reference_multifield_ndcg@10": reference,
        "reference_within_tolerance": abs(reference - PUBLISHED_BM25) <= TOLERANCE,
        "sluice_bm25_whole_ndcg@10": sluice,
        "sluice_bm25_within_tolerance": abs(sluice - PUBLISHED_BM25) <= TOLERANCE,
    }


_LABELS = {"default": "v1, default chunks", "whole": "v2, whole documents"}


def _report(result: dict[str, Any], args: Any) -> None:
    ref = result["reference"]
    rows: list[tuple[str, str]] = [
        ("store", result["store"]),
        ("dense search", result["vector_backend"]),
        (
            "dataset",
            f"{result['dataset']} ({result['split']}): {result['documents']:,} documents, "
            f"{result['queries']} queries, {result['judgements']} judgements",
        ),
    ]
    for name in ("anserini-flat", "anserini-multifield", "sluice-formula"):
        got, published = ref[name], ref[name].get("published")
        shown = _pair(got)
        if published:
            shown += f" (published {_pair(published)})"
        rows.append((f"reference BM25 {name}: nDCG@10 / R@100", shown))
    quality = [
        (f"{_LABELS[name]}, {mode}: nDCG@10 / R@100", _pair(entry["quality"][mode]))
        for name, entry in result["indexes"].items()
        for mode in MODES
    ]
    margins = []
    for name, entry in result["indexes"].items():
        q = {m: entry["quality"][m]["ndcg@10"] for m in MODES}
        margin = q["hybrid"] - max(q["bm25"], q["dense"])
        margins.append(f"{_LABELS[name].split(',')[0]} {margin:+.4f}")
    ingest, build = result["ingest"], result["build"]
    rows += [
        ("hybrid nDCG@10 minus the better of bm25 and dense", "; ".join(margins)),
        (
            "ingest, default chunks (v1)",
            f"{ingest['chunks']:,} chunks in {ingest['seconds']} s: "
            f"{ingest['chunks_per_s']} chunks/s ({ingest['documents_per_s']} documents/s)",
        ),
        (
            "build, whole documents (v2)",
            f"{build['chunks']:,} chunks in {build['seconds']} s: {build['chunks_per_s']} chunks/s",
        ),
    ]
    for name, entry in result["indexes"].items():
        lat = entry["latency_ms"]
        rows.append(
            (
                f"{_LABELS[name]}: search p50 / p95, k={result['latency_k']} (bm25; dense; hybrid)",
                "; ".join(f"{lat[m]['p50']:.1f} / {lat[m]['p95']:.1f} ms" for m in MODES),
            )
        )
    for name, entry in result["indexes"].items():
        if "ann_recall@10" in entry:
            rows.append(
                (
                    f"{_LABELS[name]}: pgvector HNSW recall@10 vs exact dense search",
                    f"{entry['ann_recall@10']:.4f}",
                )
            )
    pgvector = any("ann_recall@10" in e for e in result["indexes"].values())
    store = result["store"] + (" + pgvector" if pgvector else "")
    emit(result, args.json, rows[:6] + quality + rows[6:])
    if not args.no_docs:
        write_section(
            f"retrieval_{result['store']}" + ("_pgvector" if pgvector else ""),
            f"Knowledge-base retrieval on {result['dataset']} ({store})",
            rows,
            notes=_quality_table(result) + "\n\n" + _notes(result),
            result=result,
        )


def _quality_table(result: dict[str, Any]) -> str:
    lines = [
        "nDCG@10 / Recall@100, per document:",
        "",
        "| index version | bm25 | dense | hybrid |",
        "|---|---|---|---|",
    ]
    for name, entry in result["indexes"].items():
        cells = " | ".join(_pair(entry["quality"][m]) for m in MODES)
        lines.append(f"| {_LABELS[name]} ({entry['version']}) | {cells} |")
    return "\n".join(lines)


def _pair(q: Any) -> str:
    return f"{q['ndcg@10']:.4f} / {q['recall@100']:.4f}"


def _notes(result: dict[str, Any]) -> str:
    check = result["check"]
    whole, default = result["indexes"]["whole"], result["indexes"]["default"]
    lines = [
        "Per-document figures, as BEIR's: a document ranks where its best chunk ranks, "
        "and each search asks for enough chunks to fill the ranking. Each document is "
        "indexed as its title and text in one text (BEIR's title+text).",
        f"Default chunks (the product default, 126 tokens, 24 overlap): "
        f"{default['chunks_per_document']} per document. Whole documents: "
        f"{whole['chunks_per_document']} per document, {whole['mean_tokens']:.0f} word "
        f"pieces on average; the encoder ({result['encoder']}) reads the first 126, so it "
        f"truncates {whole['truncated_by_encoder']:,} of {whole['chunks']:,} (keywords "
        "index every word).",
    ]
    if "published_bm25_ndcg@10" in check:
        lines.append(
            f"BM25 check: published {check['published_bm25_ndcg@10']} (BEIR, Elasticsearch; "
            f"Anserini multifield 0.6647). The reference multifield run over the same files "
            f"and measures gets {check['reference_multifield_ndcg@10']:.4f}. Sluice's own "
            f"BM25 (one title+text field, FTS5's k1 = 1.2, b = 0.75) over whole documents "
            f"gets {check['sluice_bm25_whole_ndcg@10']:.4f}, "
            f"{check['sluice_bm25_minus_its_formula']:+.4f} from the same formula computed "
            "in plain Python."
        )
    lines.append(
        "Hybrid: reciprocal rank fusion (k = 60, equal weights) of the chunk rankings. "
        "Latency: one query at a time, the gateway's cache off (dense and hybrid include "
        "embedding the query). The load average at start is other work on this shared "
        f"machine (at the end: {result.get('load_1min_at_end')}). Discussion: "
        "docs/knowledge.md, 'Retrieval quality'."
    )
    return "\n\n".join(lines)


if __name__ == "__main__":
    main()
