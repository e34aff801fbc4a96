r"""Building, activating, rolling back and retiring index versions of a knowledge base.

The version operations of :class:`~sluice.knowledge.KnowledgeBase`, kept apart from
ingest and search; the rules are in :mod:`sluice.knowledge.versions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sluice.errors import (
    EncoderMismatchError,
    IndexNotReadyError,
    IndexVersionError,
    KnowledgeError,
)
from sluice.knowledge.analysis import ANALYZER, analyzer_named
from sluice.knowledge.chunking import Chunker, ChunkingConfig
from sluice.knowledge.index_store import (
    ensure_index,
    load_documents,
    lock_index,
    pending_documents,
)
from sluice.knowledge.indexing import Progress, index_groups
from sluice.knowledge.keyword_index import KeywordIndex
from sluice.knowledge.vector_index import VectorCache
from sluice.knowledge.versions import (
    Activation,
    IndexVersion,
    config_hash,
    create_version,
    get_version,
    list_activations,
    list_versions,
    mark_ready,
    retire,
    rollback_target,
    switch,
    version_state,
)
from sluice.store import Store

if TYPE_CHECKING:
    from sluice.models import Gateway

__all__ = ["DEFAULT_CHUNKING", "VersionLifecycle"]

#: Chunking of new versions: the gateway's MiniLM encoder reads 128 word pieces, two of
#: them [CLS] and [SEP]; a longer chunk would be embedded without its tail.
DEFAULT_CHUNKING = ChunkingConfig(max_tokens=126, overlap_tokens=24)
_CATCH_UP_ROUNDS = 5
_LOAD_BATCH = 500


class VersionLifecycle:
    """Version operations; :class:`~sluice.knowledge.KnowledgeBase` inherits them."""

    store: Store
    gateway: Gateway | None
    index: str
    keyword: KeywordIndex
    _vectors: VectorCache

    def _sync_dense(self, versions: Sequence[int]) -> None:
        """Bring pgvector's copies of these versions up to date (no-op without pgvector)."""

    def _need_gateway(self, what: str) -> Gateway:
        if self.gateway is None:
            raise KnowledgeError(
                f"cannot {what} without the model gateway (embeddings go through it)",
                hint="create the KnowledgeBase with a Gateway, or search with mode='bm25'",
            )
        return self.gateway

    # -- versions ---------------------------------------------------------------------------
    def build(
        self,
        *,
        actor: str,
        chunking: ChunkingConfig | None = None,
        embed_task: str = "embed",
        analyzer: str = ANALYZER.name,
        activate: bool = False,
        note: str | None = None,
        progress: Progress | None = None,
    ) -> IndexVersion:
        """Build a new version from the stored documents, beside the active one.

        A build that stopped half-way (status ``building``) is resumed by building the
        same configuration again.

        Args:
            actor: Who builds (audited).
            chunking: Chunk sizes (default :data:`DEFAULT_CHUNKING`).
            embed_task: The gateway route to embed with.
            analyzer: The keyword analyzer.
            activate: Activate it once built.
            note: Free text kept with the version.
            progress: Told ``(phase, done, total)``.

        Raises:
            IndexVersionError: A version with this exact configuration exists (and is
                not ``building``).
        """
        gateway = self._need_gateway("build an index version")
        analyzer_named(analyzer)  # an unknown analyzer fails before anything is written
        chunker = Chunker(chunking or DEFAULT_CHUNKING)
        encoder = gateway.embed(embed_task, ["sluice"]).records[0].model_ref
        described = chunker.describe()
        wanted = config_hash(described, analyzer, embed_task, encoder)
        with self.store.begin() as conn:
            ensure_index(conn, self.index)
        with self.store.read() as conn:
            same = [
                v
                for v in list_versions(conn, self.index)
                if config_hash(v.chunking, v.analyzer, v.embed_task, v.encoder or encoder) == wanted
            ]
        resumed = next((v for v in same if v.status == "building"), None)
        if same and resumed is None:
            raise IndexVersionError(
                f"{same[0].ref} ({same[0].status}) already has this configuration",
                hint=f"activate it with `sluice kb activate {same[0].number}`",
            )
        if resumed is None:
            with self.store.begin() as conn:
                resumed = create_version(
                    conn,
                    self.keyword,
                    index=self.index,
                    embed_task=embed_task,
                    encoder=encoder,
                    chunking=described,
                    analyzer=analyzer,
                    actor=actor,
                    note=note,
                )
        version = resumed
        for _ in range(_CATCH_UP_ROUNDS):
            self._catch_up(version, progress)
            with self.store.begin() as conn:
                lock_index(conn, self.index, exclusive=True)
                # Ready only with every document in: from then on ingest maintains it.
                complete = not pending_documents(conn, self.index, version.id)
                if complete:
                    mark_ready(conn, version.id)
            if complete:
                break
        if activate:
            return self.activate(version.number, actor=actor, reason=note, progress=progress)
        return self.version(version.number)

    def _catch_up(self, version: IndexVersion, progress: Progress | None = None) -> None:
        """Index into ``version`` the documents it lacks or holds in an older form."""
        written = 0
        for _ in range(_CATCH_UP_ROUNDS):
            with self.store.read() as conn:
                pending = pending_documents(conn, self.index, version.id)
            if not pending:
                self.keyword.maintain(self.store.engine, written)
                self._sync_dense([version.id])
                return
            gateway = self._need_gateway(f"bring {version.ref} up to date")
            failures = []
            for i in range(0, len(pending), _LOAD_BATCH):
                with self.store.read() as conn:
                    loaded = load_documents(conn, pending[i : i + _LOAD_BATCH])
                outcome = index_groups(
                    self.store,
                    gateway,
                    self.keyword,
                    index=self.index,
                    documents=[doc for _, doc in loaded],
                    versions=lambda conn: [version],
                    pks={doc.doc_id: pk for pk, doc in loaded},
                    progress=_offset(progress, i, len(pending), version.ref),
                )
                failures.extend(outcome.failures)
                written += outcome.chunks
            if failures:
                first = failures[0]
                count = sum(len(f.documents) for f in failures)
                raise KnowledgeError(
                    f"{count} document(s) could not be indexed into {version.ref}: {first.error}",
                    hint="fix the cause (see `sluice models usage` for the encoder) and "
                    "run the same command again: it resumes where it stopped",
                )
        raise KnowledgeError(
            f"{version.ref} could not catch up with the documents: they kept changing",
            hint="try again when no ingest is running",
        )

    def activate(
        self,
        number: int,
        *,
        actor: str,
        reason: str | None = None,
        progress: Progress | None = None,
    ) -> IndexVersion:
        """Make version ``number`` the one that answers, atomically (audited).

        A retired version is first brought up to date with the documents that changed
        since it was active. The previously active version is retired.

        Raises:
            IndexVersionNotFoundError: No such version.
            IndexVersionError: It is building, or already active.
            EncoderMismatchError: The gateway no longer embeds with its encoder.
        """
        version = self.version(number)
        if version.status == "building":
            raise IndexVersionError(
                f"{version.ref} is still building",
                hint="run the same `sluice kb build` again to finish it",
            )
        if version.status == "active":
            raise IndexVersionError(f"{version.ref} is already active: nothing to change")
        return self._switch(version, "activate", actor, reason, progress)

    def rollback(
        self, *, actor: str, reason: str | None = None, progress: Progress | None = None
    ) -> IndexVersion:
        """Make the previously active version answer again (audited); see :mod:`.versions`.

        Raises:
            IndexVersionError: There is no earlier active version.
        """
        with self.store.read() as conn:
            target = rollback_target(conn, self.index)
            version, _ = version_state(conn, target)
        return self._switch(version, "rollback", actor, reason, progress)

    def _switch(
        self,
        version: IndexVersion,
        action: Any,
        actor: str,
        reason: str | None,
        progress: Progress | None,
    ) -> IndexVersion:
        self._check_encoder(version)
        for _ in range(_CATCH_UP_ROUNDS):
            self._catch_up(version, progress)
            previous = None
            with self.store.begin() as conn:
                lock_index(conn, self.index, exclusive=True)
                if action == "rollback" and rollback_target(conn, self.index) != version.id:
                    raise IndexVersionError(
                        "the activation history changed while rolling back",
                        hint="check `sluice kb versions` and try again",
                    )
                # Checked again under the lock: another activation of the same version
                # may have committed since the caller looked (it would be recorded twice).
                now = get_version(conn, self.index, version.number)
                if action == "activate" and now is not None and now.status == "active":
                    raise IndexVersionError(f"{version.ref} is already active: nothing to change")
                # An ingest may have changed documents meanwhile: then catch up again.
                switched = not pending_documents(conn, self.index, version.id)
                if switched:
                    previous = switch(
                        conn, index=self.index, version=version, action=action, actor=actor,
                        reason=reason,
                    )  # fmt: skip
            if switched:
                if previous is not None:  # retired by the switch: its matrix goes
                    self._vectors.forget(previous)
                return self.version(version.number)
        raise IndexVersionError(
            f"{version.ref} could not catch up with the documents: they kept changing",
            hint="try again when no ingest is running",
        )

    def _check_encoder(self, version: IndexVersion) -> None:
        if self.gateway is None or version.encoder is None:
            return
        serving = self.gateway.embed(version.embed_task, ["sluice"]).records[0].model_ref
        if serving != version.encoder:
            raise EncoderMismatchError(
                f"{version.ref} was built with {version.encoder}, but the gateway's "
                f"{version.embed_task!r} route now embeds with {serving}: its queries "
                "could not be embedded",
                hint=f"declare {version.encoder} again in the models config, or activate "
                "a version built with the current encoder",
            )

    def retire(self, number: int, *, actor: str, reason: str | None = None) -> IndexVersion:
        """Retire a building or ready version: ingest stops maintaining it (audited)."""
        with self.store.begin() as conn:
            lock_index(conn, self.index, exclusive=True)
            version = get_version(conn, self.index, number)
            assert version is not None
            retire(conn, version, actor=actor, reason=reason)
        self._vectors.forget(version.id)
        return self.version(number)

    def version(self, number: int | None = None) -> IndexVersion:
        """Version ``number``, or the active version.

        Raises:
            IndexNotReadyError: No active version (``number`` None).
            IndexVersionNotFoundError: No such version.
        """
        with self.store.read() as conn:
            found = get_version(conn, self.index, number)
        if found is None:
            raise IndexNotReadyError(
                f"index {self.index!r} has no active version: nothing was ingested yet",
                hint="ingest documents with `sluice kb ingest PATH`",
            )
        return found

    def versions(self) -> list[IndexVersion]:
        """Every version of the index, oldest first."""
        with self.store.read() as conn:
            return list_versions(conn, self.index)

    def activations(self) -> list[Activation]:
        """The history of activations and rollbacks, oldest first."""
        with self.store.read() as conn:
            return list_activations(conn, self.index)


def _offset(progress: Progress | None, offset: int, total: int, ref: str) -> Progress | None:
    if progress is None:
        return None
    tell = progress
    return lambda phase, done, _total: tell(ref, offset + done, total)
