"""The audit log in the real databases: append, triggers, concurrent appenders, verify."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from sluice.config import Settings
from sluice.governance import (
    AuditEvent,
    append,
    checkpoint,
    load_signing_key,
    verify,
)
from sluice.store import open_store


@pytest.fixture
def store(settings: Settings):
    s = open_store(settings)
    yield s
    s.dispose()


def _append(store, n: int, actor: str = "test") -> None:
    with store.begin() as conn:
        append(conn, [AuditEvent(actor, "item.created", f"itm_{i}", {"i": i}) for i in range(n)])


def test_appended_entries_verify_and_a_checkpoint_seals_them(store, settings: Settings) -> None:
    key = load_signing_key(settings.home / "keys" / "audit.pem")
    _append(store, 10)
    entry = checkpoint(store, key, actor="test")
    assert entry is not None and entry.seq == 11
    assert checkpoint(store, key, actor="test") is None, "nothing new to seal"
    _append(store, 3)
    report = verify(store, [key.public_key()])
    assert report.ok and report.entries == 14
    assert report.sealed_through == 10 and report.unsealed == 4


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2",
        "DELETE FROM audit_log WHERE seq = 2",
    ],
)
def test_the_database_refuses_to_change_or_delete_entries(store, statement: str) -> None:
    _append(store, 3)
    with pytest.raises(DBAPIError, match="append-only"), store.begin() as conn:
        conn.execute(text(statement))
    assert verify(store).ok


@pytest.mark.postgres
def test_postgres_refuses_truncate(postgres_settings: Settings) -> None:
    store = open_store(postgres_settings)
    try:
        _append(store, 2)
        with pytest.raises(DBAPIError, match="append-only"), store.begin() as conn:
            conn.execute(text("TRUNCATE audit_log"))
    finally:
        store.dispose()


def test_tampering_behind_the_triggers_back_is_found(store) -> None:
    _append(store, 5)
    with store.begin() as conn:  # an administrator who drops the guard first
        if store.dialect == "postgresql":
            conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
        else:
            conn.execute(text("DROP TRIGGER audit_log_no_update"))
        conn.execute(text("UPDATE audit_log SET details = :d WHERE seq = 3"), {"d": '{"i":99}'})
    report = verify(store)
    assert not report.ok and report.first_break is not None
    assert report.first_break.seq == 3 and report.first_break.kind == "modified"


def test_concurrent_appenders_build_one_unbroken_chain(store) -> None:
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            for _ in range(15):
                _append(store, 3, actor=name)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    report = verify(store)
    assert report.ok and report.entries == 4 * 15 * 3
