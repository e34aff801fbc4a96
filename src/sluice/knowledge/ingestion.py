"""Ingesting files into an index: read, plan against the store, index, prune, report.

What :meth:`KnowledgeBase.ingest <sluice.knowledge.KnowledgeBase.ingest>` does:

1. read the paths (:func:`~sluice.knowledge.read_sources`): bad files and records are
   reported one by one, the rest are read;
2. plan against the store's fingerprints (:func:`~sluice.knowledge.plan_changes`): new
   and changed documents are indexed, unchanged ones cost nothing;
3. index the new and changed documents into every version ingest maintains (the active
   one and those ``ready``), storing each document with its chunks in one transaction
   per group (:mod:`sluice.knowledge.indexing`);
4. prune: documents that were under the ingested folders (or were the ingested files)
   and are no longer there are deleted, with their chunks in every version. Only
   documents read under the same root count (each document records the root it was
   last read under, None for ``file://`` sources): ingesting folder B, or the root
   itself, never prunes documents ingested from elsewhere. A file that failed to read
   keeps its documents (a broken file is not a deleted one), and so does everything
   under a folder that could not be listed; ``prune=False`` deletes nothing;
5. one ``knowledge.ingested`` audit entry sums it up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from sluice.governance import AuditEvent, append
from sluice.knowledge.documents import Document
from sluice.knowledge.index_store import HeldDocument
from sluice.knowledge.indexing import GroupFailure
from sluice.knowledge.ingest import UNREADABLE_FOLDER, IngestBatch, IngestFailure

__all__ = ["IngestReport", "failures_of", "prunable", "root_label", "source_scope"]


@dataclass(frozen=True)
class IngestReport:
    """What an ingest did.

    Attributes:
        index: The index ingested into.
        new: Sources of the documents added (a JSONL/CSV source once per record).
        changed: Sources of the documents replaced.
        unchanged: How many documents were already stored as they are.
        removed: Doc ids of the documents deleted (no longer under the ingested paths).
        chunks: Chunks written, summed over the versions written.
        versions: The versions written (``index@vN``).
        failures: Files, records and documents that were not ingested, one by one.
        skipped: Files found in folders that no reader handles.
        created_version: The version created because the index had none.
    """

    index: str
    new: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    unchanged: int = 0
    removed: tuple[str, ...] = ()
    chunks: int = 0
    versions: tuple[str, ...] = ()
    failures: tuple[IngestFailure, ...] = ()
    skipped: tuple[Path, ...] = ()
    created_version: str | None = None

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (``sluice kb ingest --json``)."""
        return {
            "index": self.index,
            "new": len(self.new),
            "changed": len(self.changed),
            "unchanged": self.unchanged,
            "removed": len(self.removed),
            "chunks": self.chunks,
            "versions": list(self.versions),
            "created_version": self.created_version,
            "new_sources": sorted(set(self.new)),
            "changed_sources": sorted(set(self.changed)),
            "removed_doc_ids": list(self.removed),
            "failures": [f.to_dict() for f in self.failures],
            "skipped": [str(p) for p in self.skipped],
        }

    def audit_details(self) -> dict[str, Any]:
        """What the ``knowledge.ingested`` audit entry records."""
        return {
            "new": len(self.new),
            "changed": len(self.changed),
            "unchanged": self.unchanged,
            "removed": list(self.removed),
            "chunks": self.chunks,
            "versions": list(self.versions),
            "failures": len(self.failures),
        }


@dataclass(frozen=True)
class _Scope:
    exact: frozenset[str] = field(default_factory=frozenset)
    prefixes: tuple[str, ...] = ()

    def covers(self, source: str) -> bool:
        return source in self.exact or any(source.startswith(p) for p in self.prefixes)


def _uri(path: Path, root: Path | None) -> str | None:
    resolved = path.resolve()
    if root is None:
        return resolved.as_uri()
    try:
        relative = resolved.relative_to(root).as_posix()
    except ValueError:
        return None
    return "" if relative == "." else relative


def _prefix(uri: str) -> str:
    return uri if uri == "" or uri.endswith("/") else uri + "/"


def root_label(root: Path | None) -> str | None:
    """What documents record as the root they were read under (a resolved path)."""
    return None if root is None else str(root)


def source_scope(paths: Sequence[Path], root: Path | None) -> _Scope:
    """The sources an ingest of ``paths`` speaks for: its files, and all under its folders.

    Sources are compared as written, so a scope is only meaningful for documents read
    under the same ``root`` (:func:`prunable` checks that first).
    """
    exact: set[str] = set()
    prefixes: list[str] = []
    for path in paths:
        uri = _uri(path, root)
        if uri is None or not path.exists():
            continue
        if path.is_dir():
            prefixes.append(_prefix(uri))
        else:
            exact.add(uri)
    return _Scope(frozenset(exact), tuple(prefixes))


def _protected(batch: IngestBatch, root: Path | None) -> _Scope:
    """Sources whose documents stay: files that failed to read, folders not listed."""
    exact: set[str] = set()
    prefixes: list[str] = []
    for failure in batch.failures:
        uri = _uri(failure.path, root)
        if uri is None:
            continue
        if failure.code == UNREADABLE_FOLDER:
            prefixes.append(_prefix(uri))
        else:
            exact.add(uri)
    return _Scope(frozenset(exact), tuple(prefixes))


def prunable(
    held: Sequence[HeldDocument],
    batch: IngestBatch,
    paths: Sequence[Path],
    root: Path | None,
) -> set[str]:
    """Doc ids of the stored documents an ingest of ``paths`` may delete if it lacks them.

    A document qualifies when it was read under the same root as this ingest (so a
    relative scope never reaches ``file://`` sources or another root's documents), its
    source is one of the ingested files or under one of the ingested folders, and it is
    not a file that failed to read nor under a folder that could not be listed.

    Args:
        held: Every stored document of the index.
        batch: What was read.
        paths: The paths ingested.
        root: The ingest root (resolved), if any.
    """
    label = root_label(root)
    scope = source_scope(paths, root)
    protected = _protected(batch, root)
    return {
        h.doc_id
        for h in held
        if h.root == label and scope.covers(h.source) and not protected.covers(h.source)
    }


def _path_of(source: str) -> Path:
    if source.startswith("file://"):
        return Path(unquote(urlparse(source).path))
    return Path(source)


def failures_of(groups: Sequence[GroupFailure]) -> list[IngestFailure]:
    """The documents of failed groups as per-document ingest failures."""
    out = []
    for group in groups:
        for doc in group.documents:
            out.append(
                IngestFailure(
                    _path_of(doc.source),
                    group.code,
                    f"{doc.source}: not indexed ({group.error})",
                    f"record {doc.record_key}" if doc.record_key else None,
                    "ingest again once the cause is fixed: documents already stored are kept",
                )
            )
    return out


def record_ingest(conn: Any, actor: str, report: IngestReport) -> None:
    """Append the ingest's audit entry (call last in its transaction)."""
    append(conn, [AuditEvent(actor, "knowledge.ingested", report.index, report.audit_details())])


def sources(documents: Sequence[Document]) -> tuple[str, ...]:
    """The documents' sources, in order."""
    return tuple(d.source for d in documents)


def metadata_from_pairs(pairs: Sequence[str]) -> Mapping[str, str]:
    """``["k=v", ...]`` as a mapping (``--meta`` options).

    Raises:
        ValueError: A pair without ``=`` or with an empty key.
    """
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"metadata must be key=value, not {pair!r}")
        out[key.strip()] = value.strip()
    return out
