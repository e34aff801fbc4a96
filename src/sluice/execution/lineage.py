"""The lineage of one item: its event, every step run, the review, the action - and proof.

Each line of the lineage names the audit entry that backs it (``seq`` and ``hash``) and
whether the record as stored today still has the digest that entry recorded
(``intact``). Together with ``sluice audit verify`` (the chain itself is unbroken) that
shows the record was not altered after the fact.

Reads are indexed (items by id, step runs by item, audit entries by target), so one
item's lineage costs a handful of index lookups whatever the size of the store.

Example:
    >>> lineage = item_lineage(store, "itm_...")  # doctest: +SKIP
    >>> [s["step"] for s in lineage["steps"]]  # doctest: +SKIP
    ['classify', 'gate', 'action']
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from sluice.errors import NotFoundError
from sluice.execution.records import EVENT_FIELDS, event_digest, run_digest
from sluice.execution.tables import outbox, step_runs, work_items
from sluice.governance import AuditEntry, digest, entries_for
from sluice.store import Store

__all__ = ["item_lineage"]


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _ref(entry: AuditEntry | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {"seq": entry.seq, "hash": entry.hash, "action": entry.action, "actor": entry.actor}


def item_lineage(store: Store, item_id: str) -> dict[str, Any]:
    """The whole chain for one item's output (module docs).

    Raises:
        NotFoundError: No such item.
    """
    with store.read() as conn:
        item = conn.execute(select(work_items).where(work_items.c.id == item_id)).one_or_none()
        if item is None:
            raise NotFoundError(f"no item {item_id!r}", hint="list items with `sluice items list`")
        runs = conn.execute(
            select(step_runs)
            .where(step_runs.c.item_id == item_id)
            .order_by(step_runs.c.started_at, step_runs.c.attempt)
        ).all()
        action = conn.execute(select(outbox).where(outbox.c.item_id == item_id)).one_or_none()
        batch_ids = {r.batch_id for r in runs if r.batch_id}
        entries = entries_for(conn, [item_id, *batch_ids])
    details = {e.seq: json.loads(e.details) for e in entries}
    mine = [
        e
        for e in entries
        if e.target == item_id
        or item_id in details[e.seq].get("items", {})
        or any(run.get("item") == item_id for run in details[e.seq].get("runs", {}).values())
    ]
    intact = True

    created = next((e for e in mine if e.action == "item.created"), None)
    event = {k: _iso(getattr(item, k)) for k in EVENT_FIELDS}
    recorded_event = details[created.seq].get("event_sha256") if created else None
    event_ok = recorded_event == event_digest(dict(item._mapping))
    intact &= event_ok

    steps = []
    for run in runs:
        row = dict(run._mapping)
        entry = next((e for e in mine if str(row["id"]) in details[e.seq].get("runs", {})), None)
        recorded = details[entry.seq]["runs"].get(row["id"]) if entry else None
        ok = isinstance(recorded, dict) and recorded.get("digest") == run_digest(row)
        intact &= ok
        steps.append(
            {
                "run_id": row["id"],
                "step": row["step"],
                "round": row["round"],
                "attempt": row["attempt"],
                "status": row["status"],
                "batch_id": row["batch_id"],
                "batch_size": row["batch_size"],
                "started_at": _iso(row["started_at"]),
                "latency_ms": row["latency_ms"],
                "model": (
                    {"name": row["model_name"], "version": row["model_version"]}
                    if row["model_name"]
                    else None
                ),
                "cost": row["cost"],
                "model_calls": row["model_calls"] or [],
                "retrieval": row["retrieval"] or [],
                "input_hash": row["input_hash"],
                "output": row["output"],
                "error_type": row["error_type"],
                "error": row["error"],
                "executor_id": row["executor_id"],
                "audit": _ref(entry),
                "intact": ok,
            }
        )

    reviews = []
    for entry in mine:
        if entry.action == "review.opened":
            reviews.append({"task_id": details[entry.seq].get("task_id"), "opened": _ref(entry)})
        elif entry.action == "review.decided":
            d = details[entry.seq]
            reviews.append(
                {
                    "task_id": d.get("task_id"),
                    "reviewer": entry.actor.removeprefix("reviewer:"),
                    "outcome": d.get("outcome"),
                    "label": d.get("label"),
                    "reason": d.get("reason"),
                    "decided_at": _iso(entry.at),
                    "decided": _ref(entry),
                }
            )

    final = None
    if action is not None:
        record = {k: _iso(v) for k, v in action._mapping.items()}
        settled = next(
            (
                e
                for e in reversed(mine)
                if e.action == "items.settled"
                and (details[e.seq].get("items") or {}).get(item_id, {}).get("outbox")
            ),
            None,
        )
        want = {k: record[k] for k in ("id", "item_id", "pipeline", "action", "payload")}
        ok = settled is not None and details[settled.seq]["items"][item_id]["outbox"] == digest(
            want
        )
        intact &= ok
        final = record | {"audit": _ref(settled), "intact": ok}

    return {
        "item": {
            "id": item.id,
            "pipeline": item.pipeline,
            "status": item.status,
            "round": item.round,
            "priority": item.priority,
            "trace_id": item.trace_id,
            "result": item.result,
            "error_type": item.error_type,
            "error": item.error,
            "created_at": _iso(item.created_at),
            "completed_at": _iso(item.completed_at),
        },
        "event": event | {"audit": _ref(created), "intact": event_ok},
        "steps": steps,
        "cost": {
            "models": round(
                sum(s["cost"] for s in steps if s["status"] in ("completed", "duplicate")), 8
            ),
        },
        "reviews": reviews,
        "action": final,
        "audit": [
            {"seq": e.seq, "hash": e.hash, "action": e.action, "actor": e.actor}
            | {"target": e.target, "at": _iso(e.at)}
            for e in mine
        ],
        "intact": intact,
    }
