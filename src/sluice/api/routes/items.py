"""Items, their lineage and retries; the outbox."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from sluice.api.auth import get_runtime, require, shown_data
from sluice.api.problems import Problem
from sluice.api.schemas import ItemSummary, OutboxRecordOut
from sluice.errors import NotFoundError
from sluice.execution import get_item, item_lineage, list_items, list_outbox, retry_items
from sluice.governance import Principal, authorize
from sluice.runtime import Runtime

router = APIRouter(tags=["items"], responses={401: Problem, 403: Problem})

Status = Query(
    default=None,
    description="queued, running, waiting_review, completed, rejected or failed",
    pattern="^(queued|running|waiting_review|completed|rejected|failed)$",
)


def _visible(principal: Principal, pipeline: str | None) -> list[str] | None:
    """Pipelines to show: the caller's scope, narrowed to ``pipeline`` if given."""
    scope = list(principal.pipelines) if principal.pipelines is not None else None
    if pipeline is None:
        return scope
    return [pipeline] if scope is None or pipeline in scope else []


@router.get("/v1/items", response_model=list[ItemSummary], summary="List items")
def items(
    pipeline: str | None = Query(default=None, max_length=100),
    status: str | None = Status,
    limit: int = Query(default=50, ge=1, le=1000),
    offset: int = Query(default=0, ge=0, le=1_000_000),
    principal: Principal = Depends(require("items:read")),
    rt: Runtime = Depends(get_runtime),
) -> list[dict[str, Any]]:
    """Items, newest first (only the caller's pipelines for a scoped token)."""
    pipelines = _visible(principal, pipeline)
    if pipelines is None:
        return list_items(rt.store, status=status, limit=limit, offset=offset)
    rows: list[dict[str, Any]] = []
    for name in pipelines:
        rows += list_items(rt.store, pipeline=name, status=status, limit=limit + offset)
    rows.sort(key=lambda r: (r["created_at"], r["id"]), reverse=True)
    return rows[offset : offset + limit]


def _item_in_scope(
    rt: Runtime, principal: Principal, item_id: str, permission: Any
) -> dict[str, Any]:
    item = get_item(rt.store, item_id)
    if principal.pipelines is not None and item["pipeline"] not in principal.pipelines:
        raise NotFoundError(f"no item {item_id!r}")  # do not reveal other pipelines' items
    authorize(rt.store, principal, permission, pipeline=item["pipeline"])
    return item


@router.get(
    "/v1/items/{item_id}",
    response_model=dict[str, Any],
    responses={404: Problem},
    summary="One item, every step",
)
def item(
    item_id: str,
    principal: Principal = Depends(require("items:read")),
    rt: Runtime = Depends(get_runtime),
) -> dict[str, Any]:
    """The whole record of an item: the event, its state, every step run, its outbox row.

    The event's data is masked for tokens without PII clearance.
    """
    found = _item_in_scope(rt, principal, item_id, "items:read")
    found["event"]["data"] = shown_data(principal, found["event"]["data"])
    return found


@router.get(
    "/v1/items/{item_id}/lineage",
    response_model=dict[str, Any],
    responses={404: Problem},
    summary="An item's lineage with proof",
)
def lineage(
    item_id: str,
    principal: Principal = Depends(require("lineage:read")),
    rt: Runtime = Depends(get_runtime),
) -> dict[str, Any]:
    """The chain behind an item's output, each line backed by an audit entry."""
    _item_in_scope(rt, principal, item_id, "lineage:read")
    record = item_lineage(rt.store, item_id)
    record["event"]["data"] = shown_data(principal, record["event"]["data"])
    return record


@router.post(
    "/v1/items/{item_id}/retry",
    response_model=dict[str, Any],
    responses={404: Problem, 409: Problem},
    summary="Retry a failed item",
)
def retry(
    item_id: str,
    principal: Principal = Depends(require("items:retry")),
    rt: Runtime = Depends(get_runtime),
) -> dict[str, Any]:
    """Put a failed item back in the queue, in a new round."""
    _item_in_scope(rt, principal, item_id, "items:retry")
    retry_items(rt.store, [item_id], actor=principal.actor)
    return {"item_id": item_id, "status": "queued"}


@router.get("/v1/outbox", response_model=list[OutboxRecordOut], summary="Decided actions")
def outbox(
    pipeline: str | None = Query(default=None, max_length=100),
    limit: int = Query(default=50, ge=1, le=1000),
    offset: int = Query(default=0, ge=0, le=1_000_000),
    principal: Principal = Depends(require("outbox:read")),
    rt: Runtime = Depends(get_runtime),
) -> list[dict[str, Any]]:
    """Outbox records (one action per item), newest first (a scoped token: its pipelines)."""
    pipelines = _visible(principal, pipeline)
    if pipelines is None:
        return list_outbox(rt.store, limit=limit, offset=offset)
    rows: list[dict[str, Any]] = []
    for name in pipelines:
        rows += list_outbox(rt.store, pipeline=name, limit=limit + offset)
    rows.sort(key=lambda r: (r["created_at"], r["id"]), reverse=True)
    return rows[offset : offset + limit]
