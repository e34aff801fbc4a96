"""Run reports: what a batch of submitted items became, how fast, and how well.

Reads what the execution plane recorded (through its public functions) and never
changes an item. Used by ``sluice demo`` and the benchmarks.

Example:
    >>> percentiles([10.0, 20.0, 30.0, 40.0])["p50"]
    25.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from sluice.execution import item_outcomes, model_costs, step_latencies
from sluice.store import Store

__all__ = ["RunReport", "build_run_report", "percentiles"]


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50, p95 and p99 of ``values`` (empty input gives zeros), rounded to 0.01."""
    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    arr = np.asarray(values, dtype=np.float64)
    return {f"p{q}": round(float(np.percentile(arr, q)), 2) for q in (50, 95, 99)}


@dataclass
class RunReport:
    """Figures of one run (one event source) of a pipeline.

    Attributes:
        items: Items submitted under the source.
        processed: Items that left the queue: auto-handled, waiting for review, decided,
            or failed.
        auto_handled: Items settled by the gate without a human.
        waiting_review: Items parked at the review gate.
        reviewed: Items settled by a reviewer's decision.
        failed: Items that failed (kept with their error; ``sluice items retry``).
        automation_rate: ``auto_handled / processed``.
        auto_precision: Share of auto-handled items whose label matches the truth, when
            labels are known (None otherwise).
        latency_ms: Per step, p50/p95/p99 of the latency each item saw (a batch step's
            latency is shared by the items of its batch).
        end_to_end_ms: p50/p95/p99 from submission to settlement of auto-handled items
            (queue wait included).
        wall_seconds: Wall time of the run as measured by the caller.
        throughput_per_s: ``processed / wall_seconds``.
        model_cost: What the models cost for the run, in the price table's currency:
            ``total``, ``per_item`` (over processed items) and ``by_model``.
    """

    pipeline: str
    source: str
    items: int
    processed: int
    auto_handled: int
    waiting_review: int
    reviewed: int
    failed: int
    automation_rate: float
    auto_precision: float | None
    auto_correct: int | None
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    end_to_end_ms: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0
    throughput_per_s: float = 0.0
    model_cost: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def build_run_report(
    store: Store,
    *,
    pipeline: str,
    source: str,
    wall_seconds: float,
    truth: Mapping[str, str] | None = None,
    step_order: Sequence[str] = (),
) -> RunReport:
    """Summarize the items submitted under ``source`` (see :class:`RunReport`).

    Args:
        store: The store.
        pipeline: Pipeline name (for the report's header).
        source: CloudEvent source the run's events were submitted with.
        wall_seconds: Wall time to report throughput against.
        truth: Known correct label per event id, to measure precision.
        step_order: Steps in the order to list their latencies (others follow).
    """
    rows = item_outcomes(store, source=source)
    auto = [
        r
        for r in rows
        if r["status"] == "completed" and (r["result"] or {}).get("decided_by") == "auto"
    ]
    reviewed = [
        r for r in rows if (r["result"] or {}).get("decided_by", "").startswith("reviewer:")
    ]
    waiting = sum(r["status"] == "waiting_review" for r in rows)
    failed = sum(r["status"] == "failed" for r in rows)
    processed = len(auto) + len(reviewed) + waiting + failed
    correct: int | None = None
    precision: float | None = None
    if truth is not None:
        judged = [r for r in auto if r["event_id"] in truth]
        correct = sum(r["result"]["label"] == truth[r["event_id"]] for r in judged)
        precision = round(correct / len(judged), 4) if judged else None
    latencies = step_latencies(store, source=source)
    costs = model_costs(store, source=source)
    total_cost = sum(costs.values())
    end_to_end = [
        (r["completed_at"] - r["created_at"]).total_seconds() * 1000
        for r in auto
        if r["completed_at"] is not None
    ]
    return RunReport(
        pipeline=pipeline,
        source=source,
        items=len(rows),
        processed=processed,
        auto_handled=len(auto),
        waiting_review=waiting,
        reviewed=len(reviewed),
        failed=failed,
        automation_rate=round(len(auto) / processed, 4) if processed else 0.0,
        auto_precision=precision,
        auto_correct=correct,
        latency_ms={
            step: percentiles(latencies[step])
            for step in sorted(
                latencies,
                key=lambda s: (
                    list(step_order).index(s) if s in step_order else len(step_order),
                    s,
                ),
            )
        },
        end_to_end_ms=percentiles(end_to_end),
        wall_seconds=round(wall_seconds, 3),
        throughput_per_s=round(processed / wall_seconds, 2) if wall_seconds > 0 else 0.0,
        model_cost={
            "total": round(total_cost, 8),
            "per_item": round(total_cost / processed, 8) if processed else 0.0,
            "by_model": {k: round(v, 8) for k, v in sorted(costs.items())},
        },
    )
