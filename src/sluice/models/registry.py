"""The model registry: versioned artifacts with their cards, kept in the store.

Every model Sluice runs is a row here: name, version, kind, the artifact bytes, their
sha256 and a *card* (training-data hash, code version, metrics, thresholds). Workers on
any host load the same bytes by name and version and verify the hash before use; a copy
is cached under ``SLUICE_HOME/models/<name>/<version>/``.

Stages: the first version of a name becomes ``production``; later versions are
registered as ``candidate`` unless promoted explicitly.

Example:
    >>> registry = ModelRegistry(store)  # doctest: +SKIP
    >>> record = registry.register("support-intent", "classifier", blob, card)  # doctest: +SKIP
    >>> registry.production("support-intent").version  # doctest: +SKIP
    '1'
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, func, select, update

from sluice.errors import ModelIntegrityError, ModelNotFoundError
from sluice.governance import AuditEvent, append
from sluice.models.tables import model_versions
from sluice.store import Store, utcnow

__all__ = ["ModelRecord", "ModelRef", "ModelRegistry", "Stage"]

Stage = Literal["candidate", "production", "retired"]


@dataclass(frozen=True)
class ModelRef:
    """A model by name and version, as recorded in lineage.

    >>> str(ModelRef("support-intent", "3"))
    'support-intent@3'
    """

    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class ModelRecord:
    """A registered model version (without its artifact bytes)."""

    name: str
    version: str
    kind: str
    sha256: str
    card: Mapping[str, Any]
    stage: Stage
    created_by: str
    created_at: datetime

    @property
    def ref(self) -> ModelRef:
        """This version's :class:`ModelRef`."""
        return ModelRef(self.name, self.version)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``sluice models list --json``)."""
        return {
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "sha256": self.sha256,
            "stage": self.stage,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "card": dict(self.card),
        }


_COLUMNS = [c for c in model_versions.c if c.name != "artifact"]


def _record(row: Any) -> ModelRecord:
    return ModelRecord(
        name=row.name,
        version=row.version,
        kind=row.kind,
        sha256=row.sha256,
        card=row.card,
        stage=row.stage,
        created_by=row.created_by,
        created_at=row.created_at,
    )


class ModelRegistry:
    """Register, look up and load model versions (see module docs)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.cache_dir = store.settings.models_dir

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

        Args:
            name: Model name.
            kind: ``classifier``, ``encoder`` ...
            artifact: The serialized model.
            card: Provenance and metrics (must be JSON-serializable).
            created_by: Who registered it.
            promote: True: make it the production version; False: never (a candidate);
                None (default): only if there is no production version yet.
        """
        digest = hashlib.sha256(artifact).hexdigest()
        with self.store.begin() as conn:
            versions = conn.execute(
                select(model_versions.c.version).where(model_versions.c.name == name)
            ).scalars()
            next_version = str(max((int(v) for v in versions if v.isdigit()), default=0) + 1)
            has_production = self._production_row(conn, name) is not None
            first = promote is None and not has_production  # the first version serves at once
            stage: Stage = "production" if (promote or first) else "candidate"
            if stage == "production":
                conn.execute(
                    update(model_versions)
                    .where(model_versions.c.name == name, model_versions.c.stage == "production")
                    .values(stage="retired")
                )
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
            append(
                conn,
                [
                    AuditEvent(
                        created_by,
                        "model.registered",
                        f"{name}@{next_version}",
                        {"kind": kind, "sha256": digest, "stage": stage},
                    )
                ],
            )
        return self.get(name, next_version)

    def get(self, name: str, version: str | None = None) -> ModelRecord:
        """The record of ``name@version``, or of the production version when omitted.

        Raises:
            ModelNotFoundError: No such model or version.
        """
        with self.store.read() as conn:
            if version is None:
                row = self._production_row(conn, name)
            else:
                row = conn.execute(
                    select(*_COLUMNS).where(
                        model_versions.c.name == name, model_versions.c.version == version
                    )
                ).one_or_none()
        if row is None:
            what = f"{name}@{version}" if version else f"a production version of {name!r}"
            raise ModelNotFoundError(
                f"no model {what} in the registry",
                hint="list models with `sluice models list`; train one with `sluice models train`",
            )
        return _record(row)

    def production(self, name: str) -> ModelRecord:
        """The production version of ``name``."""
        return self.get(name)

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
            return [_record(r) for r in conn.execute(query)]

    def artifact_path(self, name: str, version: str) -> Path:
        """A verified local copy of the artifact bytes (cached under ``SLUICE_HOME``)."""
        record = self.get(name, version)
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

    @staticmethod
    def _production_row(conn: Connection, name: str) -> Any:
        return conn.execute(
            select(*_COLUMNS).where(
                model_versions.c.name == name, model_versions.c.stage == "production"
            )
        ).one_or_none()
