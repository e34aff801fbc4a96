"""The model registry: versioned artifacts with their cards, stages and evidence.

Every model Sluice runs is a row here: name, version, kind, the artifact bytes, their
sha256 and a *card* (training-data hash, code version, metrics, thresholds). Workers on
any host load the same bytes by name and version and verify the hash before use; a copy
is cached under ``SLUICE_HOME/models/<name>/<version>/``.

Stages::

    candidate ──promote──▶ canary ──promote──▶ production ──(superseded, rollback)──▶ retired
        └──────────────promote───────────────────▲
    candidate, canary ──retire──▶ retired          retired ──rollback──▶ production

- The first version of a name becomes ``production`` when registered; later versions
  are ``candidate`` unless registered with ``promote=True``.
- A name has at most one ``production`` and at most one ``canary`` version. Promoting
  to production retires the previous production version; promoting to canary retires
  the previous canary.
- Promotion out of ``candidate``, and from ``canary`` to ``production``, needs a
  *passing evaluation* of the version whose baseline is the **current** production
  version (:meth:`ModelRegistry.record_evaluation`, made by
  :func:`sluice.models.evaluation.evaluate_for_promotion`). An evaluation against an
  older production version does not count.
- A retired version comes back only through :meth:`ModelRegistry.rollback`, which
  restores the version that was production before the current one.

Every stage change, the stage given at registration included, is one row of
``model_stage_changes`` and one ``model.stage_changed`` audit entry, written in the
same transaction. Gateways in other processes poll :meth:`ModelRegistry.stage_epoch`
to notice promotions and rollbacks.

Models that are configured rather than trained (the local encoder, LLM endpoints) are
*catalogued* (:meth:`ModelRegistry.catalogue`): served, not stored, so the row keeps
their endpoint and sha256 but no artifact. The models config decides which of them
serves, so a newly declared version becomes production at once and retires the one
before it; declaring a superseded version again restores it. Promotion and rollback do
not apply to them. A person may retire any catalogued version (``sluice models
retire``), the production one included: it stays retired whatever the config declares,
and processes that declare it refuse it (:meth:`ModelRegistry.is_retired`). A name
holds only stored or only catalogued versions.

Example:
    >>> registry = ModelRegistry(store)  # doctest: +SKIP
    >>> record = registry.register("support-intent", "classifier", blob, card)  # doctest: +SKIP
    >>> registry.production("support-intent").version  # doctest: +SKIP
    '1'
    >>> registry.promote("support-intent", "2", to="canary", actor="cli:ana")  # doctest: +SKIP
"""

from __future__ import annotations

import builtins
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, func, select, text, update

from sluice.errors import ModelError, ModelIntegrityError, ModelNotFoundError, PromotionError
from sluice.governance import AuditEvent, append
from sluice.models.records import (
    EvaluationRecord,
    ModelRecord,
    ModelRef,
    Serving,
    Stage,
    StageChange,
    evaluation_from_row,
    record_from_row,
    stage_change_from_row,
)
from sluice.models.tables import model_evaluations, model_stage_changes, model_versions
from sluice.store import Store, new_id, utcnow

__all__ = [
    "EvaluationRecord",
    "ModelRecord",
    "ModelRef",
    "ModelRegistry",
    "Serving",
    "Stage",
    "StageChange",
]

# Arbitrary constant mixed into the PostgreSQL advisory lock of a model name.
_NAME_LOCK_SALT = b"sluice.models.registry:"

_COLUMNS = [c for c in model_versions.c if c.name != "artifact"]

# Reason of the stage changes made by catalogue(); a retirement whose reason ends with it
# was the config's doing (and is undone when the config declares the version again).
_DECLARED = "declared in the models config"


def _served_not_promoted(name: str, refused: str) -> PromotionError:
    return PromotionError(
        f"{refused}: {name} is catalogued, served as declared in the models config, and "
        "the config, not promotion or rollback, decides which version serves",
        hint=f"declare the version of {name} to serve in the models config; it becomes "
        "production when a process starts with it",
    )


def _not_found(name: str, version: str | None) -> ModelNotFoundError:
    what = f"{name}@{version}" if version else f"a production version of {name!r}"
    return ModelNotFoundError(
        f"no model {what} in the registry",
        hint="list models with `sluice models list`; train one with `sluice models train`",
    )


