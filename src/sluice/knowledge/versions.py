"""Index versions: how each was built, which one answers, and the history of switches.

An index version is the index's documents cut with one chunking configuration, analyzed
with one analyzer and embedded with one encoder. Its life::

    building --(every document indexed)--> ready --activate--> active --(another is
    activated)--> retired --(activate, or a rollback)--> active

Exactly one version per index is active: queries read ``kb_indexes.active_version``,
and a switch changes that one row, the two versions' statuses, the history and the
audit log in one transaction. A query therefore sees the old version or the new one,
never a mixture, and says which one answered.

Rollback walks the history like a stack: each activation pushes a version, each
rollback pops one, and the version below the top answers again.

Ingest keeps the ``active`` and ``ready`` versions up to date; a ``retired`` version is
left as it was and caught up (only the documents that changed since) when it is
activated again.

Example:
    >>> stack_after([("activate", 1), ("activate", 2), ("rollback", 1)])
    [1]
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, func, select, update

from sluice.errors import IndexVersionError, IndexVersionNotFoundError
from sluice.governance import AuditEvent, append
from sluice.knowledge.index_store import lock_index
from sluice.knowledge.keyword_index import KeywordIndex, KeywordStats
from sluice.knowledge.tables import kb_activations, kb_index_versions, kb_indexes
from sluice.store import utcnow

__all__ = [
    "Activation",
    "IndexVersion",
    "VersionStatus",
    "config_hash",
    "create_version",
    "get_version",
    "list_activations",
    "list_versions",
    "mark_ready",
    "retire",
    "rollback_target",
    "set_encoder",
    "stack_after",
    "switch",
    "version_state",
]

VersionStatus = Literal["building", "ready", "active", "retired"]


@dataclass(frozen=True)
class IndexVersion:
    """One version of an index (module docs).

    Attributes:
        id: Its row id (unique across indexes).
        index: The index's name.
        number: Its number within the index (1, 2, ...): what the CLI takes.
        status: ``building``, ``ready``, ``active`` or ``retired``.
        embed_task: The gateway route its vectors (and queries) are embedded through.
        encoder: ``model@version`` of the encoder that embedded them (None before the
            first embedding).
        dimensions: The vectors' dimensions (None before the first embedding).
        chunking: How chunks were cut: :meth:`~sluice.knowledge.Chunker.describe`.
        analyzer: The keyword analyzer's name.
        chunks: How many chunks it holds.
        terms: Their total length in analyzed terms.
        created_at: When it was created.
        created_by: Who created it.
        ready_at: When it first held every document.
        activated_at: When it last became active.
        activated_by: Who made it active last.
        note: Free text given at build time.
    """

    id: int
    index: str
    number: int
    status: VersionStatus
    embed_task: str
    encoder: str | None
    dimensions: int | None
    chunking: Mapping[str, Any]
    analyzer: str
    chunks: int
    terms: int
    created_at: datetime
    created_by: str
    ready_at: datetime | None = None
    activated_at: datetime | None = None
    activated_by: str | None = None
    note: str | None = None

    @property
    def ref(self) -> str:
        """``index@vN``: how results, citations, logs and the audit log name it."""
        return f"{self.index}@v{self.number}"

    @property
    def keyword_stats(self) -> KeywordStats:
        """BM25's corpus statistics of this version."""
        return KeywordStats(self.chunks, self.terms)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (``--json`` output, lineage)."""
        return {
            "ref": self.ref,
            "id": self.id,
            "index": self.index,
            "number": self.number,
            "status": self.status,
            "embed_task": self.embed_task,
            "encoder": self.encoder,
            "dimensions": self.dimensions,
            "chunking": dict(self.chunking),
            "analyzer": self.analyzer,
            "chunks": self.chunks,
            "terms": self.terms,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "ready_at": self.ready_at and self.ready_at.isoformat(),
            "activated_at": self.activated_at and self.activated_at.isoformat(),
            "activated_by": self.activated_by,
            "note": self.note,
        }


@dataclass(frozen=True)
class Activation:
    """One switch of the active version: an activation or a rollback."""

    id: int
    index: str
    action: Literal["activate", "rollback"]
    version: int
    previous: int | None
    actor: str
    reason: str | None
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "id": self.id,
            "index": self.index,
            "action": self.action,
            "version": self.version,
            "previous": self.previous,
            "actor": self.actor,
            "reason": self.reason,
            "at": self.at.isoformat(),
        }


def config_hash(chunking: Mapping[str, Any], analyzer: str, embed_task: str, encoder: str) -> str:
    """What makes two versions the same build: sha256 of their configuration."""
    body = json.dumps(
        {"chunking": dict(chunking), "analyzer": analyzer, "task": embed_task, "encoder": encoder},
        sort_keys=True,
    )
    return hashlib.sha256(body.encode()).hexdigest()


def _version(row: Any) -> IndexVersion:
    return IndexVersion(
        id=int(row.id),
        index=row.index_name,
        number=int(row.number),
        status=row.status,
        embed_task=row.embed_task,
        encoder=row.encoder,
        dimensions=row.dimensions,
        chunking=dict(row.chunking),
        analyzer=row.analyzer,
        chunks=int(row.chunks),
        terms=int(row.terms),
        created_at=row.created_at,
        created_by=row.created_by,
        ready_at=row.ready_at,
        activated_at=row.activated_at,
        activated_by=row.activated_by,
        note=row.note,
    )


def list_versions(conn: Connection, index: str) -> list[IndexVersion]:
    """The index's versions, oldest first."""
    rows = conn.execute(
        select(kb_index_versions)
        .where(kb_index_versions.c.index_name == index)
        .order_by(kb_index_versions.c.number)
    )
    return [_version(r) for r in rows]


