"""The review plane: tasks for humans, their decisions, and the desk the gate calls."""

from sluice.review.claims import DEFAULT_LEASE_S, claim, release
from sluice.review.costs import ReviewerCost, reviewer_costs
from sluice.review.tasks import (
    Decision,
    Outcome,
    ReviewTask,
    TaskDesk,
    decide,
    get_task,
    list_tasks,
)

__all__ = [
    "DEFAULT_LEASE_S",
    "Decision",
    "Outcome",
    "ReviewTask",
    "ReviewerCost",
    "TaskDesk",
    "claim",
    "decide",
    "get_task",
    "list_tasks",
    "release",
    "reviewer_costs",
]