class ModelRegistry:
    """Register, look up, load and stage model versions (see module docs)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.cache_dir = store.settings.models_dir

    # -- registering and reading ---------------------------------------------------------
    def register(
        self,
        name: str,
        kind: str,
        artifact: bytes,
        card: Mapping[str, Any],
        *,
        created_by: str = "local-admin",
        promote: bool | None = None,
    ) -> ModelRecord:
        """Store a new version of ``name`` and return its record.

        The stage it starts at is recorded as a stage change with reason
        ``registered``; a production version it replaces is retired (its own change).

        Args:
            name: Model name.
            kind: ``classifier``, ``encoder`` ...
            artifact: The serialized model.
            card: Provenance and metrics (must be JSON-serializable).
            created_by: Who registered it.
            promote: True: make it the production version; False: never (a candidate);
                None (default): only if there is no production version yet.

        Raises:
            ModelError: ``name`` is catalogued (served from an endpoint).
        """
        digest = hashlib.sha256(artifact).hexdigest()
        with self.store.begin() as conn:
            stages = self._lock(conn, name)
            if stages and self._served(conn, name):
                raise ModelError(
                    f"cannot register a trained version of {name}: {name} is served, as "
                    "declared in the models config",
                    hint="register the trained model under a name of its own",
                )
            next_version = str(max((int(v) for v in stages if v.isdigit()), default=0) + 1)
            production = _holder(stages, "production")
            first = promote is None and production is None  # the first version serves at once
            stage: Stage = "production" if (promote or first) else "candidate"
            conn.execute(
                model_versions.insert().values(
                    name=name,
                    version=next_version,
                    kind=kind,
                    sha256=digest,
                    artifact=artifact,
                    card=dict(card),
                    stage=stage,
                    created_by=created_by,
                    created_at=utcnow(),
                )
            )
            events = [
                AuditEvent(
                    created_by,
                    "model.registered",
                    f"{name}@{next_version}",
                    {"kind": kind, "sha256": digest, "stage": stage},
                )
            ]
            if stage == "production" and production is not None:
                events.append(
                    self._set_stage(
                        conn,
                        name,
                        production,
                        "production",
                        "retired",
                        actor=created_by,
                        reason=f"superseded by {name}@{next_version}",
                    )
                )
            events.append(
                self._set_stage(
                    conn, name, next_version, None, stage, actor=created_by, reason="registered"
                )
            )
            append(conn, events)
        return self.get(name, next_version)

    def catalogue(
        self,
        name: str,
        version: str,
        kind: str,
        *,
        endpoint: str,
        sha256: str,
        card: Mapping[str, Any],
        actor: str = "model-gateway",
    ) -> ModelRecord:
        """Record a model that is served, not stored, as declared in the models config.

        Runs on every process start: when ``name@version`` is already catalogued with
        this sha256 it returns the record after one read, writing nothing. A new version
        becomes production at once and retires the production version before it; a
        version the config superseded earlier is restored the same way. Each change is a
        stage change by ``actor`` with reason ``declared in the models config``. A
        version a person retired stays retired: check :attr:`ModelRecord.stage` or
        :meth:`is_retired` before serving it.

        Example:
            >>> registry.catalogue(  # doctest: +SKIP
            ...     "chat", "b179c9523d0e", "llm", endpoint="local:/models/qwen.gguf",
            ...     sha256=digest, card={"provenance": "Qwen2.5-0.5B-Instruct Q4_K_M"},
            ... ).stage
            'production'

        Args:
            name: Model name.
            version: Its version, as declared (``1.0.0+q2``, ``b179c9523d0e``).
            kind: ``encoder``, ``llm`` ...
            endpoint: Where it runs: ``local:/path/model.onnx``,
                ``http://host:8000/v1#model-name``. Kept as ``card["endpoint"]``.
            sha256: 64 hex digits identifying what the endpoint serves.
            card: Provenance and metrics (JSON-serializable). The card of the first
                cataloguing is kept; later calls do not update it.
            actor: Who declares it (recorded and audited).

        Returns:
            The record; its stage is ``production``, or ``retired`` if a person retired
            this version.

        Raises:
            ModelIntegrityError: ``name@version`` is catalogued with another sha256.
            ModelError: Arguments unusable, or ``name`` holds trained (stored) versions.
        """
        what = f"{name}@{version}"
        sha256 = sha256.lower()
        if not (name and version and endpoint):
            raise ModelError(f"cannot catalogue {what!r}: name, version and endpoint are needed")
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ModelError(f"cannot catalogue {what}: sha256 {sha256!r} is not 64 hex digits")
        with self.store.read() as conn:
            row = self._row(conn, name, version)
            restore = row is not None and self._retired_by_config(conn, name, version, row)
        if row is not None and not restore:
            return _same_declaration(record_from_row(row), sha256, endpoint)
        with self.store.begin() as conn:
            stages = self._lock(conn, name)
            stored = set(stages) - self._served(conn, name)
            if stored:
                raise ModelError(
                    f"cannot catalogue {what}: {name} holds trained versions stored in the "
                    f"registry ({', '.join(sorted(stored))})",
                    hint="give the served model a name of its own in the models config",
                )
            events = []
            row = self._row(conn, name, version)  # again, under the lock
            if row is not None:
                record = _same_declaration(record_from_row(row), sha256, endpoint)
                if not self._retired_by_config(conn, name, version, row):
                    return record  # another process catalogued it first, or a person retired it
            else:
                conn.execute(
                    model_versions.insert().values(
                        name=name,
                        version=version,
                        kind=kind,
                        sha256=sha256,
                        artifact=b"",  # served, not stored
                        card={**card, "endpoint": endpoint, "catalogued": True},
                        stage="production",
                        created_by=actor,
                        created_at=utcnow(),
                    )
                )
                events.append(
                    AuditEvent(
                        actor,
                        "model.catalogued",
                        what,
                        {"kind": kind, "sha256": sha256, "endpoint": endpoint},
                    )
                )
            production = _holder(stages, "production")
            if production is not None and production != version:
                events.append(
                    self._set_stage(
                        conn,
                        name,
                        production,
                        "production",
                        "retired",
                        actor=actor,
                        reason=f"superseded by {what}, {_DECLARED}",
                    )
                )
            events.append(
                self._set_stage(
                    conn,
                    name,
                    version,
                    stages.get(version),
                    "production",
                    actor=actor,
                    reason=_DECLARED,
                )
            )
            append(conn, events)
        return self.get(name, version)

    def is_retired(self, name: str, version: str) -> bool:
        """Whether ``name@version`` is retired (one read; False for an unknown version)."""
        with self.store.read() as conn:
            stage = conn.execute(
                select(model_versions.c.stage).where(
                    model_versions.c.name == name, model_versions.c.version == version
                )
            ).scalar_one_or_none()
        return stage == "retired"

    def get(self, name: str, version: str | None = None) -> ModelRecord:
        """The record of ``name@version``, or of the production version when omitted.

        Args:
            name: Model name.
            version: The version; None for the production version.

        Raises:
            ModelNotFoundError: No such model or version.
        """
        with self.store.read() as conn:
            if version is None:
                row = self._production_row(conn, name)
            else:
                row = self._row(conn, name, version)
        if row is None:
            raise _not_found(name, version)
        return record_from_row(row)

    def production(self, name: str) -> ModelRecord:
        """The production version of ``name``.

        Raises:
            ModelNotFoundError: ``name`` has no production version.
        """
        return self.get(name)

    def serving(self, name: str) -> Serving:
        """The versions of ``name`` that serve: production and the canary (one query).

        Args:
            name: Model name.

        Raises:
            ModelNotFoundError: ``name`` has no production version.
        """
        with self.store.read() as conn:
            rows = conn.execute(
                select(*_COLUMNS).where(
                    model_versions.c.name == name,
                    model_versions.c.stage.in_(("production", "canary")),
                )
            ).all()
        by_stage = {row.stage: record_from_row(row) for row in rows}
        if "production" not in by_stage:
            raise _not_found(name, None)
        return Serving(by_stage["production"], by_stage.get("canary"))

    def stage_epoch(self) -> int:
        """A number that changes whenever any version of any model changes stage.

        It is the number of stage changes ever recorded (0 for an empty registry). A
        count and not the highest id: on PostgreSQL ids come from a sequence and two
        transactions can commit in the other order than they drew their ids, so a
        poller reading the highest id could miss the one committed second.
        """
        with self.store.read() as conn:
            return int(
                conn.execute(select(func.count()).select_from(model_stage_changes)).scalar_one()
            )

    def find(self, name: str, **card_match: Any) -> ModelRecord | None:
        """The newest version of ``name`` whose card has all the given key/values."""
        for record in self.list(name):
            if all(record.card.get(k) == v for k, v in card_match.items()):
                return record
        return None

    def list(self, name: str | None = None) -> list[ModelRecord]:
        """All versions (newest first), optionally of one name."""
        query = select(*_COLUMNS).order_by(
            model_versions.c.name, model_versions.c.created_at.desc()
        )
        if name is not None:
            query = query.where(model_versions.c.name == name)
        with self.store.read() as conn:
            return [record_from_row(r) for r in conn.execute(query)]

    def history(self, name: str) -> builtins.list[StageChange]:
        """Every stage change of ``name``'s versions, oldest first."""
        with self.store.read() as conn:
            rows = conn.execute(
                select(model_stage_changes)
                .where(model_stage_changes.c.name == name)
                .order_by(model_stage_changes.c.id)
            )
            return [stage_change_from_row(r) for r in rows]

    def artifact_path(self, name: str, version: str) -> Path:
        """A verified local copy of the artifact bytes (cached under ``SLUICE_HOME``).

        Raises:
            ModelNotFoundError: No such version.
            ModelIntegrityError: The stored bytes do not match their sha256.
            ModelError: The version is catalogued: served, not stored.
        """
        record = self.get(name, version)
        if record.catalogued:
            raise ModelError(
                f"{name}@{version} is served, not stored: it runs at {record.endpoint} and "
                "the registry holds no artifact for it",
                hint="load it from its endpoint, as the models config declares it",
            )
        path = self.cache_dir / name / version / "artifact.bin"
        if path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == record.sha256:
            return path
        with self.store.read() as conn:
            blob = conn.execute(
                select(model_versions.c.artifact).where(
                    model_versions.c.name == name, model_versions.c.version == version
                )
            ).scalar_one()
        if hashlib.sha256(blob).hexdigest() != record.sha256:
            raise ModelIntegrityError(
                f"artifact of {name}@{version} does not match its recorded sha256",
                hint="the store was altered; retrain or restore the model from a backup",
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(blob)
        tmp.replace(path)
        return path

    def count(self) -> int:
        """Number of registered versions."""
        with self.store.read() as conn:
            return int(conn.execute(select(func.count()).select_from(model_versions)).scalar_one())

    # -- evaluations ---------------------------------------------------------------------
    def record_evaluation(
        self,
        name: str,
        version: str,
        *,
        baseline_version: str | None,
        holdout_sha256: str,
        metrics: Mapping[str, Any],
        passed: bool,
        created_by: str,
    ) -> EvaluationRecord:
        """Record an evaluation of ``name@version`` (audited as ``model.evaluated``).

        :func:`sluice.models.evaluation.evaluate_for_promotion` computes one; this
        stores any, e.g. from an evaluation run elsewhere.

        Args:
            name: Model name.
            version: The evaluated version.
            baseline_version: The production version it was compared with, None if
                there was none. Promotion counts it only while that is still the
                production version.
            holdout_sha256: sha256 of the held-out data.
            metrics: The figures, the decision and why (JSON-serializable).
            passed: Whether it passed the promotion gate.
            created_by: Who ran it.

        Raises:
            ModelNotFoundError: The version or the baseline version does not exist.
        """
        record = EvaluationRecord(
            id=new_id("eval"),
            name=name,
            version=version,
            baseline_version=baseline_version,
            holdout_sha256=holdout_sha256,
            metrics=dict(metrics),
            passed=bool(passed),
            created_by=created_by,
            created_at=utcnow(),
        )
        with self.store.begin() as conn:
            stages = self._stages(conn, name)
            for needed in (version, baseline_version):
                if needed is not None and needed not in stages:
                    raise _not_found(name, needed)
            conn.execute(model_evaluations.insert().values(**record.__dict__))
            append(
                conn,
                [
                    AuditEvent(
                        created_by,
                        "model.evaluated",
                        f"{name}@{version}",
                        {
                            "evaluation_id": record.id,
                            "baseline_version": baseline_version,
                            "holdout_sha256": holdout_sha256,
                            "passed": record.passed,
                        },
                    )
                ],
            )
        return record

    def evaluations(self, name: str, version: str | None = None) -> builtins.list[EvaluationRecord]:
        """Recorded evaluations of ``name`` (of one version if given), newest first."""
        with self.store.read() as conn:
            return self._evaluations(conn, name, version)

    # -- stage changes -------------------------------------------------------------------
    def promote(
        self,
        name: str,
        version: str,
        *,
        to: Literal["canary", "production"],
        actor: str,
        reason: str | None = None,
    ) -> ModelRecord:
        """Move a candidate to canary or production, or a canary to production.

        Promoting to production retires the previous production version; promoting to
        canary retires the previous canary. Each change is recorded and audited.

        Args:
            name: Model name.
            version: The version to promote.
            to: ``canary`` or ``production``.
            actor: Who promotes it (recorded and audited).
            reason: Why, in words.

        Raises:
            ModelNotFoundError: No such version.
            PromotionError: No passing evaluation against the current production
                version; the version is retired, already at ``to``, production or
                catalogued; or ``to`` is not a promotion target.
        """
        if to not in ("canary", "production"):
            raise PromotionError(
                f"cannot promote to {to!r}",
                hint="promote to canary or production; retire with `sluice models retire`",
            )
        what = f"{name}@{version}"
        with self.store.begin() as conn:
            stages = self._lock(conn, name)
            current = stages.get(version)
            if current is None:
                raise _not_found(name, version)
            if version in self._served(conn, name):
                raise _served_not_promoted(
                    name, f"cannot promote {what} to {to} (it has no evaluation to promote on)"
                )
            if current == to:
                raise PromotionError(f"{what} is already {to}: nothing to change")
            if current == "retired":
                raise PromotionError(
                    f"{what} is retired; a retired version comes back only through a rollback",
                    hint=f"`sluice models rollback {name}` restores the previous production "
                    "version; or train and evaluate a new version",
                )
            if current == "production":
                raise PromotionError(
                    f"{what} is the production version; it cannot become a canary",
                    hint=f"`sluice models rollback {name}` restores the previous production",
                )
            production = _holder(stages, "production")
            evaluation = self._passing_evaluation(conn, name, version, production, to)
            events = []
            replaced = production if to == "production" else _holder(stages, "canary")
            if replaced is not None:
                events.append(
                    self._set_stage(
                        conn,
                        name,
                        replaced,
                        to,
                        "retired",
                        actor=actor,
                        reason=f"superseded by {what}"
                        if to == "production"
                        else f"replaced as canary by {what}",
                    )
                )
            events.append(
                self._set_stage(
                    conn,
                    name,
                    version,
                    current,
                    to,
                    actor=actor,
                    reason=reason,
                    evaluation_id=evaluation.id,
                )
            )
            append(conn, events)
        return self.get(name, version)

    def rollback(self, name: str, *, actor: str, reason: str | None = None) -> ModelRecord:
        """Retire the production version and restore the one that served before it.

        The version restored is found in the stage history: the production version
        before the current one became production, skipping versions that were
        themselves rolled back. It takes effect at once (the stage epoch changes).

        Args:
            name: Model name.
            actor: Who rolls back (recorded and audited).
            reason: Why, in words.

        Returns:
            The restored production version.

        Raises:
            PromotionError: No production version, none before it to restore, or
                ``name`` is catalogued (the models config decides what serves).
        """
        note = f": {reason}" if reason else ""
        with self.store.begin() as conn:
            stages = self._lock(conn, name)
            current = _holder(stages, "production")
            if stages and self._served(conn, name):
                raise _served_not_promoted(name, f"cannot roll back {name}")
            if current is None:
                raise PromotionError(
                    f"{name} has no production version to roll back",
                    hint="list versions with `sluice models list`",
                )
            previous = self._previous_production(conn, name, current)
            if previous is None or previous not in stages:
                raise PromotionError(
                    f"no production version of {name} before {name}@{current} to roll back to",
                    hint=f"evaluate and promote another version: `sluice models evaluate "
                    f"{name} VERSION`, then `sluice models promote {name} VERSION`",
                )
            events = [
                self._set_stage(
                    conn,
                    name,
                    current,
                    "production",
                    "retired",
                    actor=actor,
                    reason=f"rolled back to {name}@{previous}{note}",
                ),
                self._set_stage(
                    conn,
                    name,
                    previous,
                    stages[previous],
                    "production",
                    actor=actor,
                    reason=f"restored by rollback of {name}@{current}{note}",
                ),
            ]
            append(conn, events)
        return self.get(name, previous)

    def retire(
        self, name: str, version: str, *, actor: str, reason: str | None = None
    ) -> ModelRecord:
        """Retire a candidate or canary version (e.g. stop a canary).

        A catalogued version can be retired at any stage, production included (the
        models config decides what serves; processes that declare a retired version
        refuse it), and also once the config superseded it: retired by a person, it is
        not restored when the config declares it again.

        Args:
            name: Model name.
            version: The version to retire.
            actor: Who retires it (recorded and audited).
            reason: Why, in words.

        Raises:
            ModelNotFoundError: No such version.
            PromotionError: It is already retired, or it is the production version of a
                stored model (something must serve: promote another version or roll
                back).
        """
        what = f"{name}@{version}"
        with self.store.begin() as conn:
            stages = self._lock(conn, name)
            current = stages.get(version)
            if current is None:
                raise _not_found(name, version)
            served = version in self._served(conn, name)
            if current == "retired" and not (
                served and self._retired_by_config(conn, name, version, None)
            ):
                raise PromotionError(f"{what} is already retired: nothing to change")
            if current == "production" and not served:
                raise PromotionError(
                    f"cannot retire {what}: it is the production version and something must serve",
                    hint=f"promote another version (`sluice models promote {name} VERSION`) "
                    f"or roll back (`sluice models rollback {name}`)",
                )
            event = self._set_stage(
                conn, name, version, current, "retired", actor=actor, reason=reason
            )
            append(conn, [event])
        return self.get(name, version)

    # -- internals -----------------------------------------------------------------------
    def _lock(self, conn: Connection, name: str) -> dict[str, Stage]:
        """Serialize stage changes of ``name`` until the transaction ends; its stages.

        PostgreSQL: a transaction-scoped advisory lock per name (it also covers a name
        with no version yet, which row locks could not). SQLite: the store's write
        transactions already run one at a time.
        """
        if conn.dialect.name == "postgresql":
            key = int.from_bytes(
                hashlib.sha256(_NAME_LOCK_SALT + name.encode()).digest()[:8], "big", signed=True
            )
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
        return self._stages(conn, name)

    @staticmethod
    def _row(conn: Connection, name: str, version: str) -> Any:
        return conn.execute(
            select(*_COLUMNS).where(
                model_versions.c.name == name, model_versions.c.version == version
            )
        ).one_or_none()

    @staticmethod
    def _served(conn: Connection, name: str) -> set[str]:
        """The catalogued versions of ``name``."""
        rows = conn.execute(
            select(model_versions.c.version, model_versions.c.card).where(
                model_versions.c.name == name
            )
        )
        return {row.version for row in rows if row.card.get("catalogued")}

    @staticmethod
    def _retired_by_config(conn: Connection, name: str, version: str, row: Any) -> bool:
        """Whether the config, not a person, retired ``name@version`` (its last change).

        ``row`` is its ``model_versions`` row if at hand: unless it is retired, no query.
        """
        if row is not None and row.stage != "retired":
            return False
        last = conn.execute(
            select(model_stage_changes.c.to_stage, model_stage_changes.c.reason)
            .where(model_stage_changes.c.name == name, model_stage_changes.c.version == version)
            .order_by(model_stage_changes.c.id.desc())
            .limit(1)
        ).one_or_none()
        return (
            last is not None
            and last.to_stage == "retired"
            and (last.reason or "").endswith(_DECLARED)
        )

    @staticmethod
    def _stages(conn: Connection, name: str) -> dict[str, Stage]:
        rows = conn.execute(
            select(model_versions.c.version, model_versions.c.stage).where(
                model_versions.c.name == name
            )
        )
        return {row.version: row.stage for row in rows}

    @staticmethod
    def _set_stage(
        conn: Connection,
        name: str,
        version: str,
        from_stage: Stage | None,
        to_stage: Stage,
        *,
        actor: str,
        reason: str | None,
        evaluation_id: str | None = None,
    ) -> AuditEvent:
        """Change the stage and add the history row; the audit event, to append last."""
        if from_stage is not None:
            conn.execute(
                update(model_versions)
                .where(model_versions.c.name == name, model_versions.c.version == version)
                .values(stage=to_stage)
            )
        conn.execute(
            model_stage_changes.insert().values(
                name=name,
                version=version,
                from_stage=from_stage,
                to_stage=to_stage,
                actor=actor,
                reason=reason,
                evaluation_id=evaluation_id,
                changed_at=utcnow(),
            )
        )
        return AuditEvent(
            actor,
            "model.stage_changed",
            f"{name}@{version}",
            {
                "from": from_stage,
                "to": to_stage,
                "actor": actor,
                "reason": reason,
                "evaluation_id": evaluation_id,
            },
        )

    @staticmethod
    def _evaluations(
        conn: Connection, name: str, version: str | None
    ) -> builtins.list[EvaluationRecord]:
        query = (
            select(model_evaluations)
            .where(model_evaluations.c.name == name)
            .order_by(model_evaluations.c.created_at.desc(), model_evaluations.c.id.desc())
        )
        if version is not None:
            query = query.where(model_evaluations.c.version == version)
        return [evaluation_from_row(r) for r in conn.execute(query)]

    def _passing_evaluation(
        self, conn: Connection, name: str, version: str, production: str | None, to: str
    ) -> EvaluationRecord:
        """The newest evaluation of ``version`` against ``production``, if it passed.

        The newest one decides: a later failing evaluation overrules an earlier pass.
        """
        what = f"{name}@{version}"

        def baseline_of(v: str | None) -> str:
            return f"{name}@{v}" if v else "no production version"

        baseline = baseline_of(production)
        fix = f"run `sluice models evaluate {name} {version}`, then promote again"
        evaluations = self._evaluations(conn, name, version)
        matching = [e for e in evaluations if e.baseline_version == production]
        if not matching:
            if not evaluations:
                raise PromotionError(
                    f"cannot promote {what} to {to}: it has no evaluation against "
                    + (
                        f"the production version {baseline}"
                        if production
                        else "the empty "
                        "production slot (it would pass at once, but must be recorded)"
                    ),
                    hint=fix,
                )
            older = sorted({baseline_of(e.baseline_version) for e in evaluations})
            raise PromotionError(
                f"cannot promote {what} to {to}: its evaluations compare it with "
                f"{', '.join(older)}, not with the current production version {baseline}",
                hint=fix,
            )
        latest = matching[0]
        if not latest.passed:
            gate = latest.metrics.get("gate")
            why = gate.get("why") if isinstance(gate, Mapping) else None
            raise PromotionError(
                f"cannot promote {what} to {to}: its latest evaluation against {baseline} "
                f"({latest.id}) did not pass the gate" + (f" ({why})" if why else ""),
                hint="train a better candidate, or evaluate it on a larger held-out set: "
                f"`sluice models evaluate {name} {version} --holdout CSV`",
            )
        return latest

    @staticmethod
    def _previous_production(conn: Connection, name: str, current: str) -> str | None:
        """The version that was production before ``current``, from the history.

        Production tenures form a stack: a promotion (or registration) pushes a
        version; a rollback (``retired -> production``) pops the rolled-back version, so
        rolling back twice walks further back instead of restoring the bad version.
        """
        rows = conn.execute(
            select(model_stage_changes.c.version, model_stage_changes.c.from_stage)
            .where(
                model_stage_changes.c.name == name,
                model_stage_changes.c.to_stage == "production",
            )
            .order_by(model_stage_changes.c.id)
        )
        tenures: list[str] = []
        for row in rows:
            if row.from_stage == "retired" and tenures:
                tenures.pop()
            if row.version in tenures:
                tenures.remove(row.version)
            tenures.append(row.version)
        if current not in tenures:
            return None
        at = tenures.index(current)
        return tenures[at - 1] if at > 0 else None

    @staticmethod
    def _production_row(conn: Connection, name: str) -> Any:
        return conn.execute(
            select(*_COLUMNS).where(
                model_versions.c.name == name, model_versions.c.stage == "production"
            )
        ).one_or_none()


def _holder(stages: Mapping[str, Stage], stage: Stage) -> str | None:
    """The version of ``stages`` at ``stage`` (production and canary have at most one)."""
    return next((version for version, s in stages.items() if s == stage), None)


def _same_declaration(record: ModelRecord, sha256: str, endpoint: str) -> ModelRecord:
    """``record``, if it is the catalogued version that ``sha256`` declares again."""
    what = f"{record.name}@{record.version}"
    if not record.catalogued:
        raise ModelError(
            f"cannot catalogue {what}: it is a trained version stored in the registry",
            hint="give the served model a name of its own in the models config",
        )
    if record.sha256 != sha256:
        raise ModelIntegrityError(
            f"{what} is catalogued with sha256 {record.sha256[:12]}, but {endpoint} now "
            f"serves different bytes (sha256 {sha256[:12]}) under the same version",
            hint=f"declare a new version of {record.name} in the models config for the new "
            "bytes, or restore the ones this version names",
        )
    return record
