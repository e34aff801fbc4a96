"""Human decisions as labelled examples: what retraining learns from.

Every decision that names a label (an approval, a correction, a graded audit) says
"this item's right label is L", with its provenance: decision, task, reviewer, time.
Rejections name no label and are left out.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from sluice.review.tables import decisions, review_tasks
from sluice.store import Store

__all__ = ["labelled_decisions"]


def labelled_decisions(store: Store, pipeline: str) -> list[dict[str, Any]]:
    """Decisions with a label on ``pipeline``'s tasks, oldest first, with provenance."""
    query = (
        select(
            decisions.c.id,
            decisions.c.task_id,
            decisions.c.item_id,
            decisions.c.reviewer,
            decisions.c.outcome,
            decisions.c.label,
            decisions.c.decided_at,
            review_tasks.c.kind,
        )
        .join(review_tasks, review_tasks.c.id == decisions.c.task_id)
        .where(review_tasks.c.pipeline == pipeline, decisions.c.label.is_not(None))
        .order_by(decisions.c.decided_at)
    )
    with store.read() as conn:
        return [
            {
                "decision_id": r.id,
                "task_id": r.task_id,
                "item_id": r.item_id,
                "reviewer": r.reviewer,
                "outcome": r.outcome,
                "label": r.label,
                "kind": r.kind,
                "decided_at": r.decided_at.isoformat(),
            }
            for r in conn.execute(query)
        ]
