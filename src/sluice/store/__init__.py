"""The store: one SQLAlchemy engine over SQLite (default) or PostgreSQL, and one migration history.

Each plane declares its own tables (``execution/tables.py``, ``review/tables.py`` ...)
on the shared :data:`metadata`; this package knows how to connect and migrate, nothing
about what the tables mean.

Example:
    >>> from sluice.config import Settings
    >>> store = open_store(Settings(home="/tmp/sluice-doc"))  # doctest: +SKIP
    >>> with store.begin() as conn:  # doctest: +SKIP
    ...     conn.execute(...)
"""

from sluice.store._engine import Store, open_store, redact_url
from sluice.store._types import JSONType, UTCDateTime, new_id, utcnow
from sluice.store.base import metadata

__all__ = [
    "JSONType",
    "Store",
    "UTCDateTime",
    "metadata",
    "new_id",
    "open_store",
    "redact_url",
    "utcnow",
]