def get_version(conn: Connection, index: str, number: int | None = None) -> IndexVersion | None:
    """Version ``number`` of the index, or its active version; None if there is none.

    Raises:
        IndexVersionNotFoundError: ``number`` names no version of the index.
    """
    if number is None:
        active = conn.execute(
            select(kb_indexes.c.active_version).where(kb_indexes.c.name == index)
        ).scalar()
        if active is None:
            return None
        query = select(kb_index_versions).where(kb_index_versions.c.id == active)
    else:
        query = select(kb_index_versions).where(
            kb_index_versions.c.index_name == index, kb_index_versions.c.number == number
        )
    row = conn.execute(query).first()
    if row is None:
        if number is None:
            return None
        raise IndexVersionNotFoundError(
            f"index {index!r} has no version {number}",
            hint="list them with `sluice kb versions`",
        )
    return _version(row)


def version_state(conn: Connection, version_id: int) -> tuple[IndexVersion, int]:
    """A version by row id, with its current ``generation`` (read in the caller's snapshot)."""
    row = conn.execute(select(kb_index_versions).where(kb_index_versions.c.id == version_id)).one()
    return _version(row), int(row.generation)


def create_version(
    conn: Connection,
    keyword: KeywordIndex,
    *,
    index: str,
    embed_task: str,
    encoder: str | None,
    chunking: Mapping[str, Any],
    analyzer: str,
    actor: str,
    note: str | None = None,
) -> IndexVersion:
    """A new ``building`` version with the next number, its keyword index created."""
    lock_index(conn, index, exclusive=True)
    number = (
        conn.execute(
            select(func.max(kb_index_versions.c.number)).where(
                kb_index_versions.c.index_name == index
            )
        ).scalar()
        or 0
    ) + 1
    vid = conn.execute(
        kb_index_versions.insert()
        .values(
            index_name=index,
            number=number,
            status="building",
            embed_task=embed_task,
            encoder=encoder,
            dimensions=None,
            chunking=dict(chunking),
            analyzer=analyzer,
            config_hash=config_hash(chunking, analyzer, embed_task, encoder or ""),
            chunks=0,
            terms=0,
            generation=0,
            created_at=utcnow(),
            created_by=actor,
            note=note,
        )
        .returning(kb_index_versions.c.id)
    ).scalar_one()
    keyword.create_version(conn, int(vid))
    version = get_version(conn, index, number)
    assert version is not None
    append(
        conn,
        [
            AuditEvent(
                actor,
                "knowledge.version_created",
                version.ref,
                {
                    "embed_task": embed_task,
                    "encoder": encoder,
                    "chunking": dict(chunking),
                    "analyzer": analyzer,
                    "note": note,
                },
            )
        ],
    )
    return version


def set_encoder(conn: Connection, version: int, encoder: str, dimensions: int) -> None:
    """Record the encoder of a version's first vectors."""
    conn.execute(
        update(kb_index_versions)
        .where(kb_index_versions.c.id == version, kb_index_versions.c.encoder.is_(None))
        .values(encoder=encoder, dimensions=dimensions)
    )
    conn.execute(
        update(kb_index_versions)
        .where(kb_index_versions.c.id == version, kb_index_versions.c.dimensions.is_(None))
        .values(dimensions=dimensions)
    )


