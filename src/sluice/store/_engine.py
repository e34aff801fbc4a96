"""Connecting to the store: engine options per backend and transaction helpers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import OperationalError

from sluice.config import Settings
from sluice.errors import StoreError

__all__ = ["Store", "open_store", "redact_url", "sqlalchemy_url"]

# Why these pragmas: in rollback-journal mode every commit costs ~20 ms of fsyncs on this
# kind of machine; WAL with synchronous=NORMAL is durable against process crashes (the
# failure the runtime must survive) and brings a commit to ~1-2 ms. A power loss may lose
# the last transactions but never corrupts the file. busy_timeout lets a writer wait for
# another process's write instead of failing at once (workers, CLI and API share the file).
_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=30000",
    "PRAGMA foreign_keys=ON",
)


def sqlalchemy_url(url: str) -> str:
    """Normalize a user-facing URL to the driver Sluice uses (psycopg 3 for PostgreSQL).

    >>> sqlalchemy_url("postgresql://postgres@127.0.0.1:5432/test")
    'postgresql+psycopg://postgres@127.0.0.1:5432/test'
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Store:
    """An engine plus the transaction discipline Sluice relies on.

    Use :meth:`begin` for anything that writes and :meth:`read` for read-only work. On
    SQLite, :meth:`begin` takes the write lock up front (``BEGIN IMMEDIATE``) so two
    writers queue on the busy timeout instead of failing half-way with "database is
    locked" when a read lock cannot be upgraded.

    Example:
        >>> store = open_store(Settings(home="/tmp/sluice-doc"))  # doctest: +SKIP
        >>> with store.begin() as conn:  # doctest: +SKIP
        ...     conn.execute(work_items.insert().values(...))
    """

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        # SQLite has one writer at a time. Threads of this process queue here, in order,
        # instead of in SQLite's busy handler, which sleeps in growing steps (up to
        # 100 ms) and turned a 2 ms claim into 90 ms under load. Other processes (and
        # DBOS's own connections) still meet the busy timeout.
        self._write_lock = threading.Lock() if engine.dialect.name == "sqlite" else None

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back on any exception."""
        with self._write_lock or nullcontext(), self.engine.connect() as conn:
            conn.execution_options(sluice_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction: one consistent snapshot on both backends.

        On SQLite (WAL) a transaction reads one snapshot by nature. PostgreSQL's default,
        READ COMMITTED, takes a new snapshot per statement, so a reader could combine
        rows of different commits (a version's statistics from one, its chunks from
        the next); reads there run REPEATABLE READ (one snapshot for the whole
        transaction) and READ ONLY (a write through a read connection fails instead of
        committing). Both settings are reset when the connection returns to the pool.
        """
        with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        """Close every pooled connection (call before a process forks or exits)."""
        self.engine.dispose()


def _make_engine(settings: Settings) -> Engine:
    url = sqlalchemy_url(settings.resolved_database_url())
    if url.startswith("sqlite"):
        settings.home.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _install_sqlite_discipline(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def _install_sqlite_discipline(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself (pysqlite otherwise
        # begins lazily and in DEFERRED mode only).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("sluice_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def open_store(settings: Settings, *, migrate: bool = True) -> Store:
    """Connect to the configured store and bring its schema to the latest revision.

    Args:
        settings: Where the store is.
        migrate: Apply pending migrations (default). With ``False`` the schema is
            checked and a :class:`~sluice.errors.StoreError` names the command to run.

    Raises:
        StoreError: The database is unreachable, or out of date with ``migrate=False``.
    """
    from sluice.store.migrate import ensure_schema

    engine = _make_engine(settings)
    store = Store(engine, settings)
    try:
        ensure_schema(store, upgrade=migrate)
    except OperationalError as exc:
        engine.dispose()
        raise StoreError(
            f"cannot open the store at {redact_url(settings.resolved_database_url())}: {exc.orig}",
            hint="check SLUICE_DATABASE_URL and that the database server is running",
        ) from exc
    return store


def redact_url(url: str) -> str:
    """Hide a password in a URL before it reaches a message or a log."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            creds = creds.split(":", 1)[0] + ":***"
        return f"{scheme}://{creds}@{host}"
    return url
