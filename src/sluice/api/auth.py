"""Who is calling: bearer tokens, and the permission check every route declares.

A route declares what it needs with ``Depends(require("items:read"))``; the dependency
authenticates the token (``Authorization: Bearer slc_...``) and calls
:func:`sluice.governance.authorize`, which audits a refusal. The API never accepts the
review app's session cookie: a cookie is sent by the browser on its own, which would
let another page make requests in the reviewer's name (CSRF).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Depends, Request

from sluice.errors import AuthenticationError
from sluice.governance import Permission, Principal, authenticate, authorize
from sluice.runtime import Runtime

__all__ = ["SESSION_COOKIE", "current_principal", "get_runtime", "require", "shown_data"]

#: The review app keeps the reviewer's token in this cookie (HttpOnly, SameSite=Strict).
SESSION_COOKIE = "sluice_token"


def get_runtime(request: Request) -> Runtime:
    """The app's runtime (store, settings, pipelines)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def _token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    raise AuthenticationError(
        "no token", hint="send `Authorization: Bearer <token>` (create one: `sluice tokens create`)"
    )


def current_principal(request: Request, rt: Runtime = Depends(get_runtime)) -> Principal:
    """The authenticated caller (401 problem when the token is missing or not valid)."""
    principal = authenticate(rt.store, _token(request))
    request.state.principal = principal
    return principal


def require(permission: Permission) -> Callable[..., Principal]:
    """A dependency that authenticates the caller and checks ``permission``.

    Scope checks (a pipeline, a queue) happen in the route, where the object is known,
    with :func:`sluice.governance.authorize` as well.
    """

    def check(
        principal: Principal = Depends(current_principal), rt: Runtime = Depends(get_runtime)
    ) -> Principal:
        authorize(rt.store, principal, permission)
        return principal

    check.__name__ = f"require_{permission.replace(':', '_')}"
    return check


def shown_data(principal: Principal, data: Any) -> Any:
    """Event data as ``principal`` may see it: personal data masked without clearance."""
    if principal.pii_clearance:
        return data
    from sluice.governance.pii_masking import mask_value

    return mask_value(data)