def mark_ready(conn: Connection, version: int) -> None:
    """A building version now holds every document: ingest maintains it from now on."""
    conn.execute(
        update(kb_index_versions)
        .where(kb_index_versions.c.id == version, kb_index_versions.c.status == "building")
        .values(status="ready", ready_at=utcnow())
    )


def list_activations(conn: Connection, index: str) -> list[Activation]:
    """The index's activations and rollbacks, oldest first."""
    rows = conn.execute(
        select(kb_activations)
        .where(kb_activations.c.index_name == index)
        .order_by(kb_activations.c.id)
    )
    return [
        Activation(
            id=int(r.id),
            index=r.index_name,
            action=r.action,
            version=int(r.version),
            previous=r.previous,
            actor=r.actor,
            reason=r.reason,
            at=r.at,
        )
        for r in rows
    ]


def stack_after(history: Sequence[tuple[str, int]]) -> list[int]:
    """The versions a rollback would walk back through, newest last (module docs)."""
    stack: list[int] = []
    for action, version in history:
        if action == "activate":
            stack.append(version)
        elif stack:
            stack.pop()
    return stack


def rollback_target(conn: Connection, index: str) -> int:
    """The row id of the version a rollback restores.

    Raises:
        IndexVersionError: Nothing to roll back to.
    """
    stack = stack_after([(a.action, a.version) for a in list_activations(conn, index)])
    if len(stack) < 2:
        raise IndexVersionError(
            f"index {index!r} has no earlier active version to roll back to",
            hint="`sluice kb versions` lists the versions; activate one by number",
        )
    return stack[-2]


def switch(
    conn: Connection,
    *,
    index: str,
    version: IndexVersion,
    action: Literal["activate", "rollback"],
    actor: str,
    reason: str | None,
) -> int | None:
    """Make ``version`` the active one, atomically, with its history row and audit entry.

    The caller has caught the version up (no pending documents) and holds the index row
    exclusively (:func:`~sluice.knowledge.index_store.lock_index`).

    Returns:
        The row id of the version that was active before (now retired), if any.
    """
    now = utcnow()
    previous = conn.execute(
        select(kb_indexes.c.active_version).where(kb_indexes.c.name == index)
    ).scalar()
    if previous is not None and previous != version.id:
        conn.execute(
            update(kb_index_versions)
            .where(kb_index_versions.c.id == previous)
            .values(status="retired")
        )
    conn.execute(
        update(kb_index_versions)
        .where(kb_index_versions.c.id == version.id)
        .values(status="active", activated_at=now, activated_by=actor)
    )
    conn.execute(
        update(kb_indexes).where(kb_indexes.c.name == index).values(active_version=version.id)
    )
    conn.execute(
        kb_activations.insert().values(
            index_name=index,
            action=action,
            version=version.id,
            previous=previous,
            actor=actor,
            reason=reason,
            at=now,
        )
    )
    before = None
    if previous is not None:
        number = conn.execute(
            select(kb_index_versions.c.number).where(kb_index_versions.c.id == previous)
        ).scalar()
        before = f"{index}@v{number}"
    append(
        conn,
        [
            AuditEvent(
                actor,
                "knowledge.version_activated" if action == "activate" else "knowledge.rolled_back",
                version.ref,
                {
                    "previous": before,
                    "encoder": version.encoder,
                    "chunking": dict(version.chunking),
                    "reason": reason,
                },
            )
        ],
    )
    return int(previous) if previous is not None and previous != version.id else None


def retire(conn: Connection, version: IndexVersion, *, actor: str, reason: str | None) -> None:
    """Retire a building or ready version (ingest stops maintaining it).

    Raises:
        IndexVersionError: It is the active version, or already retired.
    """
    if version.status == "active":
        raise IndexVersionError(
            f"{version.ref} is the active version; it cannot be retired",
            hint="activate another version, or roll back, first",
        )
    if version.status == "retired":
        raise IndexVersionError(f"{version.ref} is already retired: nothing to change")
    conn.execute(
        update(kb_index_versions)
        .where(kb_index_versions.c.id == version.id)
        .values(status="retired")
    )
    append(
        conn,
        [AuditEvent(actor, "knowledge.version_retired", version.ref, {"reason": reason})],
    )
