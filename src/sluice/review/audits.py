"""Sampling audits: a blind second look at auto-handled items, and what it says.

Sampling is systematic within each stratum (the intent, by default): the first
auto-handled item of every intent is sampled, then every ``1/rate``-th, so rare intents
are audited too and the sample is spread evenly over time. A sampled item is already
settled; its audit task (kind ``audit``, queue ``audit``) waits for a reviewer, who
grades it *blind*: the model's answer is hidden until the reviewer has given theirs.

The audits give a running estimate of the precision of automated decisions, per intent
and overall, with 95% confidence intervals: Wilson intervals per intent; overall, the
stratified estimate (each intent weighted by its share of auto-handled items) with a
normal interval. This is the guard against silent failure: a model that degrades while
staying confident shows up here, not in any error log.

Example:
    >>> estimate = audit_precision(store, "support-triage")  # doctest: +SKIP
    >>> estimate.overall.precision, estimate.overall.low, estimate.overall.high  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from sluice.execution import ItemView
from sluice.governance import AuditEvent, append
from sluice.review.tables import audit_strata, decisions, review_tasks
from sluice.store import Store, new_id, utcnow

__all__ = ["AuditEstimate", "StratumPrecision", "audit_precision", "sample_audits"]

_Z = 1.96  # 95%


def _every(rate: float) -> int:
    return max(1, round(1 / rate))


def sample_audits(
    conn: Connection,
    settled: Sequence[tuple[ItemView, Mapping[str, Any]]],
    *,
    rate: float,
    stratum: str,
    queue: str,
    due_at: datetime,
) -> list[str]:
    """Open audit tasks for the systematic sample of ``settled`` (module docs)."""
    if rate <= 0 or not settled:
        return []
    every = _every(rate)
    by_stratum: dict[tuple[str, str], list[tuple[ItemView, Mapping[str, Any]]]] = {}
    for item, proposal in settled:
        key = (item.pipeline, str(proposal.get(stratum, "")))
        by_stratum.setdefault(key, []).append((item, proposal))
    rows = []
    now = utcnow()
    postgres = conn.dialect.name == "postgresql"
    # Strata in a fixed order, so two batches settling at once lock them in the same
    # order and cannot deadlock.
    for (pipeline, value), members in sorted(by_stratum.items()):
        # Make sure the counter row exists first: locking a row that is not there locks
        # nothing, and two batches would both insert it (a unique violation).
        conn.execute(
            (pg_insert if postgres else sqlite_insert)(audit_strata)
            .values(pipeline=pipeline, stratum=value, seen=0, sampled=0)
            .on_conflict_do_nothing()
        )
        query = select(audit_strata.c.seen, audit_strata.c.sampled).where(
            audit_strata.c.pipeline == pipeline, audit_strata.c.stratum == value
        )
        if postgres:
            query = query.with_for_update()
        found = conn.execute(query).one()
        seen, sampled = found.seen, found.sampled
        for offset, (item, proposal) in enumerate(members):
            if (seen + offset) % every:
                continue
            sampled += 1
            rows.append(
                {
                    "id": new_id("tsk"),
                    "item_id": item.id,
                    "pipeline": pipeline,
                    "kind": "audit",
                    "queue": queue,
                    "priority": 3,
                    "state": "open",
                    "reason": f"blind audit: 1 in {every} auto-handled {value or 'items'}",
                    "proposal": dict(proposal),
                    "workflow_id": None,
                    "created_at": now,
                    "due_at": due_at,
                    "stratum": value,
                }
            )
        conn.execute(
            update(audit_strata)
            .where(audit_strata.c.pipeline == pipeline, audit_strata.c.stratum == value)
            .values(seen=seen + len(members), sampled=sampled)
        )
    if rows:
        conn.execute(review_tasks.insert(), rows)
        append(
            conn,
            [
                AuditEvent(
                    "worker",
                    "review.audit_sampled",
                    str(r["item_id"]),
                    {"task_id": r["id"], "stratum": r["stratum"]},
                )
                for r in rows
            ],
        )
    return [str(r["id"]) for r in rows]


@dataclass(frozen=True)
class StratumPrecision:
    """Audited precision of one stratum (or overall)."""

    stratum: str
    auto_handled: int
    audited: int
    correct: int
    precision: float | None
    low: float | None
    high: float | None


@dataclass
class AuditEstimate:
    """Precision of automated decisions as the audits estimate it."""

    pipeline: str
    overall: StratumPrecision
    strata: list[StratumPrecision] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return asdict(self)


def _wilson(correct: int, n: int) -> tuple[float | None, float | None, float | None]:
    if n == 0:
        return None, None, None
    p = correct / n
    denominator = 1 + _Z**2 / n
    centre = (p + _Z**2 / (2 * n)) / denominator
    half = _Z * math.sqrt(p * (1 - p) / n + _Z**2 / (4 * n * n)) / denominator
    return round(p, 4), round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)


def audit_precision(store: Store, pipeline: str) -> AuditEstimate:
    """Per-stratum and overall precision of auto-handled items, from decided audits."""
    with store.read() as conn:
        counts = {
            r.stratum: r.seen
            for r in conn.execute(select(audit_strata).where(audit_strata.c.pipeline == pipeline))
        }
        graded = conn.execute(
            select(review_tasks.c.stratum, review_tasks.c.proposal, decisions.c.label)
            .join(decisions, decisions.c.task_id == review_tasks.c.id)
            .where(review_tasks.c.kind == "audit", review_tasks.c.pipeline == pipeline)
        ).all()
    tallies: dict[str, list[int]] = {s: [0, 0] for s in counts}
    for row in graded:
        tally = tallies.setdefault(row.stratum or "", [0, 0])
        tally[0] += 1
        tally[1] += int(row.label is not None and row.label == (row.proposal or {}).get("label"))
    strata = []
    for value, (n, correct) in sorted(tallies.items()):
        p, low, high = _wilson(correct, n)
        strata.append(StratumPrecision(value, counts.get(value, 0), n, correct, p, low, high))
    return AuditEstimate(pipeline, _stratified(strata), strata)


def _stratified(strata: Sequence[StratumPrecision]) -> StratumPrecision:
    """Overall precision: strata weighted by auto-handled share (audited strata only)."""
    audited = [s for s in strata if s.audited and s.precision is not None]
    total = sum(s.auto_handled for s in audited)
    n, correct = sum(s.audited for s in strata), sum(s.correct for s in strata)
    if not audited or total == 0:
        p, low, high = _wilson(correct, n)
        return StratumPrecision(
            "overall", sum(s.auto_handled for s in strata), n, correct, p, low, high
        )
    estimate = sum(s.auto_handled / total * (s.precision or 0.0) for s in audited)
    # Each stratum's variance from its Wilson interval, which stays honest (non-zero)
    # when every audited item of a stratum was right.
    variance = sum(
        (s.auto_handled / total) ** 2 * (((s.high or 0.0) - (s.low or 0.0)) / (2 * _Z)) ** 2
        for s in audited
    )
    half = _Z * math.sqrt(variance)
    return StratumPrecision(
        "overall",
        sum(s.auto_handled for s in strata),
        n,
        correct,
        round(estimate, 4),
        round(max(0.0, estimate - half), 4),
        round(min(1.0, estimate + half), 4),
    )
