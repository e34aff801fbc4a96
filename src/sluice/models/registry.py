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

from sqlalchemy import func, select

from sluice.errors import ModelError, ModelIntegrityError, PromotionError
from sluice.governance import AuditEvent, append
from sluice.models._stage_rules import (
    COLUMNS,
    DECLARED,
    evaluations_of,
    holder,
    lock_name,
    not_found,
    passing_evaluation,
    previous_production,
    production_row,
    retired_by_config,
    same_declaration,
    served_not_promoted,
    served_versions,
    set_stage,
    stages_of,
    version_row,
)
from sluice.models.records import (
    EvaluationRecord,
    ModelRecord,
    ModelRef,
    Serving,
    Stage,
    StageChange,
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
            stages = lock_name(conn, name)
            if stages and served_versions(conn, name):
                raise ModelError(
                    f"cannot register a trained version of {name}: {name} is served, as "
                    "declared in the models config",
                    hint="register the trained model under a name of its own",
                )
            next_version = str(max((int(v) for v in stages if v.isdigit()), default=0) + 1)
            production = holder(stages, "production")
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
                    set_stage(
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
                set_stage(
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
            row = version_row(conn, name, version)
            restore = row is not None and retired_by_config(conn, name, version, row)
        if row is not None and not restore:
            return same_declaration(record_from_row(row), sha256, endpoint)
        with self.store.begin() as conn:
            stages = lock_name(conn, name)
            stored = set(stages) - served_versions(conn, name)
            if stored:
                raise ModelError(
                    f"cannot catalogue {what}: {name} holds trained versions stored in the "
                    f"registry ({', '.join(sorted(stored))})",
                    hint="give the served model a name of its own in the models config",
                )
            events = []
            row = version_row(conn, name, version)  # again, under the lock
            if row is not None:
                record = same_declaration(record_from_row(row), sha256, endpoint)
                if not retired_by_config(conn, name, version, row):
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
            production = holder(stages, "production")
            if production is not None and production != version:
                events.append(
                    set_stage(
                        conn,
                        name,
                        production,
                        "production",
                        "retired",
                        actor=actor,
                        reason=f"superseded by {what}, {DECLARED}",
                    )
                )
            events.append(
                set_stage(
                    conn,
                    name,
                    version,
                    stages.get(version),
                    "production",
                    actor=actor,
                    reason=DECLARED,
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
                row = production_row(conn, name)
            else:
                row = version_row(conn, name, version)
        if row is None:
            raise not_found(name, version)
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
                select(*COLUMNS).where(
                    model_versions.c.name == name,
                    model_versions.c.stage.in_(("production", "canary")),
                )
            ).all()
        by_stage = {row.stage: record_from_row(row) for row in rows}
        if "production" not in by_stage:
            raise not_found(name, None)
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
        query = select(*COLUMNS).order_by(model_versions.c.name, model_versions.c.created_at.desc())
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
            stages = stages_of(conn, name)
            for needed in (version, baseline_version):
                if needed is not None and needed not in stages:
                    raise not_found(name, needed)
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
            return evaluations_of(conn, name, version)

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
            stages = lock_name(conn, name)
            current = stages.get(version)
            if current is None:
                raise not_found(name, version)
            if version in served_versions(conn, name):
                raise served_not_promoted(
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
            production = holder(stages, "production")
            evaluation = passing_evaluation(conn, name, version, production, to)
            events = []
            replaced = production if to == "production" else holder(stages, "canary")
            if replaced is not None:
                events.append(
                    set_stage(
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
                set_stage(
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
            stages = lock_name(conn, name)
            current = holder(stages, "production")
            if stages and served_versions(conn, name):
                raise served_not_promoted(name, f"cannot roll back {name}")
            if current is None:
                raise PromotionError(
                    f"{name} has no production version to roll back",
                    hint="list versions with `sluice models list`",
                )
            previous = previous_production(conn, name, current)
            if previous is None or previous not in stages:
                raise PromotionError(
                    f"no production version of {name} before {name}@{current} to roll back to",
                    hint=f"evaluate and promote another version: `sluice models evaluate "
                    f"{name} VERSION`, then `sluice models promote {name} VERSION`",
                )
            events = [
                set_stage(
                    conn,
                    name,
                    current,
                    "production",
                    "retired",
                    actor=actor,
                    reason=f"rolled back to {name}@{previous}{note}",
                ),
                set_stage(
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
            stages = lock_name(conn, name)
            current = stages.get(version)
            if current is None:
                raise not_found(name, version)
            served = version in served_versions(conn, name)
            if current == "retired" and not (
                served and retired_by_config(conn, name, version, None)
            ):
                raise PromotionError(f"{what} is already retired: nothing to change")
            if current == "production" and not served:
                raise PromotionError(
                    f"cannot retire {what}: it is the production version and something must serve",
                    hint=f"promote another version (`sluice models promote {name} VERSION`) "
                    f"or roll back (`sluice models rollback {name}`)",
                )
            event = set_stage(conn, name, version, current, "retired", actor=actor, reason=reason)
            append(conn, [event])
        return self.get(name, version)
