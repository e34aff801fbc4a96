"""Schema migrations: one Alembic history for the whole store, run from code.

Workers, the CLI and the API call :func:`ensure_schema` when they open the store, so a
fresh ``SLUICE_HOME`` needs no separate setup step. Concurrent starters are safe: on
PostgreSQL an advisory lock serializes them, on SQLite the write lock does.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from sluice.errors import StoreError

__all__ = ["current_revision", "ensure_schema", "head_revision"]

_SCRIPTS = Path(__file__).with_name("migrations")
# Arbitrary constant naming Sluice's migration lock among other advisory locks.
_ADVISORY_LOCK_KEY = 0x51_1C_E0_01


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


def head_revision() -> str:
    """The newest revision this version of Sluice knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(store: object) -> str | None:
    """The revision the store's schema is at (None for an empty database)."""
    from sluice.store._engine import Store

    assert isinstance(store, Store)
    with store.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def ensure_schema(store: object, *, upgrade: bool = True) -> None:
    """Bring the schema to :func:`head_revision`, or check that it is there.

    Raises:
        StoreError: ``upgrade`` is false and the schema is behind, or the store is at a
            revision newer than this Sluice knows.
    """
    from sluice.store._engine import Store

    assert isinstance(store, Store)
    head = head_revision()
    current = current_revision(store)
    if current == head:
        return
    known = {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}
    if current is not None and current not in known:
        raise StoreError(
            f"the store is at schema revision {current}, newer than this Sluice knows",
            hint="upgrade Sluice to the version that wrote this store",
        )
    if not upgrade:
        raise StoreError(
            f"the store's schema is at {current or 'nothing'}, expected {head}",
            hint="run `sluice init` to migrate it",
        )
    with store.begin() as conn:
        if store.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK_KEY})
        config = _config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
