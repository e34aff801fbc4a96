"""The review queue over HTTP: list, look, claim, decide.

Reviewers see only the queues their token is assigned to; a task in another queue is
reported as not found, so its existence is not revealed either.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query

from sluice.api.auth import get_runtime, require, shown_data
from sluice.api.problems import Problem
from sluice.api.schemas import ClaimIn, DecisionIn, DecisionOut, EscalateIn, TaskContext, TaskOut
from sluice.errors import NotFoundError
from sluice.execution import escalation_queue, get_item
from sluice.governance import Permission, Principal, authorize
from sluice.review import (
    ReviewTask,
    claim,
    decide,
    escalate_task,
    get_decision,
    get_task,
    list_tasks,
    release,
)
from sluice.runtime import Runtime

router = APIRouter(tags=["review"], responses={401: Problem, 403: Problem})


def task_in_scope(
    rt: Runtime, principal: Principal, task_id: str, permission: Permission
) -> ReviewTask:
    """The task, if the caller may see it (404 otherwise); checks ``permission`` on it."""
    task = get_task(rt.store, task_id)
    if principal.queues is not None and task.queue not in principal.queues:
        raise NotFoundError(f"no review task {task_id!r}")
    if principal.pipelines is not None and task.pipeline not in principal.pipelines:
        raise NotFoundError(f"no review task {task_id!r}")
    authorize(rt.store, principal, permission, pipeline=task.pipeline, queue=task.queue)
    return task


def visible_tasks(
    rt: Runtime, principal: Principal, *, state: str | None, queue: str | None, limit: int
) -> list[ReviewTask]:
    """Tasks the caller may see, by priority then age."""
    queues = [queue] if queue else None
    if principal.queues is not None:
        queues = [q for q in (queues or principal.queues) if q in principal.queues]
    pipelines = list(principal.pipelines) if principal.pipelines is not None else [None]
    tasks = [
        t
        for p in pipelines
        for q in (queues if queues is not None else [None])
        for t in list_tasks(rt.store, state=state, queue=q, pipeline=p, limit=limit)
    ]
    tasks.sort(key=lambda t: (t.priority, t.created_at))
    return tasks[:limit]


@router.get("/v1/review/tasks", response_model=list[TaskOut], summary="The review queue")
def tasks(
    state: str = Query(
        default="open",
        pattern="^(open|claimed|decided|escalated|expired|all)$",
        description="open includes claimed, escalated and expired",
    ),
    queue: str | None = Query(default=None, max_length=100),
    limit: int = Query(default=50, ge=1, le=1000),
    principal: Principal = Depends(require("review:read")),
    rt: Runtime = Depends(get_runtime),
) -> list[dict[str, Any]]:
    """Tasks by priority, oldest first; a reviewer sees their queues only."""
    chosen = None if state == "all" else state
    return [
        t.public_dict()
        for t in visible_tasks(rt, principal, state=chosen, queue=queue, limit=limit)
    ]


@router.get(
    "/v1/review/tasks/{task_id}",
    response_model=TaskContext,
    responses={404: Problem},
    summary="What a decision needs",
)
def task(
    task_id: str,
    principal: Principal = Depends(require("review:read")),
    rt: Runtime = Depends(get_runtime),
) -> dict[str, Any]:
    """The task and the message it is about: the minimal context of a decision."""
    found = task_in_scope(rt, principal, task_id, "review:read")
    item = get_item(rt.store, found.item_id)
    decision = get_decision(rt.store, task_id)
    return {
        "task": found.public_dict(),
        "message": shown_data(principal, item["event"]["data"] or {}),
        "decision": decision.to_dict() if decision else None,
    }


@router.post(
    "/v1/review/tasks/{task_id}/claim",
    response_model=TaskOut,
    responses={404: Problem, 409: Problem},
    summary="Claim a task",
)
def claim_task(
    task_id: str,
    body: ClaimIn = Body(default_factory=ClaimIn),
    principal: Principal = Depends(require("review:decide")),
    rt: Runtime = Depends(get_runtime),
) -> dict[str, Any]:
    """Hold a task for ``lease_seconds``; nobody else can decide it meanwhile (409)."""
    task_in_scope(rt, principal, task_id, "review:decide")
    return claim(
        rt.store, task_id, reviewer=principal.display_name, lease_s=body.lease_seconds
    ).public_dict()


@router.post(
    "/v1/review/tasks/{task_id}/release",
    response_model=TaskOut,
    responses={404: Problem, 409: Problem},
    summary="Give a task back",
)
def release_task(
    task_id: str,
    principal: Principal = Depends(require("review:decide")),
    rt: Runtime = Depends(get_runtime),
) -> dict[str, Any]:
    """Release a claim you hold."""
    task_in_scope(rt, principal, task_id, "review:decide")
    return release(rt.store, task_id, reviewer=principal.display_name).public_dict()


@router.post(
    "/v1/review/tasks/{task_id}/escalate",
    response_model=TaskOut,
    responses={404: Problem, 409: Problem},
    summary="Escalate a task",
)
def escalate(
    task_id: str,
    body: EscalateIn = Body(default_factory=EscalateIn),
    principal: Principal = Depends(require("review:decide")),
    rt: Runtime = Depends(get_runtime),
) -> dict[str, Any]:
    """Hand the task to the pipeline's escalation queue instead of deciding it."""
    task = task_in_scope(rt, principal, task_id, "review:decide")
    return escalate_task(
        rt.store,
        task_id,
        reviewer=principal.display_name,
        queue=escalation_queue(task.pipeline),
        reason=body.reason,
    ).public_dict()


@router.post(
    "/v1/review/tasks/{task_id}/decision",
    response_model=DecisionOut,
    status_code=201,
    responses={404: Problem, 409: Problem},
    summary="Decide a task",
)
def decide_task(
    task_id: str,
    body: DecisionIn,
    principal: Principal = Depends(require("review:decide")),
    rt: Runtime = Depends(get_runtime),
) -> dict[str, Any]:
    """Record the one decision on a task; the waiting item resumes. A second is a 409."""
    task_in_scope(rt, principal, task_id, "review:decide")
    decision = decide(
        rt.store,
        task_id,
        reviewer=principal.display_name,
        outcome=body.outcome,
        label=body.label,
        reason=body.reason,
    )
    return decision.to_dict()
