#!/usr/bin/env python3
"""Crash safety, shown: kill -9 a worker mid-run, restart it, check nothing was lost or repeated.

Usage (from the repository root, after `make install`):

    .venv/bin/python scripts/crash_demo.py                 # support-triage, 300 items, SQLite
    .venv/bin/python scripts/crash_demo.py --database-url postgresql://postgres@127.0.0.1/test

It submits N sample messages, starts `sluice worker`, kills it with SIGKILL once some
items are done, restarts it with `--drain` under the same executor id, and checks:

* every item ended completed or waiting for review (none lost, none stuck running);
* no step that had completed for an item was completed again (no `duplicate` step runs);
* the outbox holds exactly one record per auto-handled item.

Exit code 0 when all checks hold. `tests/e2e/test_crash_recovery.py` runs the same
checks, plus an exact count of step executions, with a pipeline that logs them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

SLUICE = [sys.executable, "-m", "sluice"]


def _sluice(
    home: Path,
    database_url: str | None,
    *args: str,
    env: dict[str, str] | None = None,
    **popen: Any,
) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, **(env or {}), "SLUICE_HOME": str(home)}
    if database_url:
        full_env["SLUICE_DATABASE_URL"] = database_url
    return subprocess.Popen([*SLUICE, *args], env=full_env, **popen)


def write_events(path: Path, n: int, run: str) -> None:
    """N support messages from the shipped sample (cycled) as CloudEvents JSONL."""
    from sluice.pipelines.support_triage.demo import sample_events

    lines, _ = sample_events(run)
    with path.open("w") as fh:
        for i in range(n):
            event = json.loads(lines[i % len(lines)])
            event["id"] = f"crash-{i:05d}"
            fh.write(json.dumps(event) + "\n")


def settled_count(store: Any, source: str) -> int:
    """Items of the run that left the queue."""
    from sluice.execution import queue_counts

    counts = queue_counts(store, source=source)
    return sum(v for k, v in counts.items() if k not in ("queued", "running"))


def check(store: Any, source: str) -> dict[str, Any]:
    """The three invariants, measured in the store."""
    from sluice.execution import item_outcomes
    from sluice.execution.tables import outbox, step_runs, work_items

    rows = item_outcomes(store, source=source)
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    auto = sum(1 for r in rows if (r["result"] or {}).get("decided_by") == "auto")
    with store.read() as conn:
        ids = select(work_items.c.id).where(work_items.c.source == source)
        duplicates = conn.execute(
            select(func.count())
            .select_from(step_runs)
            .where(step_runs.c.item_id.in_(ids), step_runs.c.status == "duplicate")
        ).scalar_one()
        outbox_rows = conn.execute(
            select(func.count()).select_from(outbox).where(outbox.c.item_id.in_(ids))
        ).scalar_one()
    ok = (
        set(statuses) <= {"completed", "waiting_review"} and duplicates == 0 and outbox_rows == auto
    )
    return {
        "ok": ok,
        "items": len(rows),
        "statuses": statuses,
        "auto_handled": auto,
        "outbox_records": outbox_rows,
        "duplicate_step_completions": duplicates,
    }


def run(
    home: Path,
    *,
    items: int,
    pipeline: str,
    database_url: str | None,
    env: dict[str, str] | None = None,
    kill_after: int | None = None,
    events: Path | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """Submit, start, kill -9, restart with --drain, check. Returns the check's figures."""
    from sluice.config import Settings
    from sluice.store import open_store

    settings = Settings(home=home, database_url=database_url)
    if events is None:
        events = home / "events.jsonl"
        home.mkdir(parents=True, exist_ok=True)
        run_id = f"crash-{int(time.time())}"
        write_events(events, items, run_id)
        source = f"sluice-demo/{run_id}"
    assert source is not None
    if pipeline == "support-triage":
        trained = _sluice(
            home, database_url, "models", "train", "--json", env=env, stdout=subprocess.DEVNULL
        )
        assert trained.wait() == 0, "training failed"
    submitted = _sluice(
        home, database_url, "submit", pipeline, str(events), env=env, stdout=subprocess.DEVNULL
    )
    assert submitted.wait() == 0, "submit failed"

    store = open_store(settings)
    worker = _sluice(
        home,
        database_url,
        "worker",
        "--pipeline",
        pipeline,
        "--executor-id",
        "crash-worker",
        env=env,
        stderr=subprocess.DEVNULL,
    )
    threshold = kill_after if kill_after is not None else items // 4
    deadline = time.monotonic() + 300
    while settled_count(store, source) < threshold:
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the worker stopped before it could be killed")
        time.sleep(0.02)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    done_at_kill = settled_count(store, source)

    restarted = _sluice(
        home,
        database_url,
        "worker",
        "--pipeline",
        pipeline,
        "--drain",
        "--executor-id",
        "crash-worker",
        env=env,
        stderr=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    if restarted.wait(timeout=600) != 0:
        raise RuntimeError("the restarted worker failed")
    result = check(store, source) | {"settled_when_killed": done_at_kill}
    store.dispose()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=300, help="items to submit (300)")
    parser.add_argument("--pipeline", default="support-triage")
    parser.add_argument(
        "--database-url",
        default=None,
        help="store URL (default: SQLite in a temporary SLUICE_HOME)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sluice-crash-") as tmp:
        result = run(
            Path(tmp), items=args.items, pipeline=args.pipeline, database_url=args.database_url
        )
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"killed the worker with {result['settled_when_killed']} of {result['items']} "
            "items settled, restarted it with --drain:"
        )
        print(f"  final statuses: {result['statuses']}")
        print(f"  auto-handled {result['auto_handled']}, outbox records {result['outbox_records']}")
        print(f"  completed steps completed again: {result['duplicate_step_completions']}")
        print("OK" if result["ok"] else "FAILED")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
