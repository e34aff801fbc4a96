import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, MetaData, Table, select, text

import sluice.execution.tables
import sluice.governance.tables
import sluice.knowledge.tables
import sluice.models.gateway_tables
import sluice.models.tables
import sluice.review.tables  # noqa: F401
from sluice.config import Settings
from sluice.errors import StoreError
from sluice.store import UTCDateTime, metadata, new_id, open_store
from sluice.store.migrate import current_revision, head_revision


def test_migrations_build_exactly_the_declared_tables(settings: Settings) -> None:
    store = open_store(settings)
    try:
        assert current_revision(store) == head_revision()
        declared = metadata
        if store.dialect == "postgresql":
            # Tables that exist on PostgreSQL only (the knowledge base's postings).
            from sluice.knowledge.keyword_postgres import postings_metadata

            declared = MetaData(naming_convention=metadata.naming_convention)
            for table in [*metadata.sorted_tables, *postings_metadata.sorted_tables]:
                table.to_metadata(declared)
        with store.engine.connect() as conn:
            ctx = MigrationContext.configure(conn)
            ours = {t.name for t in declared.sorted_tables}
            diff = [
                d
                for d in compare_metadata(ctx, declared)
                # DBOS's own tables share the database; they are not ours to compare.
                if not (d[0] == "remove_table" and d[1].name not in ours)
            ]
        assert diff == []
    finally:
        store.dispose()


def test_opening_twice_is_a_no_op(settings: Settings) -> None:
    open_store(settings).dispose()
    store = open_store(settings)
    assert current_revision(store) == head_revision()
    store.dispose()


def test_a_store_from_a_newer_sluice_is_refused(sqlite_settings: Settings) -> None:
    store = open_store(sqlite_settings)
    with store.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    store.dispose()
    with pytest.raises(StoreError, match="newer than this Sluice knows"):
        open_store(sqlite_settings)


def test_without_migrate_an_empty_store_names_the_command(sqlite_settings: Settings) -> None:
    with pytest.raises(StoreError, match="expected") as info:
        open_store(sqlite_settings, migrate=False)
    assert info.value.hint and "sluice init" in info.value.hint


def test_unreachable_postgres_is_a_clear_store_error(tmp_path) -> None:
    settings = Settings(home=tmp_path, database_url="postgresql://nobody:secret@127.0.0.1:1/x")
    with pytest.raises(StoreError, match="cannot open the store") as info:
        open_store(settings)
    assert "secret" not in str(info.value), "passwords never reach messages"


def test_sqlite_store_runs_in_wal_mode(sqlite_settings: Settings) -> None:
    store = open_store(sqlite_settings)
    with store.read() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
    store.dispose()


def test_timestamps_come_back_aware_in_utc(settings: Settings) -> None:
    store = open_store(settings)
    table = Table("t_times", MetaData(), Column("at", UTCDateTime()))
    table.create(store.engine)
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with store.begin() as conn:
        conn.execute(table.insert().values(at=moment))
    with store.read() as conn:
        assert conn.execute(select(table.c.at)).scalar_one() == moment
    with pytest.raises(Exception, match="naive datetime"), store.begin() as conn:
        conn.execute(table.insert().values(at=datetime(2026, 1, 1)))
    store.dispose()


def test_a_read_sees_one_snapshot_whatever_commits_meanwhile(settings: Settings) -> None:
    store = open_store(settings)
    table = Table("t_counter", MetaData(), Column("n", sa.Integer))
    table.create(store.engine)
    with store.begin() as conn:
        conn.execute(table.insert().values(n=1))
    try:
        with store.read() as reader:
            assert reader.execute(select(table.c.n)).scalar_one() == 1
            with store.begin() as writer:  # another connection commits meanwhile
                writer.execute(table.update().values(n=2))
            # PostgreSQL's READ COMMITTED would show 2 here: a mixture of two commits.
            assert reader.execute(select(table.c.n)).scalar_one() == 1
        with store.read() as reader:
            assert reader.execute(select(table.c.n)).scalar_one() == 2
    finally:
        store.dispose()


@pytest.mark.postgres
def test_reads_on_postgres_are_repeatable_and_read_only(postgres_settings: Settings) -> None:
    store = open_store(postgres_settings)
    try:
        with store.read() as conn:
            level = conn.execute(text("SHOW transaction_isolation")).scalar()
            read_only = conn.execute(text("SHOW transaction_read_only")).scalar()
        assert (level, read_only) == ("repeatable read", "on")
        with (
            pytest.raises(sa.exc.InternalError, match="read-only transaction"),
            store.read() as conn,
        ):
            conn.execute(text("CREATE TABLE t_nope (n integer)"))
        # The pooled connection is back to the defaults for writers.
        with store.begin() as conn:
            level = conn.execute(text("SHOW transaction_isolation")).scalar()
            read_only = conn.execute(text("SHOW transaction_read_only")).scalar()
        assert (level, read_only) == ("read committed", "off")
    finally:
        store.dispose()


def test_ids_are_unique_and_sort_by_creation_time() -> None:
    first = [new_id("itm") for _ in range(1000)]
    time.sleep(0.002)
    later = new_id("itm")
    assert len(set(first)) == 1000
    assert all(i.startswith("itm_") and len(i) == 30 for i in first)
    assert max(first) < later


def test_a_store_at_an_older_revision_is_upgraded_with_its_data(settings: Settings) -> None:
    from alembic import command

    from sluice.store._engine import _make_engine
    from sluice.store.migrate import _config

    engine = _make_engine(settings)
    with engine.begin() as conn:
        config = _config()
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        # The table as revision 0001 had it (no `round`), written through its types.
        old_items = sa.table(
            "work_items",
            *(sa.column(n) for n in ("id", "pipeline", "source", "event_id", "type")),
            *(sa.column(n) for n in ("data", "priority", "status")),
            sa.column("created_at", UTCDateTime()),
            sa.column("updated_at", UTCDateTime()),
        )
        now = datetime.now(UTC)
        conn.execute(
            old_items.insert().values(
                id="itm_old",
                pipeline="p",
                source="s",
                event_id="e",
                type="t",
                data="{}",
                priority=2,
                status="completed",
                created_at=now,
                updated_at=now,
            )
        )
    engine.dispose()
    store = open_store(settings)
    try:
        assert current_revision(store) == head_revision()
        with store.read() as conn:
            assert conn.execute(text("SELECT round FROM work_items")).scalar_one() == 0
    finally:
        store.dispose()
