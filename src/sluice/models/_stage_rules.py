"""The SQL and stage rules behind :class:`sluice.models.registry.ModelRegistry`.

What it holds: the per-name lock, the reads of ``model_versions``,
``model_stage_changes`` and ``model_evaluations``, the one write that changes a
stage (with its history row and audit event), the promotion gate, the rollback
stack, and the errors these rules raise. The rules themselves are documented in
:mod:`sluice.models.registry`.

Why it is separate: ``registry.py`` keeps the public methods, each one transaction
that reads as the rule it enforces; the queries and checks they share live here.
Every function takes a connection already inside the caller's transaction and never
opens, commits or appends to the audit log itself: the caller appends the returned
:class:`~sluice.governance.AuditEvent` objects in the same transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, select, text, update

from sluice.errors import ModelError, ModelIntegrityError, ModelNotFoundError, PromotionError
from sluice.governance import AuditEvent
from sluice.models.records import EvaluationRecord, ModelRecord, Stage, evaluation_from_row
from sluice.models.tables import model_evaluations, model_stage_changes, model_versions
from sluice.store import utcnow

__all__ = [
    "COLUMNS",
    "DECLARED",
    "evaluations_of",
    "holder",
    "lock_name",
    "not_found",
    "passing_evaluation",
    "previous_production",
    "production_row",
    "retired_by_config",
    "same_declaration",
    "served_not_promoted",
    "served_versions",
    "set_stage",
    "stages_of",
    "version_row",
]

# Arbitrary constant mixed into the PostgreSQL advisory lock of a model name. Processes
# of different releases share the lock, so the value stays as first chosen.
_NAME_LOCK_SALT = b"sluice.models.registry:"

#: The ``model_versions`` columns a record is built from: all but the artifact bytes.
COLUMNS = [c for c in model_versions.c if c.name != "artifact"]

#: Reason of the stage changes made by catalogue(); a retirement whose reason ends with
#: it was the config's doing (and is undone when the config declares the version again).
DECLARED = "declared in the models config"


# -- locking and reading -------------------------------------------------------------------
def lock_name(conn: Connection, name: str) -> dict[str, Stage]:
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
    return stages_of(conn, name)


def stages_of(conn: Connection, name: str) -> dict[str, Stage]:
    """The stage of each version of ``name``."""
    rows = conn.execute(
        select(model_versions.c.version, model_versions.c.stage).where(
            model_versions.c.name == name
        )
    )
    return {row.version: row.stage for row in rows}


def version_row(conn: Connection, name: str, version: str) -> Any:
    """The :data:`COLUMNS` of ``name@version``, or None."""
    return conn.execute(
        select(*COLUMNS).where(model_versions.c.name == name, model_versions.c.version == version)
    ).one_or_none()


def production_row(conn: Connection, name: str) -> Any:
    """The :data:`COLUMNS` of the production version of ``name``, or None."""
    return conn.execute(
        select(*COLUMNS).where(
            model_versions.c.name == name, model_versions.c.stage == "production"
        )
    ).one_or_none()


def served_versions(conn: Connection, name: str) -> set[str]:
    """The catalogued versions of ``name``."""
    rows = conn.execute(
        select(model_versions.c.version, model_versions.c.card).where(model_versions.c.name == name)
    )
    return {row.version for row in rows if row.card.get("catalogued")}


def retired_by_config(conn: Connection, name: str, version: str, row: Any) -> bool:
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
        last is not None and last.to_stage == "retired" and (last.reason or "").endswith(DECLARED)
    )


def holder(stages: Mapping[str, Stage], stage: Stage) -> str | None:
    """The version of ``stages`` at ``stage`` (production and canary have at most one)."""
    return next((version for version, s in stages.items() if s == stage), None)


# -- changing a stage ----------------------------------------------------------------------
def set_stage(
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


# -- the promotion gate and the rollback stack ---------------------------------------------
def evaluations_of(conn: Connection, name: str, version: str | None) -> list[EvaluationRecord]:
    """Recorded evaluations of ``name`` (of one version if given), newest first."""
    query = (
        select(model_evaluations)
        .where(model_evaluations.c.name == name)
        .order_by(model_evaluations.c.created_at.desc(), model_evaluations.c.id.desc())
    )
    if version is not None:
        query = query.where(model_evaluations.c.version == version)
    return [evaluation_from_row(r) for r in conn.execute(query)]


def passing_evaluation(
    conn: Connection, name: str, version: str, production: str | None, to: str
) -> EvaluationRecord:
    """The newest evaluation of ``version`` against ``production``, if it passed.

    The newest one decides: a later failing evaluation overrules an earlier pass.

    Raises:
        PromotionError: No evaluation against ``production``, or the newest one failed.
    """
    what = f"{name}@{version}"

    def baseline_of(v: str | None) -> str:
        return f"{name}@{v}" if v else "no production version"

    baseline = baseline_of(production)
    fix = f"run `sluice models evaluate {name} {version}`, then promote again"
    evaluations = evaluations_of(conn, name, version)
    matching = [e for e in evaluations if e.baseline_version == production]
    if not matching:
        if not evaluations:
            raise PromotionError(
                f"cannot promote {what} to {to}: it has no evaluation against "
                + (
                    f"the production version {baseline}"
                    if production
                    else "the empty production slot (it would pass at once, but must be recorded)"
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


def previous_production(conn: Connection, name: str, current: str) -> str | None:
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


# -- catalogued versions and errors --------------------------------------------------------
def same_declaration(record: ModelRecord, sha256: str, endpoint: str) -> ModelRecord:
    """``record``, if it is the catalogued version that ``sha256`` declares again.

    Raises:
        ModelError: ``record`` is a trained (stored) version.
        ModelIntegrityError: It is catalogued with another sha256.
    """
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


def served_not_promoted(name: str, refused: str) -> PromotionError:
    """The error refusing ``refused`` (a promotion or rollback) of catalogued ``name``."""
    return PromotionError(
        f"{refused}: {name} is catalogued, served as declared in the models config, and "
        "the config, not promotion or rollback, decides which version serves",
        hint=f"declare the version of {name} to serve in the models config; it becomes "
        "production when a process starts with it",
    )


def not_found(name: str, version: str | None) -> ModelNotFoundError:
    """The error for a missing ``name@version`` (its production version if None)."""
    what = f"{name}@{version}" if version else f"a production version of {name!r}"
    return ModelNotFoundError(
        f"no model {what} in the registry",
        hint="list models with `sluice models list`; train one with `sluice models train`",
    )
