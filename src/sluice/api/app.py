"""The FastAPI application: API routes, the review app, problem details, size limits.

All web knowledge of Sluice lives in ``api/`` and ``web/``; the planes know nothing of
HTTP. One :class:`~sluice.runtime.Runtime` per app holds the store; all state is in the
database, so any number of API processes can serve behind a load balancer.

CORS is off (no cross-origin browser access) unless an operator puts a proxy in front.

Example:
    >>> app = create_app(Settings())  # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sluice import __version__
from sluice.api.problems import Problem, install_problem_handlers, problem_response
from sluice.api.routes import events, items, meta, metrics, review
from sluice.config import Settings
from sluice.runtime import Runtime

__all__ = ["create_app"]


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, before reading them whole.

    Checks ``Content-Length`` up front and counts the bytes of chunked bodies as they
    arrive, so a client cannot make the server buffer more than the limit.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLargeError
            return message

        try:
            await self.app(scope, counting, send)
        except _TooLargeError:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            413,
            "request_too_large",
            f"the request body is over {self.limit} bytes",
            "send fewer events per request (SLUICE_MAX_REQUEST_BYTES)",
        )
        await response(scope, receive, send)


class _TooLargeError(Exception):
    pass


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> FastAPI:
    """The API and review app for ``settings`` (or an existing ``runtime``)."""
    owned = runtime is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = runtime or Runtime(settings)
        try:
            yield
        finally:
            if owned:
                app.state.runtime.close()

    app = FastAPI(
        title="Sluice",
        version=__version__,
        description=(
            "Governed AI automation: submit CloudEvents, follow items, decide review tasks, "
            "verify the audit log. Authenticate with `Authorization: Bearer <token>` "
            "(`sluice tokens create`). Errors are RFC 9457 problem details."
        ),
        lifespan=lifespan,
    )
    if runtime is not None:
        app.state.runtime = runtime
    install_problem_handlers(app)
    for router in (meta.router, events.router, items.router, review.router, metrics.router):
        app.include_router(router)
    _mount_web(app)
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes)
    _document_problems(app)
    return app


def _document_problems(app: FastAPI) -> None:
    """Declare every error response as problem details in the OpenAPI document.

    FastAPI documents request validation errors as its own JSON shape; Sluice answers
    them (and every other error) with RFC 9457 problem details, so say so, and add the
    413 every request can get from the body limit.
    """
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            for operations in spec.get("paths", {}).values():
                for operation in operations.values():
                    responses = operation.setdefault("responses", {})
                    if (
                        "422" in responses
                        or operation.get("parameters")
                        or "requestBody" in operation
                    ):
                        responses["422"] = Problem
                    if "requestBody" in operation:
                        responses["400"] = Problem  # a body that is not JSON at all
                        responses["413"] = Problem
                    responses.setdefault("500", Problem)
            spec.get("components", {}).get("schemas", {}).pop("HTTPValidationError", None)
            spec.get("components", {}).get("schemas", {}).pop("ValidationError", None)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _mount_web(app: FastAPI) -> Any:
    from sluice.web import mount

    return mount(app)
