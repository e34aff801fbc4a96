"""The review desk contract: how the execution plane hands parked items to humans.

The review gate is an execution primitive, but review tasks and decisions belong to the
review plane. The execution plane calls it only through this protocol; the runtime that
starts a worker plugs the review plane's implementation in (:func:`set_review_desk`).
Every method that takes a connection runs inside the caller's transaction, so a task
and the item state it belongs to change together or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection

from sluice.errors import ConfigError
from sluice.execution.types import ItemView, Resolution, Review

__all__ = ["ReviewDesk", "get_review_desk", "set_review_desk"]


class ReviewDesk(Protocol):
    """What the review gate needs from the review plane."""

    def open_tasks(
        self,
        conn: Connection,
        parked: Sequence[tuple[ItemView, Review]],
        *,
        workflow_id: str,
        due_at: datetime,
    ) -> dict[str, str]:
        """Open the review tasks of parked items (idempotent per item).

        Returns:
            Task id by item id, for every item given.
        """
        ...

    def resolution(self, conn: Connection, task_id: str) -> Resolution | None:
        """The decision on the task as a :class:`Resolution`, or None if undecided."""
        ...

    def mark_applied(self, conn: Connection, task_id: str) -> None:
        """Record that the decision's action was applied."""
        ...

    def escalate(
        self, conn: Connection, task_ids: Sequence[str], *, queue: str, due_at: datetime
    ) -> None:
        """Move overdue tasks to the escalation queue with a new deadline."""
        ...

    def expire(self, conn: Connection, task_ids: Sequence[str]) -> None:
        """Mark escalated tasks as expired (they still accept a decision)."""
        ...

    def sample_audits(
        self,
        conn: Connection,
        settled: Sequence[tuple[ItemView, Mapping[str, Any]]],
        *,
        rate: float,
        stratum: str,
        queue: str,
        due_at: datetime,
    ) -> list[str]:
        """Sample auto-handled items (with their proposals) into audit tasks.

        Returns:
            The ids of the audit tasks opened.
        """
        ...


_DESK: list[ReviewDesk] = []


def set_review_desk(desk: ReviewDesk) -> None:
    """Plug in the review plane (done by :mod:`sluice.runtime`)."""
    _DESK[:] = [desk]


def get_review_desk() -> ReviewDesk:
    """The plugged-in review desk.

    Raises:
        ConfigError: None was plugged in (the process did not build a runtime).
    """
    if not _DESK:
        raise ConfigError(
            "no review desk is configured in this process",
            hint="start workers through sluice.runtime.Runtime, which wires the review plane",
        )
    return _DESK[0]
