"""The review plane: tasks for humans, their decisions, and the desk the gate calls."""

from sluice.review.tasks import (
    Decision,
    Outcome,
    ReviewTask,
    TaskDesk,
    decide,
    get_task,
    list_tasks,
)

__all__ = ["Decision", "Outcome", "ReviewTask", "TaskDesk", "decide", "get_task", "list_tasks"]
