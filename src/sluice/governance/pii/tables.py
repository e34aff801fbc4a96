"""The table the PII vault owns: sealed pseudonym mappings.

One row per sealed mapping: ``sealed`` is a Fernet token (AES-128-CBC and
HMAC-SHA256) of the mapping's JSON; nothing in the row is personal data in clear.
``key_id`` names the key that sealed it (the first 16 hex digits of the sha256 of the
key), so a reveal with the wrong key says which key is missing.
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, LargeBinary, String, Table

from sluice.store import UTCDateTime, metadata

__all__ = ["pii_vault"]

pii_vault = Table(
    "pii_vault",
    metadata,
    Column("ref", String(40), primary_key=True),
    Column("key_id", String(16), nullable=False),
    Column("sealed", LargeBinary, nullable=False),
    Column("entries", Integer, nullable=False),  # how many tags: a size, not the data
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", String(200), nullable=False),
)
