"""Measure the knowledge base's in-process vector index (docs/knowledge.md, 'Vector index').

Exact inner-product search over random unit vectors (384 dimensions, like MiniLM's), one
query at a time as a search runs: numpy.einsum (what Sluice uses) against a BLAS matrix
product, then the cost of loading a version's vectors from the store and of refreshing
them after a small change.

    python scripts/measure_vector_index.py [--sizes 10000 100000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] * 1000, ordered[int(len(ordered) * 0.95)] * 1000


def search_latency(n: int, dims: int = 384, queries: int = 200) -> dict[str, float]:
    """p50/p95 ms of one exact top-100 search, einsum and BLAS."""
    from sluice.knowledge.vector_index import VectorMatrix

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, dims), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    matrix = VectorMatrix(np.arange(n, dtype=np.int64), np.zeros(n, np.int64), vectors, 0)
    asked = vectors[:queries] + 0.1 * rng.standard_normal((queries, dims), dtype=np.float32)
    out: dict[str, float] = {}
    for name, run in (
        ("einsum", lambda q: matrix.search(q, 100)),
        ("blas", lambda q: np.argpartition(-(vectors @ q), 100)[:100]),
    ):
        times = []
        for q in asked:
            t0 = time.perf_counter()
            run(q)
            times.append(time.perf_counter() - t0)
        out[f"{name}_p50_ms"], out[f"{name}_p95_ms"] = _percentiles(times)
    return out


def load_latency(n: int, database_url: str | None, dims: int = 384) -> dict[str, float]:
    """Seconds to load a version's n vectors from the store, and to refresh after 100."""
    from sqlalchemy import delete, insert

    from sluice.config import Settings
    from sluice.knowledge.tables import (
        kb_chunks,
        kb_documents,
        kb_index_versions,
        kb_indexes,
        kb_vector_rows,
    )
    from sluice.knowledge.vector_index import VectorCache
    from sluice.store import open_store, utcnow

    home = Path(tempfile.mkdtemp(prefix="sluice-vectors-"))
    store = open_store(Settings(home=home, database_url=database_url))
    rng = np.random.default_rng(1)
    now = utcnow()
    name = f"measure-{n}-{time.time_ns()}"
    with store.begin() as conn:
        conn.execute(insert(kb_indexes).values(name=name, docs_generation=0, created_at=now))
        doc = conn.execute(
            insert(kb_documents)
            .values(index_name=name, doc_id="d", source="s", format="text", title="t",
                    text="x", headings=[], sha256="0", fingerprint="0", metadata={},
                    ingested_at=now, updated_at=now)
            .returning(kb_documents.c.id)
        ).scalar_one()  # fmt: skip
        version = conn.execute(
            insert(kb_index_versions)
            .values(index_name=name, number=1, status="ready", embed_task="embed",
                    chunking={}, analyzer="a", config_hash="0", chunks=0, terms=0,
                    generation=0, created_at=now, created_by="m")
            .returning(kb_index_versions.c.id)
        ).scalar_one()  # fmt: skip
    for start in range(0, n, 10_000):
        size = min(10_000, n - start)
        with store.begin() as conn:
            ids = conn.execute(
                insert(kb_chunks).returning(kb_chunks.c.id, sort_by_parameter_order=True),
                [{"version": version, "document": doc, "chunk_id": f"c{start + i}",
                  "ordinal": i, "text": "x", "start": 0, "end": 1, "heading_path": [],
                  "token_count": 1, "terms": 1} for i in range(size)],
            ).scalars().all()  # fmt: skip
            blobs = rng.standard_normal((size, dims), dtype=np.float32)
            conn.execute(
                insert(kb_vector_rows),
                [{"chunk": c, "version": version, "document": doc, "vector": b.tobytes()}
                 for c, b in zip(ids, blobs, strict=True)],
            )  # fmt: skip
    cache = VectorCache()
    with store.read() as conn:
        t0 = time.perf_counter()
        cache.get(conn, version, 1)
        cold = time.perf_counter() - t0
    with store.begin() as conn:
        mine = kb_chunks.select().with_only_columns(kb_chunks.c.id)
        gone = conn.execute(mine.where(kb_chunks.c.version == version).limit(100)).scalars().all()
        conn.execute(delete(kb_chunks).where(kb_chunks.c.id.in_(gone)))
    with store.read() as conn:
        t0 = time.perf_counter()
        matrix = cache.get(conn, version, 2)
        warm = time.perf_counter() - t0
    assert len(matrix) == n - 100
    store.dispose()
    return {"load_s": cold, "refresh_after_100_removed_s": warm}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    for n in args.sizes:
        print(n, "vectors:", {k: round(v, 2) for k, v in search_latency(n).items()})
        loaded = load_latency(n, args.database_url)
        print(n, "vectors:", {k: round(v, 3) for k, v in loaded.items()})


if __name__ == "__main__":
    main()
