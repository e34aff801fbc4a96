"""Checkpoints: Ed25519 signatures over the head of the audit chain.

A checkpoint is an audit entry (action ``audit.checkpoint``) whose details carry
``{"sealed_seq", "sealed_hash", "key_id", "signature"}``: the signature is over the
canonical JSON of ``{"seq": sealed_seq, "hash": sealed_hash}``, where ``sealed_*`` are
the entry right before the checkpoint. Whoever can rewrite the database can rebuild a
consistent chain, but cannot sign for it: a rewritten chain no longer matches the
checkpoints after the rewritten entries.

The signing key is a PEM file under ``SLUICE_HOME`` (``keys/audit-ed25519.pem``, mode
0600), made on first use; each host running workers has its own, named in checkpoints
by its key id (the first 16 hex digits of the sha256 of the raw public key). Give
auditors the public keys (``sluice audit public-key``); ``sluice audit verify`` checks
signatures with the local key and any ``--public-key`` files.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select

from sluice.errors import AuditError
from sluice.governance.audit import (
    CHECKPOINT_ACTION,
    AuditEntry,
    AuditEvent,
    append,
    canonical_json,
    head,
    lock_chain,
)
from sluice.governance.tables import audit_log
from sluice.store import Store

__all__ = [
    "checkpoint",
    "key_id",
    "load_public_key",
    "load_signing_key",
    "public_key_pem",
    "signature_valid",
]


def key_id(public: Ed25519PublicKey) -> str:
    """A short, stable name for a public key."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_signing_key(path: Path, *, create: bool = True) -> Ed25519PrivateKey:
    """The private key at ``path``, made (mode 0600) if missing and ``create`` is set.

    Raises:
        AuditError: The file is missing (and not to be created) or is not an Ed25519 key.
    """
    if not path.exists():
        if not create:
            raise AuditError(
                f"no audit signing key at {path}", hint="run `sluice audit checkpoint`"
            )
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # O_EXCL: two processes starting at once must not overwrite each other's key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return load_signing_key(path, create=False)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        return key
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as exc:
        raise AuditError(f"{path} is not a readable PEM private key: {exc}") from exc
    if not isinstance(loaded, Ed25519PrivateKey):
        raise AuditError(f"{path} holds a {type(loaded).__name__}, not an Ed25519 key")
    return loaded


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A public key from a PEM file (as ``sluice audit public-key`` writes it).

    Raises:
        AuditError: The file cannot be read as an Ed25519 public key.
    """
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise AuditError(f"cannot read a public key from {path}: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise AuditError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key")
    return key


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The PEM text of the public half of ``key``."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _signed_payload(seq: int, hash_: str) -> bytes:
    return canonical_json({"seq": seq, "hash": hash_}).encode()


def signature_valid(public: Ed25519PublicKey, seq: int, hash_: str, signature_hex: str) -> bool:
    """Whether ``signature_hex`` signs ``(seq, hash_)`` with ``public``."""
    try:
        public.verify(bytes.fromhex(signature_hex), _signed_payload(seq, hash_))
    except (InvalidSignature, ValueError):
        return False
    return True


def checkpoint(store: Store, key: Ed25519PrivateKey, *, actor: str) -> AuditEntry | None:
    """Sign the chain's head and append the checkpoint; None if nothing new to seal."""
    with store.begin() as conn:
        lock_chain(conn)
        seq, hash_ = head(conn)
        if seq == 0:
            return None
        last_action = conn.execute(
            select(audit_log.c.action).where(audit_log.c.seq == seq)
        ).scalar_one()
        if last_action == CHECKPOINT_ACTION:
            return None
        signature = key.sign(_signed_payload(seq, hash_)).hex()
        event = AuditEvent(
            actor,
            CHECKPOINT_ACTION,
            "audit",
            {
                "sealed_seq": seq,
                "sealed_hash": hash_,
                "key_id": key_id(key.public_key()),
                "signature": signature,
            },
        )
        (entry,) = append(conn, [event])
    return entry
