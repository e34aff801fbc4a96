"""Small SQL helpers of the model plane."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from sluice.store import Store

__all__ = ["insert_ignore"]


def insert_ignore(store: Store, table: Any) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` for the store's dialect."""
    return (pg_insert if store.dialect == "postgresql" else sqlite_insert)(
        table
    ).on_conflict_do_nothing()
