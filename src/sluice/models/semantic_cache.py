"""The semantic cache for LLM replies: a near-identical question gets the cached answer.

Off by default (``[routes.X.cache] semantic = true`` turns it on for a route). A question
is embedded with the local encoder; a cached reply is returned only when a question
asked before, *to the same model version with the same system prompt and parameters*,
has cosine similarity at or above the route's ``semantic_threshold``. The default
threshold (0.97) was chosen on the paraphrase / near-miss set shipped in
``sluice/models/data/semantic_cache_pairs.jsonl``: at it, no near-miss question
("reset my password" vs "reset my PIN") was answered from the cache (see
``docs/models.md`` and ``bench.gateway`` for the counts). A wrong cached answer is worse
than a slow right one, so the threshold is strict.

Example:
    >>> cache = SemanticCache(response_cache, embed)  # doctest: +SKIP
    >>> cache.lookup("smollm@abc:sys=..", "How do I reset my password?", 0.97)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import select

from sluice.models.gateway_tables import model_cache
from sluice.models.providers.base import Floats
from sluice.models.response_cache import ResponseCache, cache_key, normalize_text
from sluice.store import utcnow

__all__ = ["SemanticCache", "SemanticHit", "semantic_scope"]

_MAX_PER_SCOPE = 20_000
_REFRESH_S = 5.0


def semantic_scope(
    model_ref: str, context: Sequence[Any], encoder_ref: str, params: Mapping[str, Any]
) -> str:
    """The scope inside which questions may answer each other.

    Same model version, same conversation before the question, same parameters, and
    the same encoder version: questions are compared as vectors of one encoder, so a
    new encoder version starts an empty scope rather than compare across vector spaces.
    """
    digest = cache_key("semantic-scope", model_ref, [list(context), encoder_ref], params)
    return f"{model_ref}:{digest[:24]}"


@dataclass(frozen=True)
class SemanticHit:
    """A cached value and how similar its question was to the one asked now."""

    value: bytes
    similarity: float


class SemanticCache:
    """Nearest cached question per scope, above a threshold (module docs).

    Args:
        cache: The response cache whose table holds the entries (kind ``semantic``).
        embed: Texts to L2-normalized vectors (the local encoder through the gateway).
    """

    def __init__(self, cache: ResponseCache, embed: Callable[[Sequence[str]], Floats]) -> None:
        self.cache = cache
        self.embed = embed
        self._scopes: dict[str, tuple[float, Floats, list[bytes]]] = {}
        self._lock = threading.Lock()

    def _load(self, scope: str) -> tuple[Floats, list[bytes]]:
        with self._lock:
            cached = self._scopes.get(scope)
            if cached is not None and time.monotonic() - cached[0] < _REFRESH_S:
                return cached[1], cached[2]
        now = utcnow()
        with self.cache.store.read() as conn:
            rows = conn.execute(
                select(model_cache.c.vector, model_cache.c.value)
                .where(
                    model_cache.c.kind == "semantic",
                    model_cache.c.scope == scope,
                    model_cache.c.expires_at > now,
                )
                .order_by(model_cache.c.created_at.desc())
                .limit(_MAX_PER_SCOPE)
            ).all()
        vectors = (
            np.vstack([np.frombuffer(r.vector, dtype=np.float32) for r in rows])
            if rows
            else np.zeros((0, 1), dtype=np.float32)
        )
        values = [bytes(r.value) for r in rows]
        with self._lock:
            self._scopes[scope] = (time.monotonic(), vectors, values)
        return vectors, values

    def lookup(self, scope: str, question: str, threshold: float) -> SemanticHit | None:
        """The cached value of the most similar question, if it reaches ``threshold``."""
        vectors, values = self._load(scope)
        if not values:
            return None
        query = self.embed([normalize_text(question)])[0]
        scores = vectors @ query
        best = int(np.argmax(scores))
        if float(scores[best]) < threshold:
            return None
        return SemanticHit(values[best], float(scores[best]))

    def store(self, scope: str, question: str, value: bytes, *, ttl_s: float) -> None:
        """Remember ``value`` as the answer to ``question`` in ``scope``."""
        text = normalize_text(question)
        vector = self.embed([text])[0].astype(np.float32)
        now = utcnow()
        key = hashlib.sha256(f"semantic\x00{scope}\x00{text}".encode()).hexdigest()
        self.cache._insert(
            [
                {
                    "key": key,
                    "kind": "semantic",
                    "scope": scope[:300],
                    "value": value,
                    "vector": vector.tobytes(),
                    "created_at": now,
                    "expires_at": now + timedelta(seconds=ttl_s),
                    "last_used_at": now,
                    "hits": 0,
                }
            ]
        )
        with self._lock:
            self._scopes.pop(scope, None)
