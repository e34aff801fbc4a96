"""``POST /v1/events``: CloudEvents intake, structured, batched or binary mode."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from sluice.api.auth import get_runtime, require
from sluice.api.problems import Problem
from sluice.api.schemas import SubmitResponse
from sluice.errors import ConfigError, EventValidationError, NotFoundError
from sluice.execution import ParsedLine, get_pipeline, parse_event_obj, submit_lines
from sluice.governance import Principal, authorize
from sluice.runtime import Runtime

router = APIRouter(tags=["intake"])

_BINARY_HEADERS = ("specversion", "id", "source", "type", "subject", "time")


def _parsed(index: int, obj: Any, max_bytes: int) -> ParsedLine:
    raw = json.dumps(obj, ensure_ascii=False)
    if len(raw.encode()) > max_bytes:
        error = EventValidationError(
            f"event is over the limit of {max_bytes} bytes", line=index, hint="send less data"
        )
        return ParsedLine(index, raw[:10_000], error=error)
    try:
        return ParsedLine(index, raw, event=parse_event_obj(obj, line=index))
    except EventValidationError as exc:
        return ParsedLine(index, raw, error=exc)


def _binary_event(request: Request, body: bytes) -> dict[str, Any]:
    """A binary-mode CloudEvent: attributes in ``ce-*`` headers, ``data`` in the body."""
    event: dict[str, Any] = {}
    for key, value in request.headers.items():
        if key.startswith("ce-"):
            event[key[3:]] = value
    content_type = request.headers.get("content-type", "application/json")
    event["datacontenttype"] = content_type
    if "json" not in content_type:
        raise EventValidationError(
            f"binary-mode data of type {content_type!r} is not accepted",
            field="datacontenttype",
            hint="send JSON data (application/json)",
        )
    try:
        event["data"] = json.loads(body) if body else None
    except json.JSONDecodeError as exc:
        raise EventValidationError(f"invalid JSON data: {exc.msg}", field="data") from None
    return event


@router.post(
    "/v1/events",
    status_code=202,
    response_model=SubmitResponse,
    responses={401: Problem, 403: Problem, 404: Problem, 413: Problem, 422: Problem, 503: Problem},
    summary="Submit CloudEvents",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/cloudevents+json": {"schema": {"type": "object"}},
                "application/cloudevents-batch+json": {
                    "schema": {"type": "array", "items": {"type": "object"}}
                },
                "application/json": {"schema": {"oneOf": [{"type": "object"}, {"type": "array"}]}},
            },
        }
    },
)
async def submit(
    request: Request,
    response: Response,
    pipeline: str = Query(description="The pipeline that runs these events."),
    principal: Principal = Depends(require("items:submit")),
    rt: Runtime = Depends(get_runtime),
) -> dict[str, Any]:
    """Accept CloudEvents: structured, batched (a JSON array) or binary (``ce-*`` headers).

    Answers 202 with the item of each event. ``source`` + ``id`` identify an event: an
    event already submitted is reported under ``duplicate_items`` with its existing item
    and never runs twice. Invalid events are reported with their position and kept as
    rejections; the valid ones in the same request are accepted. 422 when none was.
    """
    try:
        target = get_pipeline(pipeline)
    except ConfigError:
        # No list of the declared pipelines here: a scoped token must not learn them.
        raise NotFoundError(f"unknown pipeline {pipeline!r}") from None
    await run_in_threadpool(authorize, rt.store, principal, "items:submit", pipeline=target.name)
    body = await request.body()
    max_bytes = rt.settings.max_event_bytes
    if "ce-specversion" in request.headers:
        events: list[Any] = [_binary_event(request, body)]
    else:
        try:
            decoded = json.loads(body)
        except json.JSONDecodeError as exc:
            raise EventValidationError(
                f"invalid JSON: {exc.msg} at column {exc.colno}",
                hint="send a CloudEvent object or an array of them",
            ) from None
        events = decoded if isinstance(decoded, list) else [decoded]
        if not events:
            raise EventValidationError("an empty batch", hint="send at least one event")
    parsed = [_parsed(i, obj, max_bytes) for i, obj in enumerate(events, start=1)]
    # The store is synchronous: keep its work off the event loop, so one big batch does
    # not stall every other request of this process.
    report = await run_in_threadpool(
        submit_lines, rt.store, target, parsed, origin="api", actor=principal.actor
    )
    if not report.accepted and not report.duplicates and report.rejected:
        response.status_code = 422
    return report.to_dict()
