"""``GET /metrics``: the Prometheus exposition of what the store records.

Scrapers authenticate like every API client, with a bearer token (Prometheus:
``authorization: {credentials_file: ...}``), holding ``items:read`` on every pipeline:
the metrics cover all pipelines, so a token scoped to some is refused. A read-only
``auditor`` token is the natural choice (``sluice tokens create --role auditor``).

One collector per app, created at the first scrape: it keeps the cursors that let each
scrape read only the rows added since the previous one.
"""

from __future__ import annotations

import threading

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CollectorRegistry

from sluice.api.auth import get_runtime, require
from sluice.api.problems import Problem
from sluice.errors import PermissionDeniedError
from sluice.governance import Principal
from sluice.observability import metrics_registry, render_metrics
from sluice.runtime import Runtime

router = APIRouter(responses={401: Problem, 403: Problem})

_LOCK = threading.Lock()


def _registry(request: Request, rt: Runtime) -> CollectorRegistry:
    with _LOCK:
        registry: CollectorRegistry | None = getattr(request.app.state, "metrics_registry", None)
        if registry is None:
            registry = metrics_registry(rt.store)
            request.app.state.metrics_registry = registry
        return registry


@router.get(
    "/metrics",
    tags=["metrics"],
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics(
    request: Request,
    principal: Principal = Depends(require("items:read")),
    rt: Runtime = Depends(get_runtime),
) -> Response:
    """Every Sluice metric, in the Prometheus text format (docs/observability.md)."""
    if principal.pipelines is not None:
        raise PermissionDeniedError(
            f"{principal.actor} is scoped to some pipelines; metrics cover all of them",
            role=principal.role,
            permission="items:read",
            hint="scrape with a token that is not scoped to pipelines (e.g. role auditor)",
        )
    body, content_type = render_metrics(_registry(request, rt))
    return Response(content=body, media_type=content_type)
