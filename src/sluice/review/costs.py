"""What human review costs: time per decision per reviewer, in minutes and money.

Two clocks per decision: *claim to decision* (``seconds_to_decide``: how long the task
was held) and *active time* (``active_seconds``: how long its screen was in front of the
reviewer, measured by the review app). Money is active time (or, where it was not
measured, claim to decision) at the configured hourly rate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from statistics import median
from typing import Any

from sqlalchemy import select

from sluice.review.tables import decisions
from sluice.store import Store

__all__ = ["ReviewerCost", "reviewer_costs"]


@dataclass(frozen=True)
class ReviewerCost:
    """One reviewer's decisions and what their time cost."""

    reviewer: str
    decisions: int
    median_seconds_to_decide: float | None
    median_active_seconds: float | None
    minutes: float
    cost: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return asdict(self)


def reviewer_costs(store: Store, *, hourly_rate: float) -> list[ReviewerCost]:
    """Per reviewer, most decisions first."""
    rows: dict[str, list[tuple[float | None, float | None]]] = {}
    with store.read() as conn:
        for r in conn.execute(
            select(decisions.c.reviewer, decisions.c.seconds_to_decide, decisions.c.active_seconds)
        ):
            rows.setdefault(r.reviewer, []).append((r.seconds_to_decide, r.active_seconds))
    out = []
    for reviewer, times in rows.items():
        held = [t for t, _ in times if t is not None]
        active = [a for _, a in times if a is not None]
        billed = sum(a if a is not None else (t or 0.0) for t, a in times)
        out.append(
            ReviewerCost(
                reviewer=reviewer,
                decisions=len(times),
                median_seconds_to_decide=round(median(held), 1) if held else None,
                median_active_seconds=round(median(active), 1) if active else None,
                minutes=round(billed / 60, 2),
                cost=round(billed / 3600 * hourly_rate, 2),
            )
        )
    return sorted(out, key=lambda c: (-c.decisions, c.reviewer))
