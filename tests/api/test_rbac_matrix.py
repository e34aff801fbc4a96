"""Every API route, called with every role: allowed or denied exactly as this table says.

The table is written here, independently of the policy in the code; a route missing
from it fails the test, so a new route cannot ship without its permission.
"""

from __future__ import annotations

from typing import Any

import pytest

from sluice.api import create_app
from sluice.governance import ROLES

# (method, path) -> the roles that may call it.
ALL = set(ROLES)
READERS = {"admin", "operator", "auditor"}
ROUTES: dict[tuple[str, str], set[str]] = {
    ("GET", "/healthz"): ALL,  # and no token at all
    ("GET", "/v1/whoami"): ALL,
    ("POST", "/v1/events"): {"admin", "operator", "service"},
    ("GET", "/v1/items"): READERS | {"service"},
    ("GET", "/v1/items/{item_id}"): READERS | {"service"},
    ("GET", "/v1/items/{item_id}/lineage"): READERS,
    ("POST", "/v1/items/{item_id}/retry"): {"admin", "operator"},
    ("GET", "/v1/outbox"): READERS,
    ("GET", "/v1/review/tasks"): READERS | {"reviewer"},
    ("GET", "/v1/review/tasks/{task_id}"): READERS | {"reviewer"},
    ("POST", "/v1/review/tasks/{task_id}/claim"): {"admin", "reviewer"},
    ("POST", "/v1/review/tasks/{task_id}/release"): {"admin", "reviewer"},
    ("POST", "/v1/review/tasks/{task_id}/escalate"): {"admin", "reviewer"},
    ("POST", "/v1/review/tasks/{task_id}/decision"): {"admin", "reviewer"},
    ("GET", "/v1/models"): READERS,
    ("GET", "/v1/audit/verify"): {"admin", "auditor"},
    ("POST", "/v1/audit/checkpoint"): {"admin"},
    ("GET", "/v1/metrics/summary"): READERS | {"service"},
    ("GET", "/v1/metrics/audits"): {"admin", "auditor"},
}

BODIES: dict[str, Any] = {
    "/v1/events": [
        {"specversion": "1.0", "id": "m1", "source": "t", "type": "t", "data": {"text": "hi"}}
    ],
    "/v1/review/tasks/{task_id}/decision": {"outcome": "approve"},
}


def _api_routes() -> set[tuple[str, str]]:
    """Every operation of the app's OpenAPI document (what clients can call)."""
    from sluice.config import Settings

    spec = create_app(Settings(home="/nonexistent-not-started")).openapi()
    return {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
        if path.startswith(("/v1", "/healthz"))
    }


def test_the_table_covers_every_api_route() -> None:
    assert _api_routes() == set(ROUTES)


@pytest.mark.parametrize("role", ROLES)
def test_every_route_with_every_role(role: str, client: Any, token_for: Any) -> None:
    http = client(token_for(role))
    for (method, path), roles in sorted(ROUTES.items()):
        url = path.replace("{item_id}", "itm_missing").replace("{task_id}", "tsk_missing")
        wants_pipeline = path in ("/v1/events", "/v1/metrics/audits")
        params = {"pipeline": "support-triage"} if wants_pipeline else None
        response = http.request(method, url, params=params, json=BODIES.get(path))
        if role in roles:
            assert response.status_code not in (401, 403), (method, path, response.text)
        else:
            assert response.status_code == 403, (method, path, response.status_code)
            problem = response.json()
            assert problem["code"] == "permission_denied" and problem["status"] == 403
            assert response.headers["content-type"].startswith("application/problem+json")


def test_without_a_token_every_route_but_health_is_401(client: Any) -> None:
    http = client()
    assert http.get("/healthz").json() == {"status": "ok"}
    for method, path in ROUTES:
        if path == "/healthz":
            continue
        response = http.request(method, path.replace("{item_id}", "x").replace("{task_id}", "x"))
        assert response.status_code == 401, (method, path)
        assert response.headers.get("www-authenticate") == "Bearer"


def test_revoked_and_expired_tokens_are_refused(client: Any, runtime: Any) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from sluice.governance import create_token, revoke_token
    from sluice.governance.tables import api_tokens
    from sluice.store import utcnow

    revoked, record = create_token(runtime.store, name="r", role="admin", created_by="t")
    revoke_token(runtime.store, record.id, revoked_by="t")
    expired, old = create_token(runtime.store, name="e", role="admin", created_by="t")
    with runtime.store.begin() as conn:
        conn.execute(
            update(api_tokens)
            .where(api_tokens.c.id == old.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    for token, why in ((revoked, "revoked"), (expired, "expired"), ("slc_forged", "unknown")):
        response = client(token).get("/v1/whoami")
        assert response.status_code == 401 and why in response.json()["title"]


def test_denials_are_audited(client: Any, token_for: Any, runtime: Any) -> None:
    from sluice.governance import iter_entries

    client(token_for("reviewer")).get("/v1/items")
    with runtime.store.read() as conn:
        denied = [e for e in iter_entries(conn) if e.action == "access.denied"]
    assert len(denied) == 1 and denied[0].target == "items:read"
