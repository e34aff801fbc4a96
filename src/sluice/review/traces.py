"""The review's spans in the item's trace: the wait for a human, and the decision.

A reviewer may decide days after the item was parked, in another process (the API, the
CLI) than the worker that parked it. The spans are made when the decision commits, from
recorded times, under the item's stored trace id (:func:`sluice.execution.item_trace_parent`):

* ``sluice.review.wait``: from the task's opening to the decision (queue, kind,
  whether it escalated);
* ``sluice.review.decision``, its child: the decision itself (reviewer, outcome, label).

The worker's application of the decision (``sluice.review.apply``, then
``sluice.action``) joins the same trace when the item resumes.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING

from opentelemetry import trace

from sluice.execution import item_trace_parent, trace_ids, tracing_enabled
from sluice.store import Store

if TYPE_CHECKING:
    from sluice.review.tasks import Decision, ReviewTask

__all__ = ["decision_spans"]


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1e9)


def decision_spans(store: Store, task: ReviewTask, decision: Decision, started_ns: int) -> None:
    """Record the wait and the decision of ``task`` in its item's trace (when tracing)."""
    if not tracing_enabled():
        return
    trace_id = trace_ids(store, [task.item_id]).get(task.item_id)
    if trace_id is None:
        return
    tracer = trace.get_tracer_provider().get_tracer("sluice.review")
    item = {"sluice.item.id": task.item_id, "sluice.pipeline": task.pipeline}
    decided_ns = _ns(decision.decided_at)
    wait = tracer.start_span(
        "sluice.review.wait",
        context=item_trace_parent(trace_id),
        attributes={
            **item,
            "sluice.review.task_id": task.id,
            "sluice.review.kind": task.kind,
            "sluice.review.queue": task.queue,
            "sluice.review.escalated": task.escalated_at is not None,
        },
        start_time=_ns(task.created_at),
    )
    decided = tracer.start_span(
        "sluice.review.decision",
        context=trace.set_span_in_context(wait),
        attributes={
            **item,
            "sluice.review.task_id": task.id,
            "sluice.review.decision_id": decision.id,
            "sluice.review.reviewer": decision.reviewer,
            "sluice.review.outcome": decision.outcome,
            **({"sluice.label": decision.label} if decision.label else {}),
        },
        start_time=min(started_ns, decided_ns),
    )
    decided.end(end_time=max(time.time_ns(), decided_ns))
    wait.end(end_time=decided_ns)
