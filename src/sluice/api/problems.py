"""Errors as RFC 9457 problem details: a stable type, a title, the status, what to do.

Every :class:`~sluice.errors.SluiceError` maps to its ``status`` and ``code``; request
validation errors to 422 with the offending fields; anything unexpected to a bare 500
(logged with its traceback server-side, never sent to the client).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sluice.errors import SluiceError

__all__ = ["PROBLEM_JSON", "Problem", "install_problem_handlers", "problem_response"]

log = logging.getLogger("sluice.api")
PROBLEM_JSON = "application/problem+json"
_TYPE_BASE = "https://sluice.dev/problems/"


def problem_response(
    status: int, kind: str, title: str, detail: str | None = None, **extra: Any
) -> JSONResponse:
    """A problem-details response; ``kind`` names its ``type`` (and is its ``code``)."""
    body: dict[str, Any] = {
        "type": _TYPE_BASE + kind,
        "title": title,
        "status": status,
        "code": kind,
    }
    if detail:
        body["detail"] = detail
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _sluice_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SluiceError)
    extra = {k: v for k, v in exc.to_dict().items() if k not in ("code", "message")}
    return problem_response(exc.status, exc.code, exc.message, exc.hint, **extra)


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")}
        for e in exc.errors()
    ]
    return problem_response(422, "invalid_request", "the request is not valid", errors=errors)


def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem_response(exc.status_code, f"http_{exc.status_code}", str(exc.detail))


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(500, "internal", "internal error", "the error was logged")


def install_problem_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(SluiceError, _sluice_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


#: OpenAPI description of a problem response, for the routes' ``responses=``.
Problem: dict[str, Any] = {
    "description": "Problem details (RFC 9457)",
    "content": {
        PROBLEM_JSON: {
            "schema": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "code": {"type": "string"},
                },
                "required": ["type", "title", "status"],
            }
        }
    },
}
