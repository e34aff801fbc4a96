"""Roles and tokens: the policy matrix, scopes, audited denials, token lifecycle."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from sluice.config import Settings
from sluice.errors import AuthenticationError, ConfigError, PermissionDeniedError
from sluice.governance import (
    PERMISSIONS,
    ROLES,
    Principal,
    allowed,
    authenticate,
    authorize,
    create_token,
    iter_entries,
    list_tokens,
    revoke_token,
    verify,
)
from sluice.governance.tables import api_tokens
from sluice.store import open_store, utcnow

# The expected matrix, written out here independently of the policy table in the code.
EXPECTED: dict[str, set[str]] = {
    "admin": set(PERMISSIONS),
    "operator": {
        "items:read", "items:submit", "items:retry", "lineage:read", "outbox:read",
        "rejects:read", "rejects:retry", "review:read", "models:read", "models:train",
        "knowledge:read", "knowledge:ingest", "prompts:read", "prompts:propose", "worker:run",
    },
    "reviewer": {"review:read", "review:decide"},
    "auditor": {
        "items:read", "lineage:read", "outbox:read", "rejects:read", "review:read",
        "models:read", "knowledge:read", "prompts:read", "audit:read",
    },
    "service": {"items:submit", "items:read", "worker:run"},
}  # fmt: skip


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("permission", PERMISSIONS)
def test_the_policy_matrix(role: str, permission: str) -> None:
    principal = Principal(actor="t", role=role)  # type: ignore[arg-type]
    assert allowed(principal, permission) is (permission in EXPECTED[role])  # type: ignore[arg-type]


def test_auditors_read_everything_and_change_nothing() -> None:
    auditor = Principal(actor="t", role="auditor")
    for permission in PERMISSIONS:
        assert allowed(auditor, permission) is permission.endswith(":read")


def test_scopes_limit_pipelines_and_review_queues() -> None:
    reviewer = Principal(actor="t", role="reviewer", queues=["billing"])
    assert allowed(reviewer, "review:decide", queue="billing")
    assert not allowed(reviewer, "review:decide", queue="fraud")
    service = Principal(actor="t", role="service", pipelines=["support-triage"])
    assert allowed(service, "items:submit", pipeline="support-triage")
    assert not allowed(service, "items:submit", pipeline="invoices")


@pytest.fixture
def store(settings: Settings):
    s = open_store(settings)
    yield s
    s.dispose()


def test_a_denial_is_refused_with_a_clear_error_and_audited(store) -> None:
    reviewer = Principal(actor="token:tok_x", role="reviewer")
    with pytest.raises(PermissionDeniedError, match="may not items:retry") as info:
        authorize(store, reviewer, "items:retry", pipeline="support-triage")
    assert info.value.status == 403 and info.value.permission == "items:retry"
    with store.read() as conn:
        (entry,) = list(iter_entries(conn))
    assert (entry.actor, entry.action, entry.target) == (
        "token:tok_x",
        "access.denied",
        "items:retry",
    )
    assert verify(store).ok


def test_a_token_is_shown_once_stored_as_a_hash_and_authenticates(store) -> None:
    token, record = create_token(store, name="crm", role="service", created_by="cli:ana")
    assert token.startswith("slc_") and len(token) > 40
    with store.read() as conn:
        hashes = [r.token_hash for r in conn.execute(api_tokens.select())]
    assert token not in hashes and len(hashes) == 1
    principal = authenticate(store, token)
    assert principal.role == "service" and principal.actor == f"token:{record.id}"
    assert [t.state for t in list_tokens(store)] == ["active"]
    with store.read() as conn:
        actions = [e.action for e in iter_entries(conn)]
    assert actions == ["token.created", "token.used"]


def test_revoked_expired_and_unknown_tokens_are_refused(store) -> None:
    token, record = create_token(store, name="a", role="reviewer", created_by="cli:ana")
    old, old_record = create_token(store, name="b", role="reviewer", created_by="cli:ana")
    revoke_token(store, record.id, revoked_by="cli:ana")
    with pytest.raises(AuthenticationError, match="revoked"):
        authenticate(store, token)
    with store.begin() as conn:
        conn.execute(
            update(api_tokens)
            .where(api_tokens.c.id == old_record.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    with pytest.raises(AuthenticationError, match="expired"):
        authenticate(store, old)
    with pytest.raises(AuthenticationError, match="unknown"):
        authenticate(store, "slc_" + "x" * 43)
    with pytest.raises(AuthenticationError, match="not a Sluice token"):
        authenticate(store, "Bearer nonsense")


def test_bad_token_requests_are_config_errors(store) -> None:
    with pytest.raises(ConfigError, match="unknown role"):
        create_token(store, name="x", role="root", created_by="cli:ana")
    with pytest.raises(ConfigError, match="positive"):
        create_token(store, name="x", role="admin", created_by="cli:ana", expires_days=-1)
