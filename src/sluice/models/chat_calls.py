"""The gateway's chat attempt at one endpoint: data policy, caches, budget, call, metering.

A mixin of :class:`~sluice.models.gateway.Gateway` (it reads the gateway's endpoints,
caches, budgets and meter), kept apart so that each file stays readable. The order of
one attempt:

1. the endpoint's data policy (:mod:`sluice.models.data_policy`): refuse, or redact
   personal data the endpoint may not receive; nothing below sees the original text;
2. the exact cache, then the semantic cache (greedy calls only);
3. a budget reservation for the worst case, the call under the endpoint's breaker and
   limits, the settlement at the real cost;
4. metering, cache writes, and the tags of redacted data put back in the reply.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sluice.errors import DataPolicyError
from sluice.models.budgets import BudgetLedger, Reservation
from sluice.models.calls import CallRecord, ChatMessage, ChatParams, ChatReply
from sluice.models.data_policy import guard_messages, holds_pii, restore_reply
from sluice.models.endpoints import Endpoint
from sluice.models.gateway_config import EndpointSpec, GatewayConfig, RouteSpec
from sluice.models.metering import Meter
from sluice.models.providers.base import ChatProvider, EmbeddingProvider
from sluice.models.response_cache import ResponseCache, cache_key, normalize_text
from sluice.models.semantic_cache import SemanticCache, semantic_scope

__all__ = ["ChatAttempts"]


class ChatAttempts:
    """One chat attempt at one endpoint (module docs); :class:`Gateway` inherits it."""

    config: GatewayConfig
    meter: Meter
    cache: ResponseCache
    budgets: BudgetLedger
    _endpoints: dict[str, Endpoint]

    if TYPE_CHECKING:  # provided by Gateway; declared here for the type checker only

        def _chat_provider(self, endpoint: str) -> ChatProvider: ...

        def _encoder(self, endpoint: str) -> EmbeddingProvider: ...

        def _timeout(self, route: RouteSpec, endpoint: str) -> float: ...

        def _semantic_cache(self) -> SemanticCache: ...

        def _reserve(
            self,
            task: str,
            tenant: str | None,
            spec: EndpointSpec,
            texts: Sequence[str],
            max_output_tokens: int,
            timeout_s: float,
        ) -> Reservation | None: ...

    def _chat_at(
        self,
        task: str,
        route: RouteSpec,
        endpoint: str,
        fallbacks: tuple[str, ...],
        *,
        messages: list[ChatMessage],
        params: ChatParams,
        call_id: str,
        tenant: str | None,
        tier: int,
        canary_endpoint: str | None,
        sends: Sequence[str],
    ) -> tuple[ChatReply, CallRecord]:
        spec = self.config.endpoints[endpoint]
        # A fallback answering a canary item is not the canary answering.
        canary = endpoint == canary_endpoint
        ep = self._endpoints[endpoint]
        provider = self._chat_provider(endpoint)
        model_ref = f"{provider.model}@{provider.version}"
        policy: dict[str, Any] | None = None

        def record(**extra: Any) -> CallRecord:
            base: dict[str, Any] = {
                "call_id": call_id,
                "task": task,
                "kind": "chat",
                "endpoint": endpoint,
                "model": provider.model,
                "version": provider.version,
                "latency_ms": 0.0,
                "tier": tier,
                "canary": canary,
                "fallbacks": fallbacks,
                "data_policy": policy,
            }
            base.update(extra)
            return CallRecord(**base)

        def meter(**extra: Any) -> None:
            self.meter.call(
                call_id=call_id,
                task=task,
                kind="chat",
                endpoint=endpoint,
                model=provider.model,
                version=provider.version,
                tenant=tenant,
                inputs=1,
                tier=tier,
                canary=canary,
                fallbacks=fallbacks,
                **extra,
            )

        # The data policy comes first, before the caches: nothing below sees what the
        # endpoint may not receive (not even as a cache key). A refusal is metered.
        original = messages
        try:
            guarded = guard_messages(endpoint, spec, messages, sends)
        except DataPolicyError as exc:
            meter(latency_ms=0.0, error=exc)
            raise
        messages, policy = guarded.messages, guarded.decision.to_dict()
        wire = [
            {
                "role": m.role,
                "content": normalize_text(m.content) if m.role != "assistant" else m.content,
            }
            for m in messages
        ]
        cacheable = route.cache.exact and params.temperature == 0
        key = cache_key("chat", model_ref, wire, params.to_dict()) if cacheable else ""
        if cacheable:
            hit = self.cache.get_many([key]).get(key)
            if hit is not None:
                meter(latency_ms=0.0, cache="exact")
                reply = restore_reply(ChatReply.from_dict(json.loads(hit)), guarded.mapping)
                return reply, record(cache="exact")
        scope = ""
        question = ""
        # A near-duplicate question with someone else's name or number in it must not get
        # their answer: the semantic cache serves only conversations without personal
        # data (an exact hit is the same conversation, so it may).
        if (
            route.cache.semantic
            and params.temperature == 0
            and not holds_pii(original, guarded.decision)
        ):
            encoder = self._encoder(self.config.semantic_encoder())
            scope = semantic_scope(
                model_ref, wire[:-1], f"{encoder.model}@{encoder.version}", params.to_dict()
            )
            question = wire[-1]["content"]
            found = self._semantic_cache().lookup(scope, question, route.cache.semantic_threshold)
            if found is not None:
                meter(latency_ms=0.0, cache="semantic")
                cached = ChatReply.from_dict(json.loads(found.value))
                return restore_reply(cached, guarded.mapping), record(cache="semantic")

        timeout = self._timeout(route, endpoint)
        reservation: Reservation | None = None
        t0 = time.perf_counter()
        try:
            reservation = self._reserve(
                task, tenant, spec, [m.content for m in messages], params.max_tokens, timeout
            )
            reply = ep.invoke(lambda t: provider.chat(messages, params, timeout_s=t), timeout)
        except BaseException as exc:
            self.budgets.settle(reservation, 0.0)
            meter(latency_ms=(time.perf_counter() - t0) * 1000, error=exc)
            raise
        latency = (time.perf_counter() - t0) * 1000
        cost = spec.price.cost(
            input_tokens=reply.usage.input_tokens,
            output_tokens=reply.usage.output_tokens,
            seconds=latency / 1000,
            calls=1,
        )
        self.budgets.settle(reservation, cost)
        meter(
            latency_ms=latency,
            input_tokens=reply.usage.input_tokens,
            output_tokens=reply.usage.output_tokens,
            cost=cost,
        )
        if cacheable:
            self.cache.put_many(
                "chat",
                model_ref,
                {key: json.dumps(reply.to_dict()).encode()},
                ttl_s=route.cache.ttl_s,
            )
        if scope:
            self._semantic_cache().store(
                scope,
                question,
                json.dumps(reply.to_dict()).encode(),
                ttl_s=route.cache.ttl_s,
            )
        return restore_reply(reply, guarded.mapping), record(
            latency_ms=latency,
            input_tokens=reply.usage.input_tokens,
            output_tokens=reply.usage.output_tokens,
            cost=cost,
        )
