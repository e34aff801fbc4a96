"""API tokens: random, shown once, stored only as a hash, expiring, revocable.

A token is ``slc_`` followed by 43 random URL-safe characters (256 bits). Only its
sha256 is stored: a stolen copy of the database yields no usable token. (A fast hash is
right here: the secret is random, not a password that a slow hash would protect.)
Creating, revoking and using a token are audited; use is recorded at most once an hour
per token, so a busy client does not flood the log.

Example:
    >>> token, record = create_token(store, name="crm", role="service", created_by="cli:ana")
    ... # doctest: +SKIP
    >>> authenticate(store, token).role  # doctest: +SKIP
    'service'
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from sluice.errors import AuthenticationError, ConfigError, NotFoundError
from sluice.governance.audit import AuditEvent, append
from sluice.governance.rbac import ROLES, Principal, Role
from sluice.governance.tables import api_tokens
from sluice.store import Store, new_id, utcnow

__all__ = ["TokenRecord", "authenticate", "create_token", "list_tokens", "revoke_token"]

_PREFIX = "slc_"
_USE_AUDIT_EVERY = timedelta(hours=1)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenRecord:
    """A token as stored (never the token itself)."""

    id: str
    name: str
    role: Role
    pipelines: Sequence[str] | None
    queues: Sequence[str] | None
    pii_clearance: bool
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def state(self) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= utcnow():
            return "expired"
        return "active"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            out[key] = value.isoformat() if isinstance(value, datetime) else value
        out["state"] = self.state
        return out


def _record(row: Any) -> TokenRecord:
    return TokenRecord(
        id=row.id,
        name=row.name,
        role=row.role,
        pipelines=row.pipelines,
        queues=row.queues,
        pii_clearance=bool(row.pii_clearance),
        created_by=row.created_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def create_token(
    store: Store,
    *,
    name: str,
    role: str,
    created_by: str,
    expires_days: float | None = 90,
    pipelines: Sequence[str] | None = None,
    queues: Sequence[str] | None = None,
    pii_clearance: bool = False,
) -> tuple[str, TokenRecord]:
    """Make a token; returns the token (show it once, it is not kept) and its record.

    Raises:
        ConfigError: Unknown role, or a non-positive expiry.
    """
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r}", hint=f"one of: {', '.join(ROLES)}")
    if expires_days is not None and expires_days <= 0:
        raise ConfigError("a token's expiry must be a positive number of days")
    if not name.strip() or len(name) > 100:
        # The name is who a reviewer is in decisions and the audit log.
        raise ConfigError("a token's name must be 1 to 100 characters")
    token = _PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    row = {
        "id": new_id("tok"),
        "name": name,
        "role": role,
        "pipelines": list(pipelines) if pipelines else None,
        "queues": list(queues) if queues else None,
        "pii_clearance": pii_clearance,
        "token_hash": _hash(token),
        "created_by": created_by,
        "created_at": now,
        "expires_at": now + timedelta(days=expires_days) if expires_days else None,
        "revoked_at": None,
        "last_used_at": None,
    }
    with store.begin() as conn:
        conn.execute(api_tokens.insert().values(**row))
        details = {k: row[k] for k in ("name", "role", "pipelines", "queues", "pii_clearance")}
        expires = row["expires_at"]
        details["expires_at"] = expires.isoformat() if isinstance(expires, datetime) else None
        append(conn, [AuditEvent(created_by, "token.created", str(row["id"]), details)])
    record = TokenRecord(
        **{k: v for k, v in row.items() if k not in ("token_hash",)}  # type: ignore[arg-type]
    )
    return token, record


def list_tokens(store: Store) -> list[TokenRecord]:
    """Every token, newest first."""
    with store.read() as conn:
        rows = conn.execute(select(api_tokens).order_by(api_tokens.c.created_at.desc())).all()
    return [_record(r) for r in rows]


def revoke_token(store: Store, token_id: str, *, revoked_by: str) -> TokenRecord:
    """Revoke a token at once (its next use is refused).

    Raises:
        NotFoundError: No such token.
    """
    with store.begin() as conn:
        found = conn.execute(
            update(api_tokens)
            .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        ).rowcount
        row = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).one_or_none()
        if row is None:
            raise NotFoundError(f"no token {token_id!r}", hint="list them: `sluice tokens list`")
        if found:
            append(conn, [AuditEvent(revoked_by, "token.revoked", token_id)])
    return _record(row)


def authenticate(store: Store, token: str) -> Principal:
    """The principal a token stands for.

    Raises:
        AuthenticationError: The token is malformed, unknown, expired or revoked.
    """
    if not token.startswith(_PREFIX):
        raise AuthenticationError("not a Sluice token", hint="tokens start with 'slc_'")
    wanted = _hash(token)
    with store.read() as conn:
        row = conn.execute(
            select(api_tokens).where(api_tokens.c.token_hash == wanted)
        ).one_or_none()
    # The lookup is by hash, so timing reveals nothing of the token; compare anyway.
    if row is None or not hmac.compare_digest(row.token_hash, wanted):
        raise AuthenticationError("unknown token")
    record = _record(row)
    if record.state != "active":
        raise AuthenticationError(
            f"token {record.id} is {record.state}", hint="ask an admin for a new token"
        )
    now = utcnow()
    if record.last_used_at is None or now - record.last_used_at > _USE_AUDIT_EVERY:
        with store.begin() as conn:
            conn.execute(
                update(api_tokens).where(api_tokens.c.id == record.id).values(last_used_at=now)
            )
            append(conn, [AuditEvent(f"token:{record.id}", "token.used", record.id)])
    return Principal(
        actor=f"token:{record.id}",
        role=record.role,
        pipelines=record.pipelines,
        queues=record.queues,
        pii_clearance=record.pii_clearance,
        name=record.name,
    )
