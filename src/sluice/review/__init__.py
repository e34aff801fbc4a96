"""The review plane: tasks for humans, their decisions, and the desk the gate calls."""

from sluice.review.audits import AuditEstimate, StratumPrecision, audit_precision
from sluice.review.claims import DEFAULT_LEASE_S, claim, escalate_task, release
from sluice.review.costs import ReviewerCost, reviewer_costs
from sluice.review.feedback import labelled_decisions
from sluice.review.tasks import (
    Decision,
    Outcome,
    ReviewTask,
    TaskDesk,
    backlog,
    decide,
    get_decision,
    get_task,
    list_tasks,
)

__all__ = [
    "DEFAULT_LEASE_S",
    "AuditEstimate",
    "Decision",
    "Outcome",
    "ReviewTask",
    "ReviewerCost",
    "StratumPrecision",
    "TaskDesk",
    "audit_precision",
    "backlog",
    "claim",
    "decide",
    "escalate_task",
    "get_decision",
    "get_task",
    "labelled_decisions",
    "list_tasks",
    "release",
    "reviewer_costs",
]
