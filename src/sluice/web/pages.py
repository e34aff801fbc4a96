"""The review app's pages: sign in, the queue, the review screen, lineage, dashboard.

Server-rendered (Jinja2, autoescaped) with one small script for keyboard shortcuts and
active-time measurement; no front-end build. The session is the reviewer's API token in
an HttpOnly, SameSite=Strict cookie; every page checks the same permissions as the API
(:func:`sluice.governance.authorize`), and form posts from another origin are refused.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from sluice.api.auth import SESSION_COOKIE, get_runtime
from sluice.api.routes.review import task_in_scope, visible_tasks
from sluice.errors import (
    AuthenticationError,
    DecisionConflictError,
    NotFoundError,
    SluiceError,
    TaskStateError,
)
from sluice.execution import PRIORITIES, escalation_queue, get_item, item_lineage, work_summary
from sluice.governance import Principal, allowed, authenticate, authorize
from sluice.governance.pii_masking import mask_text
from sluice.review import (
    audit_precision,
    backlog,
    claim,
    decide,
    escalate_task,
    reviewer_costs,
)
from sluice.runtime import Runtime
from sluice.store import utcnow

__all__ = ["router"]

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
router = APIRouter(include_in_schema=False)
_PRIORITY_NAMES = {v: k for k, v in PRIORITIES.items()}


class _SignInRequiredError(Exception):
    """Raised by :func:`_principal` when the visitor must sign in first."""

    def __init__(self, target: str) -> None:
        self.target = target


def _principal(request: Request, rt: Runtime) -> Principal:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise _SignInRequiredError(request.url.path)
    try:
        return authenticate(rt.store, token)
    except AuthenticationError:
        raise _SignInRequiredError(request.url.path) from None


class _CrossSiteError(Exception):
    """A form post that did not come from this app's own pages."""


def _same_origin(request: Request) -> None:
    """Refuse a form post from another origin (CSRF); the cookie is SameSite=Strict too.

    Browsers send ``Origin`` on every form post and ``Sec-Fetch-Site`` where they know
    it; either one naming another site is refused.
    """
    origin = request.headers.get("origin")
    if origin and urlparse(origin).netloc != request.url.netloc:
        raise _CrossSiteError
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise _CrossSiteError


def _age(moment: datetime) -> str:
    seconds = int((utcnow() - moment).total_seconds())
    if seconds < 3600:
        return f"{max(seconds, 0) // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def _page(
    request: Request, name: str, principal: Principal | None, status: int = 200, **context: Any
) -> Response:
    context.update(
        principal=principal,
        can_dashboard=principal is not None and allowed(principal, "outbox:read"),
        flash=request.query_params.get("flash"),
    )
    context.setdefault("error", None)
    return TEMPLATES.TemplateResponse(request, name, context, status_code=status)


def sign_in_redirect(target: str) -> RedirectResponse:
    """Where a visitor without a valid session is sent."""
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


@router.get("/", response_class=HTMLResponse)
def home() -> Response:
    """The review queue is the start page."""
    return RedirectResponse("/review", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/review") -> Response:
    """The sign-in form."""
    return _page(request, "login.html", None, next=next if next.startswith("/") else "/review")


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    token: str = Form(...),
    next: str = Form("/review"),
    rt: Runtime = Depends(get_runtime),
) -> Response:
    """Check the token and keep it in the session cookie."""
    _same_origin(request)
    try:
        authenticate(rt.store, token.strip())
    except AuthenticationError as exc:
        return _page(request, "login.html", None, status=401, error=exc.message, next=next)
    target = next if next.startswith("/") and not next.startswith("//") else "/review"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token.strip(),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=12 * 3600,
    )
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    """Forget the session."""
    _same_origin(request)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/review", response_class=HTMLResponse)
def queue(request: Request, rt: Runtime = Depends(get_runtime)) -> Response:
    """The tasks this reviewer may decide, most urgent first."""
    principal = _principal(request, rt)
    authorize(rt.store, principal, "review:read")
    tasks = visible_tasks(rt, principal, state="open", queue=None, limit=200)
    return _page(
        request,
        "queue.html",
        principal,
        section="queue",
        tasks=tasks,
        ages={t.id: _age(t.created_at) for t in tasks},
        priority_names=_PRIORITY_NAMES,
    )


@router.get("/review/next")
def next_task(
    request: Request, after: str | None = None, rt: Runtime = Depends(get_runtime)
) -> Response:
    """The most urgent task not claimed by someone else (the queue when none is left)."""
    principal = _principal(request, rt)
    authorize(rt.store, principal, "review:read")
    now = utcnow()
    for task in visible_tasks(rt, principal, state="open", queue=None, limit=200):
        held = (
            task.claimed_by not in (None, principal.display_name)
            and task.lease_until
            and task.lease_until > now
        )
        if task.id != after and not held:
            flash = request.query_params.get("flash")
            suffix = f"?flash={quote(flash)}" if flash else ""
            return RedirectResponse(f"/review/{task.id}{suffix}", status_code=303)
    flash = request.query_params.get("flash") or "Nothing else waits for review."
    return RedirectResponse(f"/review?flash={quote(flash)}", status_code=303)


