r"""The audit log: append-only, hash-chained, sealed by signed checkpoints.

Every entry has a position ``seq`` (1, 2, 3 ... without gaps) and stores the hash of the
entry before it (``prev_hash``; 64 zeros for the first) and its own ``hash``::

    hash = sha256(len:prev_hash len:seq len:at len:actor len:action len:target len:details)

(each field written as its length in characters, a colon, and its text; ``details`` is
the canonical JSON of the details.)

So changing any field of an entry breaks its own hash, and removing, inserting or
moving an entry breaks the link of the entry after it. The database refuses UPDATE and
DELETE on ``audit_log`` (triggers, on SQLite and PostgreSQL); the chain is what shows
tampering by someone who gets around them. Someone who rewrites the whole chain from
some entry on can make it consistent again; a *checkpoint* (:mod:`.checkpoints`) defeats
that: it is an entry whose details carry an Ed25519 signature over the hash of the entry
before it, and only the holder of the private key can sign. Entries after the last
checkpoint are not sealed yet; :func:`verify` says how many.

Appending: :func:`append` runs inside the caller's write transaction, so an audited state
change and its entry commit together or not at all. Appends are serialized: on
PostgreSQL by a transaction-scoped advisory lock, on SQLite by the write lock every
write transaction already holds. **Append last** in a transaction: the lock is held
until commit, and taking row locks after it could deadlock with another appender.

Example:
    >>> with store.begin() as conn:  # doctest: +SKIP
    ...     conn.execute(...)  # the state change
    ...     append(conn, [AuditEvent("cli:ana", "item.retried", item_id)])
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, text

from sluice.governance.tables import audit_log
from sluice.store import utcnow

__all__ = [
    "CHECKPOINT_ACTION",
    "GENESIS_HASH",
    "AuditEntry",
    "AuditEvent",
    "append",
    "canonical_json",
    "digest",
    "entries_for",
    "entry_hash",
    "iter_entries",
]

#: ``prev_hash`` of the first entry.
GENESIS_HASH = "0" * 64
#: The action of a checkpoint entry (see :mod:`sluice.governance.checkpoints`).
CHECKPOINT_ACTION = "audit.checkpoint"
# Arbitrary constant naming the audit chain's lock among PostgreSQL advisory locks.
_CHAIN_LOCK_KEY = 0x51_1C_EA_0D


def canonical_json(value: Any) -> str:
    """JSON with sorted keys, no spaces, no NaN: equal values give equal text.

    >>> canonical_json({"b": 1, "a": [1.5, "é"]})
    '{"a":[1.5,"é"],"b":1}'
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def digest(value: Any) -> str:
    """sha256 (hex) of the canonical JSON of ``value``: how entries refer to records."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


@dataclass(frozen=True)
class AuditEvent:
    """Something to audit.

    Args:
        actor: Who did it: ``worker:<executor id>``, ``cli:<user>``, ``token:<id>`` ...
        action: What happened, dotted: ``item.created``, ``step.completed``,
            ``review.decided``, ``model.promoted`` ...
        target: The id it happened to (item, batch, task, model name ...).
        details: JSON-safe facts, including digests of the records it refers to.
    """

    actor: str
    action: str
    target: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditEntry:
    """One stored entry of the chain."""

    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    details: str  # canonical JSON text, exactly as hashed
    prev_hash: str
    hash: str

    def details_dict(self) -> dict[str, Any]:
        """The details, parsed."""
        parsed = json.loads(self.details)
        return parsed if isinstance(parsed, dict) else {"value": parsed}

    def to_json(self) -> dict[str, Any]:
        """The entry as one JSON object (the export format; details parsed)."""
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "details": self.details_dict(),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> AuditEntry:
        """Rebuild an entry from :meth:`to_json` output (an export line)."""
        return cls(
            seq=int(obj["seq"]),
            at=datetime.fromisoformat(obj["at"]),
            actor=obj["actor"],
            action=obj["action"],
            target=obj["target"],
            details=canonical_json(obj["details"]),
            prev_hash=obj["prev_hash"],
            hash=obj["hash"],
        )


def entry_hash(
    seq: int, at: datetime, actor: str, action: str, target: str, details: str, prev_hash: str
) -> str:
    """The hash an entry with these fields must have (module docs).

    Fields are length-prefixed (``<length>:<text>``), so no choice of text can make two
    different entries encode the same: unambiguous without escaping, and cheap.
    """
    fields = (prev_hash, str(seq), at.isoformat(), actor, action, target, details)
    body = "".join(f"{len(value)}:{value}" for value in fields)
    return hashlib.sha256(body.encode()).hexdigest()


def lock_chain(conn: Connection) -> None:
    """Serialize appends until ``conn``'s transaction ends (module docs)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHAIN_LOCK_KEY})
    # SQLite: the store's write transactions are BEGIN IMMEDIATE, one writer at a time.


def head(conn: Connection) -> tuple[int, str]:
    """``(seq, hash)`` of the last entry, or ``(0, GENESIS_HASH)`` for an empty log."""
    row = conn.execute(
        select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
    ).one_or_none()
    return (int(row.seq), str(row.hash)) if row else (0, GENESIS_HASH)


def append(conn: Connection, events: Sequence[AuditEvent]) -> list[AuditEntry]:
    """Append ``events`` to the chain inside ``conn``'s write transaction (append last).

    Returns the entries written, in order.
    """
    if not events:
        return []
    lock_chain(conn)
    seq, prev = head(conn)
    at = utcnow()
    entries = []
    for event in events:
        seq += 1
        details = canonical_json(dict(event.details))
        entry_hash_ = entry_hash(seq, at, event.actor, event.action, event.target, details, prev)
        entries.append(
            AuditEntry(seq, at, event.actor, event.action, event.target, details, prev, entry_hash_)
        )
        prev = entry_hash_
    conn.execute(audit_log.insert(), [e.__dict__ for e in entries])
    return entries


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        seq=int(row.seq),
        at=row.at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        details=row.details,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def iter_entries(
    conn: Connection, *, since: datetime | None = None, after_seq: int = 0, chunk: int = 5000
) -> Iterator[AuditEntry]:
    """Every entry in chain order, read in chunks by key (constant memory)."""
    last = after_seq
    while True:
        query = select(audit_log).where(audit_log.c.seq > last)
        if since is not None:
            query = query.where(audit_log.c.at >= since)
        rows = conn.execute(query.order_by(audit_log.c.seq).limit(chunk)).all()
        if not rows:
            return
        for row in rows:
            yield _entry(row)
        last = int(rows[-1].seq)


def entries_for(conn: Connection, targets: Iterable[str]) -> list[AuditEntry]:
    """The entries about any of ``targets``, in chain order (indexed by target)."""
    wanted = sorted(set(targets))
    if not wanted:
        return []
    rows = conn.execute(
        select(audit_log).where(audit_log.c.target.in_(wanted)).order_by(audit_log.c.seq)
    ).all()
    return [_entry(r) for r in rows]
