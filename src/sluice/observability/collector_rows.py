"""What the metrics collector reads from the store: new rows by cursor, and live gauges.

Two kinds of reads, both plain ``SELECT``s that never change a row:

* **New rows** of the append-only tables (``step_runs``, ``model_calls``, ``decisions``,
  ``outbox``), read in id order by a :class:`RowCursor`. Ids sort by creation time
  (:func:`sluice.store.new_id`), and the primary key index makes ``id > cursor`` cheap.
  A row can commit a little after a row with a larger id (two workers, a batch
  transaction, the meter's buffered writes), so the cursor re-reads a short window
  (``overlap_s``) behind the newest id it has seen and skips the ids it already counted:
  a row that commits later than that window after a newer one was seen is missed.
* **Gauges** (items by status, queue depth and age, review backlog): one ``GROUP BY``
  each, per scrape.

Layering note: ARCHITECTURE.md asks that another plane's tables be read through the
owner's functions. The owners have no cursor-based readers yet, so this module is the one
place where observability reads them directly; each reader is a small function that can
move into its plane (``execution``, ``models``, ``review``) unchanged.

Example:
    >>> cursor = RowCursor(overlap_s=10.0)
    >>> cursor.floor
    ''
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, Table, func, select

from sluice.execution.tables import outbox, step_runs, work_items
from sluice.models.gateway_tables import model_calls
from sluice.review.tables import decisions, review_tasks
from sluice.store import Store

__all__ = [
    "REVIEW_OPEN_STATES",
    "Gauges",
    "RowCursor",
    "read_gauges",
    "read_new_rows",
]

#: Task states that count as backlog, as in :func:`sluice.review.backlog`.
REVIEW_OPEN_STATES = ("open", "claimed", "escalated", "expired")


class RowCursor:
    """Where one table was read up to, with a re-read window for late commits (module docs).

    Args:
        overlap_s: How long after a scrape its newest id still lets older ids through.
        clock: Monotonic clock (tests pass their own).
    """

    def __init__(self, *, overlap_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.overlap_s = overlap_s
        self.floor = ""  # ids <= floor are never read again
        self.seen: set[str] = set()  # ids > floor already counted
        self._clock = clock
        self._marks: deque[tuple[float, str]] = deque()  # (when, newest id then)

    def advance(self, newest: str) -> None:
        """Note the newest id read by a scrape; move the floor past the window."""
        now = self._clock()
        if newest:
            self._marks.append((now, newest))
        while self._marks and now - self._marks[0][0] >= self.overlap_s:
            _, mark = self._marks.popleft()
            self.floor = max(self.floor, mark)
        if self.floor:
            self.seen = {i for i in self.seen if i > self.floor}


def _step_rows() -> Select[Any]:
    return select(
        step_runs.c.id,
        work_items.c.pipeline,
        step_runs.c.step,
        step_runs.c.status,
        step_runs.c.latency_ms,
        step_runs.c.error_type,
        step_runs.c.output,
    ).join(work_items, work_items.c.id == step_runs.c.item_id)


def _model_rows() -> Select[Any]:
    return select(
        model_calls.c.id,
        model_calls.c.endpoint,
        model_calls.c.model,
        model_calls.c.version,
        model_calls.c.task,
        model_calls.c.tenant,
        model_calls.c.inputs,
        model_calls.c.latency_ms,
        model_calls.c.cost,
        model_calls.c.cache,
        model_calls.c.error_kind,
    )


def _decision_rows() -> Select[Any]:
    return select(
        decisions.c.id,
        review_tasks.c.pipeline,
        review_tasks.c.queue,
        review_tasks.c.kind,
        review_tasks.c.created_at,
        review_tasks.c.proposal,
        decisions.c.outcome,
        decisions.c.label,
        decisions.c.decided_at,
        decisions.c.active_seconds,
    ).join(review_tasks, review_tasks.c.id == decisions.c.task_id)


def _outbox_rows() -> Select[Any]:
    return select(outbox.c.id, outbox.c.pipeline, outbox.c.decided_by)


#: The tables read by cursor, each with its query (the first column is the row's id).
SOURCES: dict[str, tuple[Table, Callable[[], Select[Any]]]] = {
    "step_runs": (step_runs, _step_rows),
    "model_calls": (model_calls, _model_rows),
    "decisions": (decisions, _decision_rows),
    "outbox": (outbox, _outbox_rows),
}


def read_new_rows(
    store: Store, source: str, cursor: RowCursor, *, page: int, budget: int
) -> Iterator[Any]:
    """Rows of ``source`` not yet counted, in id order, at most ``budget`` of them.

    Marks each yielded row as seen and advances ``cursor`` once the pages are read; a
    scrape that hits the budget goes on from there at the next scrape.
    """
    table, query = SOURCES[source]
    after, newest, left = cursor.floor, "", budget
    with store.read() as conn:
        while left > 0:
            rows = conn.execute(
                query().where(table.c.id > after).order_by(table.c.id).limit(page)
            ).all()
            for row in rows:
                after = newest = row.id
                if row.id in cursor.seen:
                    continue
                cursor.seen.add(row.id)
                left -= 1
                yield row
                if left == 0:
                    break
            if len(rows) < page:
                break
    cursor.advance(newest)


@dataclass(frozen=True)
class Gauges:
    """Live figures read at each scrape.

    Attributes:
        items: Item count per (pipeline, status).
        queue_oldest: Per pipeline, when its oldest queued item was submitted.
        review_backlog: Open task count per (pipeline, queue, kind).
        review_oldest: Per (pipeline, queue), when its oldest open task was opened.
    """

    items: dict[tuple[str, str], int]
    queue_oldest: dict[str, datetime]
    review_backlog: dict[tuple[str, str, str], int]
    review_oldest: dict[tuple[str, str], datetime]


def _utc(value: Any) -> datetime:
    # Aggregates bypass the column type on SQLite and come back as naive UTC text.
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(moment, datetime)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_gauges(store: Store) -> Gauges:
    """Items by status, queue ages and the review backlog, now."""
    with store.read() as conn:
        items = {
            (p, s): int(n)
            for p, s, n in conn.execute(
                select(work_items.c.pipeline, work_items.c.status, func.count()).group_by(
                    work_items.c.pipeline, work_items.c.status
                )
            )
        }
        queue_oldest = {
            p: _utc(oldest)
            for p, oldest in conn.execute(
                select(work_items.c.pipeline, func.min(work_items.c.created_at))
                .where(work_items.c.status == "queued")
                .group_by(work_items.c.pipeline)
            )
            if oldest is not None
        }
        backlog: dict[tuple[str, str, str], int] = {}
        review_oldest: dict[tuple[str, str], datetime] = {}
        for p, q, k, n, oldest in conn.execute(
            select(
                review_tasks.c.pipeline,
                review_tasks.c.queue,
                review_tasks.c.kind,
                func.count(),
                func.min(review_tasks.c.created_at),
            )
            .where(review_tasks.c.state.in_(REVIEW_OPEN_STATES))
            .group_by(review_tasks.c.pipeline, review_tasks.c.queue, review_tasks.c.kind)
        ):
            backlog[(p, q, k)] = int(n)
            if oldest is not None:
                moment = _utc(oldest)
                review_oldest[(p, q)] = min(review_oldest.get((p, q), moment), moment)
    return Gauges(items, queue_oldest, backlog, review_oldest)
