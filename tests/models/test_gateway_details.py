"""Gateway details that a review found wanting: cache expiry, secrets in URLs, stale reads.

Each test is the smallest real situation that broke before the fix: an expired row left
in the store, a base URL carrying a key, a promotion landing while a serving read was in
flight.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from sluice.models.endpoints import catalogue_entry
from sluice.models.gateway_config import load_gateway_config
from sluice.models.gateway_tables import model_cache
from sluice.models.providers.base import public_url
from sluice.models.response_cache import ResponseCache
from sluice.models.serving import ServingVersions
from sluice.store import utcnow


def test_an_expired_entry_is_replaced_not_kept_forever(runtime: Any) -> None:
    cache = ResponseCache(runtime.store, memory_entries=0)
    cache.put_many("chat", "m@1", {"k": b"old"}, ttl_s=60)
    with runtime.store.begin() as conn:  # the entry's time runs out; prune() has not run
        conn.execute(update(model_cache).values(expires_at=utcnow()))
    assert cache.get_many(["k"]) == {}
    cache.put_many("chat", "m@1", {"k": b"new"}, ttl_s=60)
    assert cache.get_many(["k"]) == {"k": b"new"}
    with runtime.store.read() as conn:
        assert [bytes(r.value) for r in conn.execute(select(model_cache.c.value))] == [b"new"]


def test_a_live_entry_is_kept_when_the_same_key_is_written_again(runtime: Any) -> None:
    cache = ResponseCache(runtime.store, memory_entries=0)
    cache.put_many("chat", "m@1", {"k": b"first"}, ttl_s=60)
    cache.put_many("chat", "m@1", {"k": b"second"}, ttl_s=60)
    assert cache.get_many(["k"]) == {"k": b"first"}


def test_credentials_in_a_base_url_never_reach_the_registry() -> None:
    assert public_url("https://bob:s3cret@llm.example.com/v1?api-key=k#frag") == (
        "https://llm.example.com/v1"
    )
    assert public_url("http://[::1]:8080/v1") == "http://[::1]:8080/v1"
    config = load_gateway_config(
        None,
        overrides={
            "endpoints": {
                "vendor": {
                    "provider": "openai",
                    "base_url": "https://bob:s3cret@llm.example.com/v1?api-key=k",
                    "model": "big",
                    "version": "2026-11",
                }
            }
        },
    )

    class Served:  # what catalogue_entry reads of an HTTP provider: its name and version
        model = "big"
        version = "2026-11"

    entry = catalogue_entry("vendor", config.endpoints["vendor"], Served())
    shown = repr(entry)
    assert "s3cret" not in shown and "api-key" not in shown and "bob" not in shown
    assert entry.endpoint == "https://llm.example.com/v1#big"


class _PromotedDuringRead:
    """A real registry, with a promotion landing while a serving read is in flight."""

    def __init__(self, registry: Any, serving: ServingVersions, promote: Any) -> None:
        self._registry = registry
        self._serving = serving
        self._promote = promote
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._registry, name)

    def serving(self, model: str) -> Any:
        self.reads += 1
        before = self._registry.serving(model)
        if self.reads == 1:
            self._promote()
            self._serving.refresh()  # another thread saw the epoch move meanwhile
        return before


def test_a_read_that_overlaps_a_promotion_is_not_cached(runtime: Any, intent_model: Any) -> None:
    settings = runtime.settings.model_copy(update={"model_refresh_seconds": 3600.0})
    serving = ServingVersions(settings, runtime.models)
    blob = runtime.models.artifact_path(intent_model.name, intent_model.version).read_bytes()

    def promote() -> None:
        record = runtime.models.register(
            intent_model.name, "classifier", blob, intent_model.card, promote=True
        )
        assert record.version != intent_model.version

    racing = _PromotedDuringRead(runtime.models, serving, promote)
    serving.registry = racing
    first = serving.versions(intent_model.name)
    assert first[0] == intent_model.version  # the answer from before the promotion...
    second = serving.versions(intent_model.name)
    assert racing.reads == 2, "...was not cached past the refresh, so it is read again"
    assert second[0] != intent_model.version
