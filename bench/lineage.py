"""Audit log and lineage at scale: the cost of tamper evidence, verify speed, lineage latency.

    python -m bench.lineage [--items 1000000] [--postgres URL] [--data DIR] [--json]

Fills a fresh store with ``--items`` completed items, each with two step runs (batches
of 100) and the audit entries the runtime writes for them (one ``item.created`` per
item, one ``step.completed`` per batch and step, each run by digest). Then measures:

* audit append throughput with chaining on (hash, link, chain lock) against plain
  inserts of the same rows into an unchained copy of the table in the same database;
  the ratio is the cost of tamper evidence;
* ``verify`` over the whole chain (entries/s);
* ``item_lineage`` for random items (p50/p95 ms) at that scale.

``--data`` is a folder with ``test.csv`` (``text,category``) whose texts become the items'
payloads (default: the support-triage sample that ships with Sluice).
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import Timer, emit, machine, parser, scratch_database, write_section

CHUNK = 2000
BATCH = 100


def _args() -> Any:
    p = parser(__doc__ or "", "support sample")
    p.add_argument("--items", type=int, default=100_000, help="items to create (default 100000)")
    p.add_argument("--queries", type=int, default=300, help="lineage queries to time")
    p.add_argument(
        "--postgres",
        default=None,
        metavar="URL",
        help="run on a scratch database on this PostgreSQL server instead of SQLite",
    )
    return p.parse_args()


def _texts(folder: Path | None) -> list[str]:
    from sluice.models import read_labelled_csv
    from sluice.pipelines.support_triage import sample_path

    path = (folder / "test.csv") if folder else sample_path("test.csv")
    if not path.exists():
        sys.exit(f"error: no test.csv in {folder}")
    return read_labelled_csv(path).texts


def _chunk_rows(start: int, n: int, texts: list[str], now: Any) -> tuple[list, list, list]:
    """Items, step runs and the audit events the runtime would write for them."""
    from sluice.execution.intake import _created  # the very event intake writes
    from sluice.execution.records import StepRecord, audit_events
    from sluice.governance import digest
    from sluice.store import new_id

    items, runs, events = [], [], []
    for k in range(start, start + n):
        item_id = new_id("itm")
        data = {"text": texts[k % len(texts)]}
        items.append(
            {
                "id": item_id,
                "pipeline": "support-triage",
                "source": "bench",
                "event_id": f"e{k}",
                "type": "bench",
                "subject": None,
                "event_time": None,
                "datacontenttype": None,
                "extensions": None,
                "data": data,
                "priority": 2,
                "status": "completed",
                "created_at": now,
                "updated_at": now,
                "completed_at": now,
                "batch_id": f"bat_{k // BATCH}",
            }
        )
        events.append(_created("intake:bench", "bench", items[-1]))
        for step in ("classify", "gate"):
            record = StepRecord(
                item_id=item_id,
                step=step,
                attempt=1,
                status="completed",
                started_at=now,
                finished_at=now,
                latency_ms=1.5,
                input_hash=digest(data),
                output={"label": "card_arrival", "confidence": 0.93},
                batch_id=f"bat_{k // BATCH}",
                batch_size=BATCH,
                executor_id="bench",
            )
            runs.append({"id": new_id("run"), **record.__dict__})
    events.extend(audit_events(runs, "worker:bench"))
    return items, runs, events


def main() -> None:
    args = _args()
    texts = _texts(args.data)
    from sqlalchemy import Column, MetaData, Table, insert

    from sluice.config import Settings
    from sluice.execution import item_lineage
    from sluice.execution.tables import step_runs, work_items
    from sluice.governance import append, verify
    from sluice.governance.tables import audit_log
    from sluice.store import open_store, utcnow

    result: dict[str, Any] = {"benchmark": "lineage", "items": args.items, "machine": machine()}
    with (
        tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp,
        scratch_database(args.postgres) as url,
    ):
        store = open_store(Settings(home=Path(tmp), database_url=url))
        result["store"] = store.dialect
        plain = Table(
            "audit_plain", MetaData(), *(Column(c.name, c.type) for c in audit_log.columns)
        )
        plain.create(store.engine)
        chained_s = plain_s = 0.0
        entries = 0
        now = utcnow()
        ids: list[str] = []
        started = time.monotonic()
        for start in range(0, args.items, CHUNK):
            n = min(CHUNK, args.items - start)
            items, runs, events = _chunk_rows(start, n, texts, now)
            ids.extend(i["id"] for i in random.sample(items, min(5, len(items))))
            with store.begin() as conn:
                conn.execute(insert(work_items), items)
                conn.execute(insert(step_runs), runs)
            with store.begin() as conn, Timer() as t:
                written = append(conn, events)
            chained_s += t.seconds
            entries += len(written)
            rows = [e.__dict__ for e in written]
            with store.begin() as conn, Timer() as t:
                conn.execute(insert(plain), rows)
            plain_s += t.seconds
            if sys.stderr.isatty():
                done = start + n
                print(f"\r{done}/{args.items} items", end="", file=sys.stderr, flush=True)
        if sys.stderr.isatty():
            print(file=sys.stderr)
        result["fill_seconds"] = round(time.monotonic() - started, 1)
        result["audit_entries"] = entries
        result["append_chained_per_s"] = round(entries / chained_s)
        result["append_plain_per_s"] = round(entries / plain_s)
        result["chained_over_plain"] = round(plain_s / chained_s, 3)
        with Timer() as t:
            report = verify(store)
        assert report.ok, report.first_break
        result["verify_entries_per_s"] = round(report.entries / t.seconds)
        latencies = []
        for item_id in random.sample(ids, min(args.queries, len(ids))):
            t0 = time.perf_counter()
            lineage = item_lineage(store, item_id)
            latencies.append((time.perf_counter() - t0) * 1000)
            assert lineage["intact"], item_id
        q = statistics.quantiles(latencies, n=20)
        result["lineage_ms"] = {
            "p50": round(statistics.median(latencies), 2),
            "p95": round(q[18], 2),
        }
        store.dispose()
    _report(result, args)


def _report(result: dict[str, Any], args: Any) -> None:
    rows = [
        ("store", result["store"]),
        ("items (two step runs each)", f"{result['items']:,}"),
        ("audit entries", f"{result['audit_entries']:,}"),
        ("audit append, chained", f"{result['append_chained_per_s']:,} entries/s"),
        ("plain insert of the same rows", f"{result['append_plain_per_s']:,} rows/s"),
        ("chained / plain (cost of tamper evidence)", f"{result['chained_over_plain']:.2f}"),
        ("verify", f"{result['verify_entries_per_s']:,} entries/s"),
        (
            "lineage of one item, p50 / p95",
            "{p50:.1f} / {p95:.1f} ms".format(**result["lineage_ms"]),
        ),
    ]
    emit(result, args.json, rows)
    if not args.no_docs:
        name = f"lineage_{result['store']}"
        write_section(
            name,
            f"Audit log and lineage ({result['store']}, {result['items']:,} items)",
            rows,
            notes=(
                "Appends go in chunks of one intake-sized transaction (2000 items: one "
                "`item.created` per item and one `step.completed` per batch of 100 and step). "
                "The plain insert writes the same rows, already hashed, into an unchained "
                "copy of the table in the same database: the ratio is what hashing, linking "
                "and the chain lock cost. Lineage queries read the item, its step runs, its "
                "outbox record and the audit entries about it and its batches, and recompute "
                "every digest."
            ),
            result=result,
        )


if __name__ == "__main__":
    main()
