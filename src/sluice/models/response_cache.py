"""The exact-match result cache: in memory first, then in the store, with TTL and bounds.

A key is the sha256 of (kind, model name, version, normalized input, parameters), so a
result is only ever reused for the same model version and the same parameters: a new
version or a rollback starts from an empty cache for its calls, and nothing has to be
invalidated by hand. Entries expire after the route's TTL; past ``max_entries`` the
least recently used are deleted. The store copy is shared by every process on every
host; each process keeps its own small LRU in front of it.

A hit read from the store is a read only: its bookkeeping (``last_used_at`` and
``hits``, which the LRU bound reads) is written in bulk by a background thread within
``flush_interval_s``. With ``write_behind`` (the gateway's cache), no call waits for
new entries either: they are answered from memory at once and written by that thread;
at most ``max_pending`` wait for it (past that, the caller writes them itself), and
those not yet written when a process dies are lost, which costs a later miss.

Example:
    >>> key = cache_key("embedding", "minilm-l6-int8@1", normalize_text("  Hello   world "))
    >>> len(key)
    64
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select, update

from sluice.models.gateway_tables import model_cache
from sluice.store import Store, utcnow

__all__ = ["ResponseCache", "cache_key", "normalize_text"]

log = logging.getLogger("sluice.models")

_IN_CHUNK = 500


def normalize_text(text: str) -> str:
    """NFC, whitespace runs collapsed to one space, ends stripped.

    Only changes that cannot change a model's answer: the encoder's tokenizer splits on
    whitespace anyway, and case is kept because LLMs read it.
    """
    return " ".join(unicodedata.normalize("NFC", text).split())


def cache_key(
    kind: str, model_ref: str, payload: Any, params: Mapping[str, Any] | None = None
) -> str:
    """The sha256 key of one cached result."""
    body = json.dumps(
        [kind, model_ref, payload, dict(params or {})],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(body.encode()).hexdigest()


class ResponseCache:
    """Two levels: a per-process LRU and the ``model_cache`` table (module docs).

    Args:
        store: The store.
        max_entries: Bound of the table; the least recently used beyond it are deleted.
        memory_entries: Bound of the in-process LRU (0 turns it off).
        prune_every: Writes between two prunes.
        write_behind: Write new entries from the background thread (False: in
            :meth:`put_many`).
        flush_interval_s: Longest a hit's bookkeeping, or a new entry written behind,
            waits for its write.
        max_pending: New entries written behind that may wait at most; past it,
            :meth:`put_many` writes them on the caller's thread.
    """

    def __init__(
        self,
        store: Store,
        *,
        max_entries: int = 200_000,
        memory_entries: int = 20_000,
        prune_every: int = 1000,
        write_behind: bool = False,
        flush_interval_s: float = 0.2,
        max_pending: int = 5000,
    ) -> None:
        self.store = store
        self.max_entries = max_entries
        self.memory_entries = memory_entries
        self.prune_every = prune_every
        self.write_behind = write_behind
        self.flush_interval_s = flush_interval_s
        self.max_pending = max_pending
        self._memory: OrderedDict[str, tuple[bytes, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._writes = 0
        # Rows not in the store yet (answered from here meanwhile), and the hits read
        # from the store whose bookkeeping is not written yet: key to hit count.
        self._unwritten: dict[str, dict[str, Any]] = {}
        self._touched: dict[str, int] = {}
        self._flushing = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._writer: threading.Thread | None = None

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The cached values of those keys that are present and unexpired."""
        now = utcnow()
        found: dict[str, bytes] = {}
        missing = []
        with self._lock:
            for key in keys:
                entry = self._memory.get(key)
                unwritten = self._unwritten.get(key) if entry is None else None
                if entry is not None and entry[1] > now:
                    self._memory.move_to_end(key)
                    found[key] = entry[0]
                elif unwritten is not None and unwritten["expires_at"] > now:
                    found[key] = unwritten["value"]  # not in the store yet
                else:
                    missing.append(key)
        if not missing:
            return found
        from_store: dict[str, tuple[bytes, Any]] = {}
        with self.store.read() as conn:
            for start in range(0, len(missing), _IN_CHUNK):
                chunk = missing[start : start + _IN_CHUNK]
                for row in conn.execute(
                    select(model_cache.c.key, model_cache.c.value, model_cache.c.expires_at).where(
                        model_cache.c.key.in_(chunk), model_cache.c.expires_at > now
                    )
                ):
                    from_store[row.key] = (bytes(row.value), row.expires_at)
        if from_store:
            with self._lock:  # bookkeeping for the writer: a hit stays a read
                if len(self._touched) < 10 * self.max_pending:
                    for key in from_store:
                        self._touched[key] = self._touched.get(key, 0) + 1
            self._start_writer()
            self._remember(from_store)
            found.update({k: v[0] for k, v in from_store.items()})
        return found

    def put_many(self, kind: str, scope: str, values: Mapping[str, bytes], *, ttl_s: float) -> None:
        """Store ``values`` (key to bytes) for ``ttl_s`` seconds; existing keys are kept."""
        if not values:
            return
        now = utcnow()
        expires = now + timedelta(seconds=ttl_s)
        rows: list[dict[str, Any]] = [
            {
                "key": key,
                "kind": kind,
                "scope": scope[:300],
                "value": value,
                "vector": None,
                "created_at": now,
                "expires_at": expires,
                "last_used_at": now,
                "hits": 0,
            }
            for key, value in values.items()
        ]
        if not self.write_behind:
            self._insert(rows)
            self._remember({k: (v, expires) for k, v in values.items()})
            return
        self._remember({k: (v, expires) for k, v in values.items()})
        with self._lock:
            for row in rows:
                self._unwritten.setdefault(row["key"], row)  # the first value is kept
            full = len(self._unwritten) >= self.max_pending
        if full:
            self.flush()  # the writer is behind: this caller writes, memory stays bounded
        else:
            self._start_writer()

    def _start_writer(self) -> None:
        if self._writer is not None:
            return
        with self._lock:
            if self._writer is None and not self._stopped.is_set():
                self._writer = threading.Thread(
                    target=self._loop, name="sluice-cache-writer", daemon=True
                )
                self._writer.start()

    def _loop(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the store is down: the rows stay pending, retried later
                log.warning("could not write model cache entries; will retry", exc_info=True)

    def flush(self) -> None:
        """Write the pending entries and the hits' bookkeeping to the store now."""
        with self._flushing:
            with self._lock:
                rows = list(self._unwritten.values())
            if rows:
                self._insert(rows)
                with self._lock:
                    for row in rows:
                        if self._unwritten.get(row["key"]) is row:
                            del self._unwritten[row["key"]]
            self._write_touches()

    def _write_touches(self) -> None:
        with self._lock:
            touched, self._touched = self._touched, {}
        if not touched:
            return
        by_count: dict[int, list[str]] = {}
        for key, hits in touched.items():
            by_count.setdefault(hits, []).append(key)
        now = utcnow()
        with self.store.begin() as conn:
            for hits, keys in by_count.items():
                for start in range(0, len(keys), _IN_CHUNK):
                    conn.execute(
                        update(model_cache)
                        .where(model_cache.c.key.in_(keys[start : start + _IN_CHUNK]))
                        .values(last_used_at=now, hits=model_cache.c.hits + hits)
                    )

    def close(self) -> None:
        """Write what is pending and stop the writer thread."""
        self._stopped.set()
        self._wake.set()
        if self._writer is not None:
            self._writer.join(timeout=5)
        try:
            self.flush()
        except Exception:
            log.warning("model cache entries lost at shutdown", exc_info=True)

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        from sluice.models._sql import insert_ignore

        now = utcnow()
        with self.store.begin() as conn:
            # An expired row that prune() has not removed yet would make the insert a
            # no-op and leave the key uncached: replace expired rows, keep live ones.
            keys = [row["key"] for row in rows]
            for start in range(0, len(keys), _IN_CHUNK):
                conn.execute(
                    delete(model_cache).where(
                        model_cache.c.key.in_(keys[start : start + _IN_CHUNK]),
                        model_cache.c.expires_at <= now,
                    )
                )
            conn.execute(insert_ignore(self.store, model_cache), rows)
        with self._lock:
            self._writes += len(rows)
            due = self._writes >= self.prune_every
            if due:
                self._writes = 0
        if due:
            self.prune()

    def _remember(self, values: Mapping[str, tuple[bytes, Any]]) -> None:
        if not self.memory_entries:
            return
        with self._lock:
            for key, entry in values.items():
                self._memory[key] = entry
                self._memory.move_to_end(key)
            while len(self._memory) > self.memory_entries:
                self._memory.popitem(last=False)

    def prune(self) -> int:
        """Delete expired entries and the least recently used beyond ``max_entries``."""
        self._write_touches()  # the LRU order must count the hits read since the last write
        now = utcnow()
        with self.store.begin() as conn:
            removed = conn.execute(
                delete(model_cache).where(model_cache.c.expires_at <= now)
            ).rowcount
            count = conn.execute(select(func.count()).select_from(model_cache)).scalar_one()
            excess = int(count) - self.max_entries
            if excess > 0:
                oldest = (
                    select(model_cache.c.key)
                    .order_by(model_cache.c.last_used_at, model_cache.c.key)
                    .limit(excess)
                    .scalar_subquery()
                )
                removed += conn.execute(
                    delete(model_cache).where(model_cache.c.key.in_(oldest))
                ).rowcount
        return int(removed or 0)

    def clear_memory(self) -> None:
        """Forget the in-process copies (pending entries are written to the store first)."""
        self.flush()
        with self._lock:
            self._memory.clear()

    def count(self) -> int:
        """Entries in the store (pending entries are written first)."""
        self.flush()
        with self.store.read() as conn:
            return int(conn.execute(select(func.count()).select_from(model_cache)).scalar_one())
