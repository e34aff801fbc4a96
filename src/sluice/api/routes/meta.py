"""Health, identity, models, the audit chain and a summary of the work."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import text

from sluice.api.auth import current_principal, get_runtime, require
from sluice.api.problems import Problem
from sluice.api.schemas import AuditEstimateOut, AuditReportOut, ModelOut, SummaryOut, WhoAmI
from sluice.execution import work_summary
from sluice.governance import (
    Principal,
    authorize,
    checkpoint,
    load_public_key,
    load_signing_key,
    verify,
)
from sluice.runtime import Runtime

router = APIRouter(responses={401: Problem, 403: Problem})


@router.get("/healthz", tags=["meta"], summary="Liveness and store reachability")
def healthz(rt: Runtime = Depends(get_runtime)) -> dict[str, str]:
    """``{"status": "ok"}`` when the store answers. No token needed."""
    with rt.store.read() as conn:
        conn.execute(text("SELECT 1"))
    return {"status": "ok"}


@router.get("/v1/whoami", tags=["meta"], response_model=WhoAmI, summary="The caller")
def whoami(principal: Principal = Depends(current_principal)) -> dict[str, Any]:
    """The role and scopes of the token used."""
    return {
        "actor": principal.actor,
        "role": principal.role,
        "pipelines": list(principal.pipelines) if principal.pipelines is not None else None,
        "queues": list(principal.queues) if principal.queues is not None else None,
        "pii_clearance": principal.pii_clearance,
    }


@router.get("/v1/models", tags=["models"], response_model=list[ModelOut], summary="Models")
def models(
    _principal: Principal = Depends(require("models:read")), rt: Runtime = Depends(get_runtime)
) -> list[dict[str, Any]]:
    """Every registered model version with its stage and card."""
    return [m.to_dict() for m in rt.models.list()]


@router.get(
    "/v1/audit/verify", tags=["audit"], response_model=AuditReportOut, summary="Verify the chain"
)
def audit_verify(
    _principal: Principal = Depends(require("audit:read")), rt: Runtime = Depends(get_runtime)
) -> dict[str, Any]:
    """Check every audit entry and checkpoint (with this server's public key)."""
    keys = []
    if rt.settings.audit_key.exists():
        keys.append(load_signing_key(rt.settings.audit_key, create=False).public_key())
    keys += [load_public_key(p) for p in rt.settings.audit_public_keys]
    return verify(rt.store, keys).to_dict()


@router.post(
    "/v1/audit/checkpoint", tags=["audit"], response_model=dict[str, Any], summary="Seal the chain"
)
def audit_checkpoint(
    principal: Principal = Depends(require("audit:checkpoint")), rt: Runtime = Depends(get_runtime)
) -> dict[str, Any]:
    """Sign the chain's head with this server's key now."""
    entry = checkpoint(rt.store, load_signing_key(rt.settings.audit_key), actor=principal.actor)
    return {"sealed": entry is not None, "seq": entry.seq if entry else None}


@router.get(
    "/v1/metrics/summary", tags=["metrics"], response_model=SummaryOut, summary="Work at a glance"
)
def summary(
    principal: Principal = Depends(require("items:read")), rt: Runtime = Depends(get_runtime)
) -> dict[str, Any]:
    """Items by status, automation rate, review backlog and its age (the caller's scope)."""
    from sluice.review import backlog
    from sluice.store import utcnow

    pipelines = list(principal.pipelines) if principal.pipelines is not None else None
    work = work_summary(rt.store, pipelines=pipelines)
    open_tasks, oldest = backlog(rt.store, pipelines=pipelines)
    return {
        "items_by_status": work["items_by_status"],
        "automation_rate": work["automation_rate"],
        "review_backlog": open_tasks,
        "oldest_open_task_age_seconds": (utcnow() - oldest).total_seconds() if oldest else None,
    }


@router.get(
    "/v1/metrics/audits",
    tags=["metrics"],
    response_model=AuditEstimateOut,
    responses={404: Problem},
    summary="Audited precision of automation",
)
def audits(
    pipeline: str = Query(max_length=100, description="The pipeline whose audits to read."),
    principal: Principal = Depends(require("audit:read")),
    rt: Runtime = Depends(get_runtime),
) -> dict[str, Any]:
    """Precision of auto-handled items per intent and overall, from the blind audits."""
    from sluice.review import audit_precision

    authorize(rt.store, principal, "audit:read", pipeline=pipeline)
    return audit_precision(rt.store, pipeline).to_dict()
