"""Reading and writing the per-item records of a run: item views and step runs.

A *step run* is the lineage row of one step for one item: attempt, timing, input hash,
output, model name and version, cost, error. Completed step runs are also what makes a
step run at most once per item: a (re)started step skips items that already have one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from sluice.execution.tables import step_runs, work_items
from sluice.execution.types import ItemView
from sluice.governance import AuditEvent, append, digest
from sluice.store import Store, new_id

__all__ = [
    "EVENT_FIELDS",
    "SETTLING_STEPS",
    "StepRecord",
    "event_digest",
    "input_hash",
    "insert_ignore",
    "load_views",
    "run_digest",
    "write_step_runs",
]

#: The steps of settling an item. They belong to one *round*: `sluice items retry`
#: starts a new round, in which they run again; the pipeline's own steps, completed in
#: any round, are never run again.
SETTLING_STEPS = frozenset({"gate", "review", "action"})

log = logging.getLogger("sluice.execution")


def insert_ignore(store: Store, table: Any) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` for the store's dialect."""
    return (pg_insert if store.dialect == "postgresql" else sqlite_insert)(table)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: equal values give equal text (and hashes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def input_hash(item: ItemView) -> str:
    """Hash of what a step sees of an item: its data and the outputs before it."""
    payload = {"data": item.data, "outputs": item.outputs}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


@dataclass(frozen=True)
class StepRecord:
    """One row to write into ``step_runs``."""

    item_id: str
    step: str
    attempt: int
    status: str
    started_at: datetime
    finished_at: datetime
    latency_ms: float
    input_hash: str
    output: Mapping[str, Any] | None = None
    batch_id: str | None = None
    batch_size: int = 1
    model_name: str | None = None
    model_version: str | None = None
    cost: float = 0.0
    model_calls: list[Mapping[str, Any]] | None = None
    retrieval: list[Mapping[str, Any]] | None = None
    error_type: str | None = None
    error: str | None = None
    executor_id: str | None = None
    round: int = 0


#: The columns of a step run that its audit digest covers (every one it is written with).
_RUN_FIELDS = (
    "id",
    *(f.name for f in fields(StepRecord)),
)


#: Columns added after the first release: absent from the digest when empty.
_OPTIONAL_RUN_FIELDS = frozenset({"model_calls", "retrieval"})

#: What of an item's event its ``item.created`` audit digest covers.
EVENT_FIELDS = (
    "source",
    "event_id",
    "type",
    "subject",
    "event_time",
    "datacontenttype",
    "data",
    "extensions",
    "priority",
)


def event_digest(item: Mapping[str, Any]) -> str:
    """The digest of an item's event, from its row as written or as read back."""
    return digest({k: _plain(item[k]) for k in EVENT_FIELDS})


def run_digest(run: Mapping[str, Any]) -> str:
    """The digest of a step run row, as its audit entry records it.

    Computed from the values written and, later, from the row as read back: the same
    digest means the lineage row is unchanged.
    """
    # Step runs written before the gateway existed have no model calls, and their
    # audit entries were computed without the key: leave it out when it is empty.
    return digest(
        {
            k: _plain(run[k])
            for k in _RUN_FIELDS
            if not (k in _OPTIONAL_RUN_FIELDS and run.get(k) is None)
        }
    )


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def audit_events(rows: Sequence[Mapping[str, Any]], actor: str) -> list[AuditEvent]:
    """One audit event per batch (or item), step, round and status of ``rows``."""
    groups: dict[tuple[str, str, int, str], dict[str, Any]] = {}
    for row in rows:
        target = row["batch_id"] or row["item_id"]
        key = (target, row["step"], row["round"], row["status"])
        group = groups.setdefault(key, {"attempts": set(), "runs": {}})
        group["attempts"].add(row["attempt"])
        group["runs"][row["id"]] = {"item": row["item_id"], "digest": run_digest(row)}
    return [
        AuditEvent(
            actor,
            f"step.{status}",
            target,
            {
                "step": step,
                "round": round_,
                "attempts": sorted(group["attempts"]),
                "runs": group["runs"],
            },
        )
        for (target, step, round_, status), group in groups.items()
    ]


def write_step_runs(store: Store, conn: Connection, records: Iterable[StepRecord]) -> int:
    """Insert step runs. Returns how many *completed* runs were duplicates.

    The runs are audited (one entry per batch, step and status, each run by digest);
    the entry is appended here, so call this last in a transaction (governance.audit).

    A second completed run of the same item, step and round cannot happen by design (a step
    skips items that completed it); if it ever does, the earlier result stands, the later
    one is kept as a ``duplicate`` row for the lineage, and a warning is logged. (Two
    transactions racing past the check below both try to insert; the unique index keeps
    the first and drops the second without a ``duplicate`` row.)
    """
    rows = [{"id": new_id("run"), **r.__dict__} for r in records]
    if not rows:
        return 0
    completed = [r for r in rows if r["status"] == "completed"]
    done: set[tuple[str, str, int]] = set()
    for step in {r["step"] for r in completed}:
        ids = [r["item_id"] for r in completed if r["step"] == step]
        done |= {
            (row.item_id, step, row.round)
            for row in conn.execute(
                select(step_runs.c.item_id, step_runs.c.round).where(
                    step_runs.c.step == step,
                    step_runs.c.status == "completed",
                    step_runs.c.item_id.in_(ids),
                )
            )
        }
    for row in rows:
        if row["status"] == "completed" and (row["item_id"], row["step"], row["round"]) in done:
            row["status"] = "duplicate"
    duplicates = [r for r in rows if r["status"] == "duplicate"]
    if duplicates:
        log.warning(
            "%d completed step runs repeated an earlier completion (kept as 'duplicate'): %s",
            len(duplicates),
            ", ".join(f"{d['item_id']}/{d['step']}" for d in duplicates[:5]),
        )
    # executemany with a cached statement and no RETURNING: one multi-VALUES statement
    # is compiled afresh for every row count (13 ms vs 2 ms for 64 rows on SQLite), and
    # RETURNING makes PostgreSQL's executemany 4x slower (16 ms vs 4 ms for 128 rows).
    conn.execute(insert_ignore(store, step_runs).on_conflict_do_nothing(), rows)
    actor = f"worker:{rows[0]['executor_id']}" if rows[0]["executor_id"] else "worker"
    append(conn, audit_events(rows, actor))
    return len(duplicates)


def load_views(
    conn: Connection,
    *,
    batch_id: str | None = None,
    item_ids: Sequence[str] | None = None,
    status: str | None = "running",
) -> list[ItemView]:
    """Items of a batch (or given ids) with the outputs of their completed steps."""
    query = select(work_items).order_by(work_items.c.priority, work_items.c.created_at)
    if batch_id is not None:
        query = query.where(work_items.c.batch_id == batch_id)
    if item_ids is not None:
        query = query.where(work_items.c.id.in_(list(item_ids)))
    if status is not None:
        query = query.where(work_items.c.status == status)
    rows = conn.execute(query).all()
    rounds = {r.id: r.round for r in rows}
    outputs: dict[str, dict[str, Any]] = defaultdict(dict)
    ids = [r.id for r in rows]
    for start in range(0, len(ids), 500):
        for run in conn.execute(
            select(step_runs.c.item_id, step_runs.c.step, step_runs.c.round, step_runs.c.output)
            .where(
                step_runs.c.item_id.in_(ids[start : start + 500]),
                step_runs.c.status == "completed",
            )
            .order_by(step_runs.c.round)
        ):
            if run.step in SETTLING_STEPS and run.round != rounds[run.item_id]:
                continue  # settled in an earlier round; this round settles anew
            outputs[run.item_id][run.step] = run.output or {}
    return [
        ItemView(
            id=r.id,
            pipeline=r.pipeline,
            source=r.source,
            event_id=r.event_id,
            type=r.type,
            subject=r.subject,
            data=r.data,
            priority=r.priority,
            created_at=r.created_at,
            round=r.round,
            outputs=dict(outputs[r.id]),
            trace_id=r.trace_id,
        )
        for r in rows
    ]
