"""Metering: every gateway call recorded, and the figures read back per endpoint and task.

The gateway hands each provider invocation (and each group of cache hits) to a
:class:`Meter`, which writes them to ``model_calls`` in bulk from a background thread:
a call never waits for its own bookkeeping. :func:`usage` turns the records into
p50/p95/p99 latency per endpoint, error counts by kind, cache hit ratio, and cost per
model and per task.

Example:
    >>> report = usage(store, since=None)  # doctest: +SKIP
    >>> report["endpoints"]["minilm"]["p95_ms"]  # doctest: +SKIP
    4.1
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select

from sluice.governance.pii_masking import mask_text
from sluice.models.calls import CallRecord
from sluice.models.endpoints import error_kind
from sluice.models.gateway_tables import model_calls
from sluice.store import Store, new_id, utcnow

__all__ = ["Meter", "usage"]

log = logging.getLogger("sluice.models")


class Meter:
    """Buffers call rows and writes them in bulk (module docs).

    Args:
        store: Where ``model_calls`` lives.
        flush_interval_s: Longest a row waits in memory.
        max_buffer: Rows kept before a flush is forced; beyond ten times this, rows
            are dropped (and counted) rather than growing memory without bound.
    """

    def __init__(self, store: Store, *, flush_interval_s: float = 0.5, max_buffer: int = 2000):
        self.store = store
        self.flush_interval_s = flush_interval_s
        self.max_buffer = max_buffer
        self.dropped = 0
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, row: Mapping[str, Any]) -> None:
        """Queue one ``model_calls`` row."""
        self._append(dict(row))

    def _append(self, row: dict[str, Any]) -> None:
        with self._lock:
            if len(self._rows) >= 10 * self.max_buffer:
                self.dropped += 1
                return
            self._rows.append(row)
            full = len(self._rows) >= self.max_buffer
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="sluice-meter", daemon=True)
                self._thread.start()
        if full:
            self._wake.set()

    def call(
        self,
        *,
        call_id: str,
        task: str,
        kind: str,
        endpoint: str,
        model: str,
        version: str,
        tenant: str | None,
        inputs: int,
        latency_ms: float,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost: float = 0.0,
        cache: str = "miss",
        tier: int = 0,
        canary: bool = False,
        fallbacks: Sequence[str] = (),
        error: BaseException | None = None,
        low_confidence: bool = False,
    ) -> None:
        """Queue the record of one provider invocation, cache hit or escalated answer."""
        kind_of_error: str | None = error_kind(error) if error is not None else None
        # A provider's error may echo its input: personal data is masked before storing.
        message = mask_text(str(error)[:2000]) if error is not None else None
        if low_confidence:
            kind_of_error = "low_confidence"
            message = "confidence below the route's threshold: escalated to the next tier"
        self._append(
            {  # its id is drawn by the writer thread (flush), off the caller's path
                "call_id": call_id,
                "task": task,
                "kind": kind,
                "endpoint": endpoint,
                "model": model,
                "version": version,
                "tenant": tenant,
                "inputs": inputs,
                "latency_ms": latency_ms,
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "cost": cost,
                "cache": cache,
                "tier": tier,
                "canary": canary,
                "fallbacks": list(fallbacks) or None,
                "error_kind": kind_of_error,
                "error": message,
                "started_at": utcnow(),
            }
        )

    def low_confidence(self, records: Sequence[CallRecord], tenant: str | None) -> None:
        """Count answers passed up a tier as ``low_confidence`` (no latency of their own)."""
        for record in records:
            self.call(
                call_id=record.call_id,
                task=record.task,
                kind=record.kind,
                endpoint=record.endpoint,
                model=record.model,
                version=record.version,
                tenant=tenant,
                inputs=1,
                latency_ms=0.0,
                cache="off",
                tier=record.tier,
                canary=record.canary,
                low_confidence=True,
            )

    def _loop(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the store is down: keep the rows, try again later
                log.warning("could not write model call records; will retry", exc_info=True)

    def flush(self) -> int:
        """Write what is buffered now. Returns the number of rows written."""
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return 0
        for row in rows:
            if "id" not in row:
                row["id"] = new_id("mcl")
        try:
            with self.store.begin() as conn:
                conn.execute(model_calls.insert(), rows)
        except Exception:
            with self._lock:
                self._rows[:0] = rows
            raise
        return len(rows)

    def close(self) -> None:
        """Write what is left and stop the writer thread."""
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.flush()
        except Exception:
            log.warning("model call records lost at shutdown", exc_info=True)


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0}
    p50, p95, p99 = np.percentile(np.asarray(values), [50, 95, 99])
    return {
        "p50_ms": round(float(p50), 3),
        "p95_ms": round(float(p95), 3),
        "p99_ms": round(float(p99), 3),
    }


def usage(
    store: Store, *, since: datetime | None = None, task: str | None = None
) -> dict[str, Any]:
    """Latency percentiles, errors, cache hits and cost, per endpoint, model and task.

    Latency is per provider invocation (a batch is one); cache hits are counted per
    input and kept out of the latency figures, and so are answers escalated to the next
    tier (counted per input as ``low_confidence`` errors of the tier that gave them).
    """
    query = select(
        model_calls.c.task,
        model_calls.c.endpoint,
        model_calls.c.model,
        model_calls.c.version,
        model_calls.c.inputs,
        model_calls.c.latency_ms,
        model_calls.c.cost,
        model_calls.c.cache,
        model_calls.c.error_kind,
        model_calls.c.input_tokens,
        model_calls.c.output_tokens,
    )
    if since is not None:
        query = query.where(model_calls.c.started_at >= since)
    if task is not None:
        query = query.where(model_calls.c.task == task)
    endpoints: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "calls": 0,
            "inputs": 0,
            "cache_hits": 0,
            "errors": defaultdict(int),
            "cost": 0.0,
            "input_tokens": 0,
            "output_tokens": 0,
            "_latency": [],
        }
    )
    by_model: dict[str, float] = defaultdict(float)
    by_task: dict[str, float] = defaultdict(float)
    with store.read() as conn:
        for row in conn.execute(query):
            entry = endpoints[row.endpoint]
            if row.error_kind == "low_confidence":  # an answer passed up a tier, not a call
                entry["errors"]["low_confidence"] += row.inputs
                continue
            if row.cache in ("exact", "semantic"):
                entry["cache_hits"] += row.inputs
                entry["inputs"] += row.inputs
                continue
            entry["calls"] += 1
            entry["inputs"] += row.inputs
            entry["cost"] += row.cost
            entry["input_tokens"] += row.input_tokens
            entry["output_tokens"] += row.output_tokens
            entry["_latency"].append(row.latency_ms)
            if row.error_kind:
                entry["errors"][row.error_kind] += 1
            by_model[f"{row.model}@{row.version}"] += row.cost
            by_task[row.task] += row.cost
    out: dict[str, Any] = {}
    for name, entry in sorted(endpoints.items()):
        latency = entry.pop("_latency")
        entry["errors"] = dict(entry["errors"])
        entry["cost"] = round(entry["cost"], 8)
        entry["cache_hit_ratio"] = (
            round(entry["cache_hits"] / entry["inputs"], 4) if entry["inputs"] else 0.0
        )
        out[name] = {**entry, **_percentiles(latency)}
    return {
        "endpoints": out,
        "cost_by_model": {k: round(v, 8) for k, v in sorted(by_model.items())},
        "cost_by_task": {k: round(v, 8) for k, v in sorted(by_task.items())},
    }
