"""The response cache keeps writes off a call's path: hits read, misses are written behind.

What the cache sends to the store is observed with SQLAlchemy's own statement events on
the real store, on each backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, select

from sluice.models.gateway_tables import model_cache
from sluice.models.response_cache import ResponseCache


@contextmanager
def _statements(store: Any) -> Iterator[list[str]]:
    """The SQL statements the store runs meanwhile, first word upper-cased."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", record)


def _rows(store: Any) -> dict[str, tuple[bytes, int]]:
    with store.read() as conn:
        rows = conn.execute(select(model_cache.c.key, model_cache.c.value, model_cache.c.hits))
        return {r.key: (bytes(r.value), r.hits) for r in rows}


def test_a_hit_from_the_store_is_a_read_and_its_count_is_written_later(runtime: Any) -> None:
    cache = ResponseCache(runtime.store, memory_entries=0)
    try:
        cache.put_many("embedding", "m@1", {"a": b"1", "b": b"2"}, ttl_s=60)
        with _statements(runtime.store) as seen:
            assert cache.get_many(["a", "b", "c"]) == {"a": b"1", "b": b"2"}
            assert cache.get_many(["a"]) == {"a": b"1"}
        assert "SELECT" in seen and not {"INSERT", "UPDATE", "DELETE"} & set(seen), seen
        assert _rows(runtime.store) == {"a": (b"1", 0), "b": (b"2", 0)}
        cache.flush()  # what the writer thread does within flush_interval_s
        assert _rows(runtime.store) == {"a": (b"1", 2), "b": (b"2", 1)}
    finally:
        cache.close()


def test_an_entry_written_behind_is_answered_at_once_and_stored_by_the_writer(
    runtime: Any,
) -> None:
    cache = ResponseCache(runtime.store, memory_entries=0, write_behind=True)
    try:
        with _statements(runtime.store) as seen:
            cache.put_many("embedding", "m@1", {"k": b"v"}, ttl_s=60)
        assert seen == [], "the caller wrote nothing"
        assert cache.get_many(["k"]) == {"k": b"v"}  # from the entries not yet written
        cache.flush()
        assert _rows(runtime.store) == {"k": (b"v", 0)}
        # Another process (another cache on the same store) reads it from the store.
        other = ResponseCache(runtime.store)
        assert other.get_many(["k"]) == {"k": b"v"}
        other.close()
    finally:
        cache.close()


def test_close_writes_what_is_pending_and_a_full_backlog_is_written_by_the_caller(
    runtime: Any,
) -> None:
    cache = ResponseCache(runtime.store, write_behind=True, max_pending=3, flush_interval_s=60)
    cache.put_many("embedding", "m@1", {"a": b"1", "b": b"2"}, ttl_s=60)
    assert _rows(runtime.store) == {}
    with _statements(runtime.store) as seen:
        cache.put_many("embedding", "m@1", {"c": b"3"}, ttl_s=60)  # the third: bound reached
    assert "INSERT" in seen
    assert set(_rows(runtime.store)) == {"a", "b", "c"}
    cache.put_many("embedding", "m@1", {"d": b"4"}, ttl_s=60)
    cache.close()
    assert set(_rows(runtime.store)) == {"a", "b", "c", "d"}
