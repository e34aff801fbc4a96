"""The PII vault: pseudonym mappings sealed with Fernet, revealed to cleared principals.

:meth:`PiiVault.seal` encrypts a mapping (tag -> original value) with the first vault
key and stores it under a new reference (``pii_...``). :meth:`PiiVault.reveal` returns
it to a principal whose role holds ``pii:reveal`` *and* who has PII clearance; any
other principal gets :class:`~sluice.errors.PermissionDeniedError`, and the refusal is
audited (as :func:`~sluice.governance.rbac.authorize` audits every refusal). A reveal
that succeeds is audited too (``pii.revealed``).

Keys (``SLUICE_PII_VAULT_KEY``): one or more Fernet keys, comma-separated; the first
seals, any of them opens (rotate by putting a new key first). Without one, a SQLite
store gets a local key made on first use at ``<home>/keys/pii-vault.key`` (mode 0600),
as the audit signing key is; on PostgreSQL, where several hosts must share the key,
nothing is made up and :class:`~sluice.errors.PiiError` says how to set one.

Example:
    >>> vault = open_vault(settings, store)  # doctest: +SKIP
    >>> ref = vault.seal({"<EMAIL_1>": "jo@example.com"}, actor="worker:w1")  # doctest: +SKIP
    >>> vault.reveal(ref, local_admin("ana"))  # doctest: +SKIP
    {'<EMAIL_1>': 'jo@example.com'}
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import select

from sluice.config import Settings
from sluice.errors import NotFoundError, PermissionDeniedError, PiiError
from sluice.governance.audit import AuditEvent, append
from sluice.governance.pii.tables import pii_vault
from sluice.governance.rbac import Principal, authorize
from sluice.store import Store, new_id, utcnow

__all__ = ["PiiVault", "generate_key", "open_vault", "vault_keys"]

_HINT = (
    "set SLUICE_PII_VAULT_KEY to a Fernet key, the same on every host, e.g. the output of "
    "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)


def generate_key() -> str:
    """A new random vault key (url-safe base64 of 32 bytes), as the setting takes it."""
    return Fernet.generate_key().decode()


def _key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def _local_key(path: Path) -> bytes:
    """The key file at ``path``, made (mode 0600) if missing."""
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Fernet.generate_key()
    # O_EXCL: two processes starting at once must not overwrite each other's key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as fh:
        fh.write(key + b"\n")
    return key


def vault_keys(settings: Settings) -> list[bytes]:
    """The vault keys, the sealing one first (module docs for where they come from).

    Raises:
        PiiError: No key on PostgreSQL, or a key that is not a Fernet key.
    """
    raw = settings.pii_vault_key
    if raw:
        keys = [k.strip().encode() for k in raw.split(",") if k.strip()]
    elif settings.is_postgres:
        raise PiiError("no PII vault key is configured for this PostgreSQL store", hint=_HINT)
    else:
        keys = [_local_key(settings.home / "keys" / "pii-vault.key")]
    for number, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise PiiError(
                f"PII vault key number {number} is not a Fernet key (32 bytes, url-safe base64)",
                hint=_HINT,
            ) from None
    return keys


class PiiVault:
    """Seals and reveals pseudonym mappings in the ``pii_vault`` table.

    Args:
        store: The store holding the table.
        keys: Fernet keys, the sealing one first.

    Example:
        >>> vault = PiiVault(store, [Fernet.generate_key()])  # doctest: +SKIP
    """

    def __init__(self, store: Store, keys: list[bytes]) -> None:
        if not keys:
            raise PiiError("the PII vault needs at least one key", hint=_HINT)
        self._store = store
        self._fernet = MultiFernet([Fernet(k) for k in keys])
        self._key_ids = [_key_id(k) for k in keys]

    def seal(self, mapping: Mapping[str, str], *, actor: str) -> str:
        """Encrypt and store ``mapping``; returns its reference."""
        ref = new_id("pii")
        token = self._fernet.encrypt(json.dumps(dict(mapping), ensure_ascii=False).encode())
        with self._store.begin() as conn:
            conn.execute(
                pii_vault.insert().values(
                    ref=ref,
                    key_id=self._key_ids[0],
                    sealed=token,
                    entries=len(mapping),
                    created_at=utcnow(),
                    created_by=actor,
                )
            )
        return ref

    def reveal(self, ref: str, principal: Principal) -> dict[str, str]:
        """The mapping sealed under ``ref``, for a principal allowed to see it.

        Raises:
            PermissionDeniedError: The role lacks ``pii:reveal`` or the principal has
                no PII clearance (audited).
            NotFoundError: No mapping with that reference.
            PiiError: None of the configured keys opens it.
        """
        authorize(self._store, principal, "pii:reveal")
        if not principal.pii_clearance:
            with self._store.begin() as conn:
                append(
                    conn,
                    [
                        AuditEvent(
                            principal.actor,
                            "access.denied",
                            "pii:reveal",
                            {"role": principal.role, "reason": "no pii clearance", "ref": ref},
                        )
                    ],
                )
            raise PermissionDeniedError(
                f"{principal.actor} ({principal.role}) has no PII clearance to reveal {ref}",
                role=principal.role,
                permission="pii:reveal",
                hint="ask an admin for a token with PII clearance",
            )
        with self._store.read() as conn:
            row = conn.execute(
                select(pii_vault.c.sealed, pii_vault.c.key_id).where(pii_vault.c.ref == ref)
            ).one_or_none()
        if row is None:
            raise NotFoundError(f"no sealed PII mapping {ref}")
        try:
            plain = self._fernet.decrypt(bytes(row.sealed))
        except InvalidToken:
            raise PiiError(
                f"PII mapping {ref} was sealed with key {row.key_id}, which is not configured",
                hint="add that key to SLUICE_PII_VAULT_KEY (after the current one)",
            ) from None
        with self._store.begin() as conn:
            append(
                conn, [AuditEvent(principal.actor, "pii.revealed", ref, {"role": principal.role})]
            )
        loaded = json.loads(plain)
        return {str(k): str(v) for k, v in loaded.items()}


def open_vault(settings: Settings, store: Store) -> PiiVault:
    """The vault of ``store`` with the keys of ``settings`` (see :func:`vault_keys`)."""
    return PiiVault(store, vault_keys(settings))