def _task_page(
    request: Request,
    rt: Runtime,
    principal: Principal,
    task_id: str,
    *,
    status: int = 200,
    error: str | None = None,
) -> Response:
    task = task_in_scope(rt, principal, task_id, "review:read")
    data = get_item(rt.store, task.item_id)["event"]["data"] or {}
    text = str(data.get("text", data))
    subject = data.get("subject")
    masked = not principal.pii_clearance
    if masked:
        text = mask_text(text)
        subject = mask_text(subject) if subject else subject
    proposal = dict(task.proposal)
    alternatives = [tuple(a) for a in proposal.get("alternatives", [])][:3]
    # A blind audit offers only the pipeline's label list, never the model's answer.
    labels = list(proposal.get("labels") or ([] if task.blind else [proposal.get("label")]))
    return _page(
        request,
        "task.html",
        principal,
        status=status,
        error=error,
        section="queue",
        task=task,
        message=text,
        subject=subject,
        masked=masked,
        proposal=proposal,
        alternatives=alternatives,
        labels=labels,
        passages=proposal.get("passages", []),
        can_decide=allowed(principal, "review:decide", queue=task.queue)
        and task.state != "decided",
        can_lineage=allowed(principal, "lineage:read"),
        mine=task.claimed_by == principal.display_name,
    )


@router.get("/review/{task_id}", response_class=HTMLResponse)
def task_page(request: Request, task_id: str, rt: Runtime = Depends(get_runtime)) -> Response:
    """The review screen: only what a decision needs."""
    return _task_page(request, rt, _principal(request, rt), task_id)


@router.post("/review/{task_id}/claim")
def claim_task(request: Request, task_id: str, rt: Runtime = Depends(get_runtime)) -> Response:
    """Claim the task for the reviewer (a lease others must respect)."""
    _same_origin(request)
    principal = _principal(request, rt)
    task_in_scope(rt, principal, task_id, "review:decide")
    try:
        claim(rt.store, task_id, reviewer=principal.display_name)
    except TaskStateError as exc:
        return _task_page(request, rt, principal, task_id, status=409, error=exc.message)
    return RedirectResponse(f"/review/{task_id}", status_code=303)


@router.post("/review/{task_id}/escalate")
def escalate_page(
    request: Request,
    task_id: str,
    reason: str | None = Form(None),
    rt: Runtime = Depends(get_runtime),
) -> Response:
    """Hand the task up to the escalation queue, then go to the next task."""
    _same_origin(request)
    principal = _principal(request, rt)
    task = task_in_scope(rt, principal, task_id, "review:decide")
    try:
        escalate_task(
            rt.store,
            task_id,
            reviewer=principal.display_name,
            queue=escalation_queue(task.pipeline),
            reason=(reason or "").strip() or None,
        )
    except TaskStateError as exc:
        return _task_page(request, rt, principal, task_id, status=409, error=exc.message)
    flash = quote(f"{task_id} escalated.")
    return RedirectResponse(f"/review/next?after={task_id}&flash={flash}", status_code=303)


@router.post("/review/{task_id}/decide")
def decide_task(
    request: Request,
    task_id: str,
    outcome: str = Form(...),
    label: str | None = Form(None),
    reason: str | None = Form(None),
    active_seconds: str | None = Form(None),
    rt: Runtime = Depends(get_runtime),
) -> Response:
    """Record the decision, then go to the next task."""
    _same_origin(request)
    principal = _principal(request, rt)
    task = task_in_scope(rt, principal, task_id, "review:decide")
    try:
        seconds = float(active_seconds) if active_seconds else None
    except ValueError:
        seconds = None
    chosen = label if outcome == "correct" else None
    if outcome == "correct" and label == task.proposal.get("label"):
        outcome = "approve"
    try:
        decide(
            rt.store,
            task_id,
            reviewer=principal.display_name,
            outcome=outcome,  # type: ignore[arg-type]
            label=chosen,
            reason=(reason or "").strip() or None,
            active_seconds=seconds,
        )
    except DecisionConflictError:
        return _task_page(
            request,
            rt,
            principal,
            task_id,
            status=409,
            error="This task was already decided by another reviewer; nothing was changed.",
        )
    except SluiceError as exc:
        return _task_page(request, rt, principal, task_id, status=exc.status, error=exc.message)
    flash = quote(f"Decision on {task_id} recorded.")
    return RedirectResponse(f"/review/next?after={task_id}&flash={flash}", status_code=303)


@router.get("/items/{item_id}", response_class=HTMLResponse)
def lineage_page(request: Request, item_id: str, rt: Runtime = Depends(get_runtime)) -> Response:
    """An item's lineage, every line with its audit entry."""
    principal = _principal(request, rt)
    item = get_item(rt.store, item_id)
    if principal.pipelines is not None and item["pipeline"] not in principal.pipelines:
        raise NotFoundError(f"no item {item_id!r}")
    authorize(rt.store, principal, "lineage:read", pipeline=item["pipeline"])
    return _page(request, "lineage.html", principal, lineage=item_lineage(rt.store, item_id))


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(request: Request, rt: Runtime = Depends(get_runtime)) -> Response:
    """Throughput, automation, backlog and what review costs."""
    principal = _principal(request, rt)
    authorize(rt.store, principal, "outbox:read")
    scope = list(principal.pipelines) if principal.pipelines is not None else None
    summary = work_summary(rt.store, pipelines=scope)
    summary["review_backlog"], oldest = backlog(rt.store, pipelines=scope)
    summary["oldest_age"] = _age(oldest) if oldest else None
    rate = rt.settings.reviewer_hourly_rate
    names = [p.name for p in rt.pipelines() if scope is None or p.name in scope]
    estimates = (
        [audit_precision(rt.store, name) for name in names]
        if allowed(principal, "audit:read")
        else []
    )
    return _page(
        request,
        "dashboard.html",
        principal,
        section="dashboard",
        summary=summary,
        costs=reviewer_costs(rt.store, hourly_rate=rate),
        rate=rate,
        model_cost=summary["model_cost"],
        audits=[e for e in estimates if e.overall.auto_handled],
    )
