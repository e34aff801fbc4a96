"""The exact-match result cache: in memory first, then in the store, with TTL and bounds.

A key is the sha256 of (kind, model name, version, normalized input, parameters), so a
result is only ever reused for the same model version and the same parameters: a new
version or a rollback starts from an empty cache for its calls, and nothing has to be
invalidated by hand. Entries expire after the route's TTL; past ``max_entries`` the
least recently used are deleted. The store copy is shared by every process on every
host; each process keeps its own small LRU in front of it.

Example:
    >>> key = cache_key("embedding", "minilm-l6-int8@1", normalize_text("  Hello   world "))
    >>> len(key)
    64
"""

from __future__ import annotations

import hashlib
import json
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
    """

    def __init__(
        self,
        store: Store,
        *,
        max_entries: int = 200_000,
        memory_entries: int = 20_000,
        prune_every: int = 1000,
    ) -> None:
        self.store = store
        self.max_entries = max_entries
        self.memory_entries = memory_entries
        self.prune_every = prune_every
        self._memory: OrderedDict[str, tuple[bytes, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._writes = 0

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The cached values of those keys that are present and unexpired."""
        now = utcnow()
        found: dict[str, bytes] = {}
        missing = []
        with self._lock:
            for key in keys:
                entry = self._memory.get(key)
                if entry is not None and entry[1] > now:
                    self._memory.move_to_end(key)
                    found[key] = entry[0]
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
            with self.store.begin() as conn:
                conn.execute(
                    update(model_cache)
                    .where(model_cache.c.key.in_(list(from_store)))
                    .values(last_used_at=now, hits=model_cache.c.hits + 1)
                )
            self._remember(from_store)
            found.update({k: v[0] for k, v in from_store.items()})
        return found

    def put_many(self, kind: str, scope: str, values: Mapping[str, bytes], *, ttl_s: float) -> None:
        """Store ``values`` (key to bytes) for ``ttl_s`` seconds; existing keys are kept."""
        if not values:
            return
        now = utcnow()
        expires = now + timedelta(seconds=ttl_s)
        rows = [
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
        self._insert(rows)
        self._remember({k: (v, expires) for k, v in values.items()})

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        from sluice.models._sql import insert_ignore

        with self.store.begin() as conn:
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
        """Forget the in-process copies (the store keeps its entries)."""
        with self._lock:
            self._memory.clear()

    def count(self) -> int:
        """Entries in the store."""
        with self.store.read() as conn:
            return int(conn.execute(select(func.count()).select_from(model_cache)).scalar_one())
