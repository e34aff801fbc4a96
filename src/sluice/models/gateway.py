"""The model gateway: the one door every model call goes through.

A step asks for a *task* (``support-intent``, ``support-reply``, ``embed``); the task's
route (``gateway_config``) says which endpoints serve it. For each call the gateway:

1. picks the endpoint and version: the route's first tier, or the canary for the share
   of items the canary split assigns to it (sticky: a hash of task and item id, so an
   item never flips between versions); a pinned version (``SLUICE_MODEL_PINS``, replay)
   overrides both;
2. answers from the cache when it can (exact; semantic for chat when turned on);
3. reserves the worst-case cost in the task's and tenant's daily budgets if the
   endpoint is paid (refusing at a hard limit, whatever endpoint it is);
4. calls the provider within the endpoint's concurrency and rate limits, its circuit
   breaker and the call's timeout; on an error, a timeout or an open circuit it falls
   back along the route's ``fallbacks``;
5. escalates to the next tier the inputs whose confidence is below the threshold;
6. meters the call (``model_calls``) and returns a :class:`CallRecord` per input, for
   the step's lineage.

Registry stages take effect for new calls without a restart: the gateway re-reads the
serving versions when the registry's stage epoch changes (checked at most every
``SLUICE_MODEL_REFRESH_SECONDS``; :meth:`Gateway.refresh` forces it).

Example:
    >>> gateway = Gateway(settings, store)  # doctest: +SKIP
    >>> [c.prediction.label for c in gateway.classify("support-intent", ["refund?"])]
    ... # doctest: +SKIP
    ['refund_status']
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from sluice.config import Settings
from sluice.errors import (
    ConfigError,
    ModelCallError,
)
from sluice.models.budgets import BudgetLedger, Reservation, worst_case_cost
from sluice.models.call_traces import traced
from sluice.models.calls import (
    CacheOutcome,
    CallKind,
    CallRecord,
    ChatMessage,
    ChatParams,
    ChatReply,
    Chatted,
    Classified,
    Embedded,
)
from sluice.models.chat_calls import ChatAttempts
from sluice.models.classifier import Prediction
from sluice.models.data_policy import guard_texts
from sluice.models.endpoints import Endpoint, catalogue_entry
from sluice.models.gateway_config import EndpointSpec, GatewayConfig, RouteSpec, load_gateway_config
from sluice.models.metering import Meter
from sluice.models.providers.base import ChatProvider, EmbeddingProvider, Floats
from sluice.models.registry import ModelRegistry
from sluice.models.response_cache import ResponseCache, cache_key, normalize_text
from sluice.models.routing import Target, call_with_fallbacks, canary_bucket
from sluice.models.semantic_cache import SemanticCache
from sluice.models.serving import ServingVersions
from sluice.store import Store, new_id

__all__ = ["Gateway", "canary_bucket"]


class Gateway(ChatAttempts):
    """Routes, limits, caches, budgets and meters every model call (module docs).

    Args:
        settings: Runtime settings (``models_config``, pins, refresh, target precision).
        store: The store (registry, cache, spend, call records).
        config: The gateway configuration (default: ``settings.models_config``).
        registry: The model registry (default: one over ``store``).
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        config: GatewayConfig | None = None,
        registry: ModelRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.config = config or load_gateway_config(settings.models_config)
        self.registry = registry or ModelRegistry(store)
        self.meter = Meter(store)
        self.cache = ResponseCache(
            store,
            max_entries=self.config.cache.max_entries,
            memory_entries=self.config.cache.memory_entries,
            write_behind=True,  # a miss's caller does not wait for the store write
        )
        self.budgets = BudgetLedger(store, self.config.budgets, currency=self.config.currency)
        self._endpoints = {n: Endpoint(n, s) for n, s in self.config.endpoints.items()}
        self.serving = ServingVersions(settings, self.registry)
        self._catalogued: set[str] = set()
        self._lock = threading.Lock()
        self._semantic: SemanticCache | None = None

    # -- public calls (each traced: see call_traces) -------------------------------------
    @traced("classify")
    def classify(
        self,
        task: str,
        texts: Sequence[str],
        *,
        keys: Sequence[str] | None = None,
        tenant: str | None = None,
        timeout_s: float | None = None,
    ) -> list[Classified]:
        """Classify ``texts`` through ``task``'s route; one result per text, in order.

        Args:
            task: A ``classify`` route.
            texts: The inputs.
            keys: Stable ids of the inputs (item ids) for the sticky canary split;
                default: the texts themselves.
            tenant: Whose budget pays (``default`` when None).
            timeout_s: This call's timeout per endpoint attempt (default: the route's,
                else each endpoint's).

        Raises:
            ConfigError: No such route, or not a ``classify`` route.
            ModelCallError: Every endpoint of the route failed for some input.
        """
        route = self._route(task, "classify", timeout_s)
        if not texts:
            return []
        keys = list(keys) if keys is not None else list(texts)
        results: list[Classified | None] = [None] * len(texts)
        escalated: dict[int, list[str]] = {}
        # What the answers passed up a tier cost: the item paid for them too.
        escalated_cost: dict[int, float] = {}
        pending = list(range(len(texts)))
        last_tier = len(route.tiers) - 1
        for tier, endpoint in enumerate(route.tiers):
            if not pending:
                break
            groups: dict[Target, list[int]] = {}
            for i in pending:
                target = self._target(task, route, tier, endpoint, keys[i])
                groups.setdefault(target, []).append(i)
            answered: dict[int, Classified] = {}
            for target, idxs in groups.items():
                answered.update(
                    self._classify_group(task, route, tier, target, idxs, texts, tenant)
                )
            still = []
            for i in pending:
                got = answered[i]
                threshold = (
                    route.escalate_below if route.escalate_below is not None else got.threshold
                )
                if tier < last_tier and got.prediction.confidence < threshold:
                    escalated.setdefault(i, []).append(got.record.endpoint)
                    escalated_cost[i] = escalated_cost.get(i, 0.0) + got.record.cost
                    still.append(i)
                else:
                    record = replace(
                        got.record,
                        escalated_from=tuple(escalated.get(i, ())),
                        cost=got.record.cost + escalated_cost.get(i, 0.0),
                    )
                    results[i] = replace(got, record=record)
            self.meter.low_confidence([answered[i].record for i in still], tenant)
            pending = still
        return [r for r in results if r is not None]

    @traced("embed")
    def embed(
        self,
        task: str,
        texts: Sequence[str],
        *,
        tenant: str | None = None,
        timeout_s: float | None = None,
    ) -> Embedded:
        """Embeddings of ``texts`` through ``task``'s ``embed`` route (cached).

        Raises:
            ConfigError: No such route, or not an ``embed`` route.
            ModelCallError: Every endpoint of the route failed.
        """
        route = self._route(task, "embed", timeout_s)
        call_id = new_id("call")
        chain = self._chain(route, route.tiers[0])
        vectors, records = call_with_fallbacks(
            chain,
            lambda ep, fallbacks: self._embed_at(
                task, route, ep, list(texts), call_id, tenant, fallbacks
            ),
        )
        return Embedded(vectors, records)

    @traced("chat")
    def chat(
        self,
        task: str,
        messages: Sequence[ChatMessage],
        *,
        params: ChatParams | None = None,
        key: str | None = None,
        tenant: str | None = None,
        timeout_s: float | None = None,
        sends: Sequence[str] = ("internal",),
    ) -> Chatted:
        """A chat reply through ``task``'s route.

        Args:
            task: A ``chat`` route.
            messages: The conversation.
            params: Generation parameters (default: greedy, 256 tokens).
            key: Stable id (item id) for the sticky canary split.
            tenant: Whose budget pays (``default`` when None).
            timeout_s: This call's timeout per endpoint attempt.
            sends: The data classes the messages hold, as the step knows them; every
                endpoint tried checks them and scans the text (:mod:`.data_policy`).

        Raises:
            ConfigError: No such route, or not a ``chat`` route.
            BudgetExceededError: A hard budget refuses the call.
            DataPolicyError: An endpoint may not receive what the messages hold (never
                retried on a fallback).
            ModelCallError: Every endpoint of the route failed.
        """
        route = self._route(task, "chat", timeout_s)
        params = params or ChatParams()
        key = key or json.dumps([m.to_dict() for m in messages])
        escalated: list[str] = []
        escalated_cost = 0.0
        last_tier = len(route.tiers) - 1
        for tier, endpoint in enumerate(route.tiers):
            target = self._target(task, route, tier, endpoint, key)
            attempt: Callable[[str, tuple[str, ...]], tuple[ChatReply, CallRecord]] = (
                functools.partial(
                    self._chat_at,
                    task,
                    route,
                    messages=list(messages),
                    params=params,
                    call_id=new_id("call"),
                    tenant=tenant,
                    tier=tier,
                    canary_endpoint=target.endpoint if target.canary else None,
                    sends=tuple(sends),
                )
            )
            reply, record = call_with_fallbacks(self._chain(route, target.endpoint), attempt)
            low = (
                route.escalate_below is not None
                and reply.confidence is not None
                and reply.confidence < route.escalate_below
            )
            if tier < last_tier and low:
                escalated.append(record.endpoint)
                escalated_cost += record.cost
                self.meter.low_confidence([record], tenant)
                continue
            return Chatted(
                reply,
                replace(
                    record,
                    escalated_from=tuple(escalated),
                    cost=record.cost + escalated_cost,
                ),
            )
        raise AssertionError("unreachable: the last tier always answers")  # pragma: no cover

    # -- routes and versions --------------------------------------------------------------
    def _route(self, task: str, kind: CallKind, timeout_s: float | None = None) -> RouteSpec:
        route = self.config.routes.get(task)
        if route is None:
            raise ConfigError(
                f"no model route for task {task!r}",
                hint=f"declare [routes.{task}] in the models config (SLUICE_MODELS_CONFIG); "
                f"routes: {', '.join(sorted(self.config.routes)) or 'none'}",
            )
        if route.kind != kind:
            raise ConfigError(f"route {task!r} is a {route.kind!r} route, not {kind!r}")
        if timeout_s is not None:
            route = route.model_copy(update={"timeout_s": timeout_s})
        return route

    def check_route(self, task: str) -> None:
        """Check that ``task``'s route can be served now: its classifiers are registered.

        Raises:
            ConfigError: No such route.
            ModelNotFoundError: A classifier it routes to has no production version
                (or the pinned version does not exist).
        """
        route = self._route(
            task, self.config.routes[task].kind if task in self.config.routes else "classify"
        )
        for endpoint in [*route.tiers, *route.fallbacks]:
            spec = self.config.endpoints[endpoint]
            if spec.provider == "local-classifier" and spec.model is not None:
                production, canary = self.serving.versions(spec.model)
                self.serving.head(spec.model, production)
                if canary is not None:
                    self.serving.head(spec.model, canary)

    def has_route(self, task: str) -> bool:
        """Whether the configuration declares ``task``."""
        return task in self.config.routes

    def refresh(self) -> None:
        """Re-read the serving versions from the registry on the next call."""
        self.serving.refresh()

    def _target(self, task: str, route: RouteSpec, tier: int, endpoint: str, key: str) -> Target:
        spec = self.config.endpoints[endpoint]
        canary = route.canary if tier == 0 else None
        in_canary = (
            canary is not None
            and canary.percent > 0
            and (canary_bucket(task, key) < canary.percent)
        )
        if in_canary and canary is not None and canary.endpoint:
            return Target(canary.endpoint, self._registry_version(canary.endpoint), True)
        if spec.provider != "local-classifier":
            return Target(endpoint, None, False)
        assert spec.model is not None
        production, canary_version = self.serving.versions(spec.model)
        if in_canary and canary_version is not None:
            return Target(endpoint, canary_version, True)
        return Target(endpoint, production, False)

    def _registry_version(self, endpoint: str) -> str | None:
        spec = self.config.endpoints[endpoint]
        if spec.provider != "local-classifier" or spec.model is None:
            return None
        return self.serving.versions(spec.model)[0]

    def _chain(self, route: RouteSpec, first: str) -> list[str]:
        chain = [first]
        chain += [e for e in route.fallbacks if e not in chain]
        return chain

    # -- one endpoint --------------------------------------------------------------------------
    def _timeout(self, route: RouteSpec, endpoint: str) -> float:
        return route.timeout_s or self.config.endpoints[endpoint].timeout_s

    def _provider(self, endpoint: str) -> Any:
        """The endpoint's provider, its model catalogued in the registry and not retired.

        Raises:
            ModelCallError: A person retired the model version it serves (the route's
                fallbacks are tried).
        """
        ep = self._endpoints[endpoint]
        provider = ep.provider(self.settings)
        if endpoint not in self._catalogued:
            entry = catalogue_entry(endpoint, ep.spec, provider)
            self.registry.catalogue(
                entry.name,
                entry.version,
                entry.kind,
                endpoint=entry.endpoint,
                sha256=entry.sha256,
                card=entry.card,
            )
            with self._lock:
                self._catalogued.add(endpoint)
        if self.serving.retired(provider.model, provider.version):
            raise ModelCallError(
                f"endpoint {endpoint!r} serves {provider.model}@{provider.version}, "
                "which is retired in the registry",
                endpoint=endpoint,
                hint="declare another version in the models config, or route elsewhere",
            )
        return provider

    def _encoder(self, endpoint: str) -> EmbeddingProvider:
        provider: EmbeddingProvider = self._provider(endpoint)
        return provider

    def _chat_provider(self, endpoint: str) -> ChatProvider:
        provider: ChatProvider = self._provider(endpoint)
        return provider

    def _vectors(
        self,
        encoder_endpoint: str,
        texts: list[str],
        timeout_s: float,
        *,
        use_cache: bool,
        ttl_s: float,
    ) -> tuple[Floats, list[bool], float, str, str]:
        """Embeddings through the encoder endpoint and the embedding cache.

        Returns the vectors, which rows came from the cache, the provider's latency
        (ms), and the encoder's model and version. Texts the endpoint may not receive
        are redacted or refused first (:func:`.data_policy.guard_texts`).
        """
        ep = self._endpoints[encoder_endpoint]
        texts = guard_texts(encoder_endpoint, self.config.endpoints[encoder_endpoint], texts)
        provider = self._encoder(encoder_endpoint)
        model_ref = f"{provider.model}@{provider.version}"
        normalized = [normalize_text(t) for t in texts]
        keys = [cache_key("embedding", model_ref, t) for t in normalized] if use_cache else []
        found = self.cache.get_many(keys) if use_cache else {}
        hit = [k in found for k in keys] if use_cache else [False] * len(texts)
        missing = [i for i, h in enumerate(hit) if not h]
        latency_ms = 0.0
        computed: Floats | None = None
        if missing or not texts:
            # Each distinct text is embedded once, however often it repeats in the call.
            unique = list(dict.fromkeys(normalized[i] for i in missing))
            t0 = time.perf_counter()
            vectors, _usage = ep.invoke(
                lambda timeout: provider.embed(unique, timeout_s=timeout), timeout_s
            )
            latency_ms = (time.perf_counter() - t0) * 1000
            if len(unique) == len(missing):  # no text repeats: the rows are in order
                computed = vectors
            else:
                row_of = {text: row for row, text in enumerate(unique)}
                computed = vectors[[row_of[normalized[i]] for i in missing]]
        if computed is not None and len(missing) == len(texts):
            out = np.asarray(computed, dtype=np.float32)  # no hits: nothing to merge
        else:
            dims = computed.shape[1] if computed is not None else len(found[keys[0]]) // 4
            out = np.empty((len(texts), dims), dtype=np.float32)
            if computed is not None and missing:
                out[missing] = computed
        for i, key in enumerate(keys):
            if hit[i]:
                out[i] = np.frombuffer(found[key], dtype=np.float32)
        if use_cache and computed is not None and missing:
            self.cache.put_many(
                "embedding",
                model_ref,
                {keys[i]: computed[j].astype(np.float32).tobytes() for j, i in enumerate(missing)},
                ttl_s=ttl_s,
            )
        return out, hit, latency_ms, provider.model, provider.version

    def _embed_at(
        self,
        task: str,
        route: RouteSpec,
        endpoint: str,
        texts: list[str],
        call_id: str,
        tenant: str | None,
        fallbacks: tuple[str, ...],
    ) -> tuple[Floats, list[CallRecord]]:
        spec = self.config.endpoints[endpoint]
        timeout = self._timeout(route, endpoint)
        reservation: Reservation | None = None
        try:
            # Inside the try: a budget refusal is metered like any failed call.
            reservation = self._reserve(task, tenant, spec, texts, 0, timeout)
            vectors, hit, latency, model, version = self._vectors(
                endpoint, texts, timeout, use_cache=route.cache.exact, ttl_s=route.cache.ttl_s
            )
            hits = sum(hit)
        except BaseException as exc:
            self.budgets.settle(reservation, 0.0)
            provider = self._endpoints[endpoint].started
            self.meter.call(
                call_id=call_id,
                task=task,
                kind="embed",
                endpoint=endpoint,
                model=getattr(provider, "model", spec.model or endpoint),
                version=getattr(provider, "version", spec.version or "?"),
                tenant=tenant,
                inputs=len(texts),
                latency_ms=0.0,
                fallbacks=fallbacks,
                error=exc,
            )
            raise
        computed = len(texts) - hits
        cost = spec.price.cost(
            input_tokens=0, output_tokens=0, seconds=latency / 1000, calls=computed
        )
        self.budgets.settle(reservation, cost)
        if hits:
            self.meter.call(
                call_id=call_id,
                task=task,
                kind="embed",
                endpoint=endpoint,
                model=model,
                version=version,
                tenant=tenant,
                inputs=hits,
                latency_ms=0.0,
                cache="exact",
                fallbacks=fallbacks,
            )
        if computed:
            self.meter.call(
                call_id=call_id,
                task=task,
                kind="embed",
                endpoint=endpoint,
                model=model,
                version=version,
                tenant=tenant,
                inputs=computed,
                latency_ms=latency,
                cost=cost,
                fallbacks=fallbacks,
            )
        share = max(1, computed)
        miss = CallRecord(
            call_id=call_id,
            task=task,
            kind="embed",
            endpoint=endpoint,
            model=model,
            version=version,
            latency_ms=latency / share,
            cost=cost / share,
            fallbacks=fallbacks,
        )
        cached = replace(miss, latency_ms=0.0, cost=0.0, cache="exact") if hits else miss
        return vectors, [cached if h else miss for h in hit]

    def labels(self, model: str, version: str) -> list[str]:
        """The labels of a registered classifier version."""
        return list(self.serving.head(model, version).head.labels)

    def _classify_group(
        self,
        task: str,
        route: RouteSpec,
        tier: int,
        target: Target,
        idxs: list[int],
        texts: Sequence[str],
        tenant: str | None,
    ) -> dict[int, Classified]:
        chain = [target.endpoint] + [e for e in route.fallbacks if e != target.endpoint]
        call_id = new_id("call")

        def attempt(endpoint: str, fallbacks: tuple[str, ...]) -> dict[int, Classified]:
            spec = self.config.endpoints[endpoint]
            assert spec.model is not None
            version = target.version if endpoint == target.endpoint else None
            version = version or self.serving.versions(spec.model)[0]
            # A fallback answering a canary item is not the canary answering.
            canary = target.canary and endpoint == target.endpoint
            timeout = self._timeout(route, endpoint)
            group_texts = [texts[i] for i in idxs]
            reservation: Reservation | None = None
            t0 = time.perf_counter()
            try:
                reservation = self._reserve(task, tenant, spec, group_texts, 0, timeout)
                head = self.serving.head(spec.model, version)

                def run(timeout_s: float | None) -> tuple[list[Prediction], list[bool], str]:
                    vectors, hit, _lat, enc_model, enc_version = self._vectors(
                        spec.encoder,
                        group_texts,
                        timeout if timeout_s is None else timeout_s,
                        use_cache=route.cache.exact,
                        ttl_s=route.cache.ttl_s,
                    )
                    return head.head.predict(vectors, top=3), hit, f"{enc_model}@{enc_version}"

                # The classifier endpoint's own breaker and limits, around its encoder's.
                predictions, hit, encoder = self._endpoints[endpoint].invoke(run, timeout)
            except BaseException as exc:
                self.budgets.settle(reservation, 0.0)
                self.meter.call(
                    call_id=call_id,
                    task=task,
                    kind="classify",
                    endpoint=endpoint,
                    model=spec.model,
                    version=version,
                    tenant=tenant,
                    inputs=len(idxs),
                    latency_ms=(time.perf_counter() - t0) * 1000,
                    tier=tier,
                    canary=canary,
                    fallbacks=fallbacks,
                    error=exc,
                )
                raise
            latency = (time.perf_counter() - t0) * 1000
            cost = spec.price.cost(
                input_tokens=0, output_tokens=0, seconds=latency / 1000, calls=len(idxs)
            )
            self.budgets.settle(reservation, cost)
            cache: CacheOutcome = "exact" if all(hit) else "miss"
            self.meter.call(
                call_id=call_id,
                task=task,
                kind="classify",
                endpoint=endpoint,
                model=spec.model,
                version=version,
                tenant=tenant,
                inputs=len(idxs),
                latency_ms=latency,
                cost=cost,
                cache=cache,
                tier=tier,
                canary=canary,
                fallbacks=fallbacks,
            )
            record = CallRecord(
                call_id=call_id,
                task=task,
                kind="classify",
                endpoint=endpoint,
                model=spec.model,
                version=version,
                latency_ms=latency / len(idxs),
                cost=cost / len(idxs),
                tier=tier,
                canary=canary,
                fallbacks=fallbacks,
            )
            labels = tuple(head.head.labels)
            cached = replace(record, cache="exact")
            missed = replace(record, cache="miss")
            return {
                i: Classified(p, head.threshold, labels, cached if h else missed, encoder)
                for i, p, h in zip(idxs, predictions, hit, strict=True)
            }

        return call_with_fallbacks(chain, attempt)

    def _reserve(
        self,
        task: str,
        tenant: str | None,
        spec: EndpointSpec,
        texts: Sequence[str],
        max_output_tokens: int,
        timeout_s: float,
    ) -> Reservation | None:
        if not spec.price.is_paid:
            return None
        estimate = worst_case_cost(spec.price, texts, max_output_tokens, timeout_s)
        return self.budgets.reserve(task, tenant, estimate)

    def _semantic_cache(self) -> SemanticCache:
        with self._lock:
            if self._semantic is None:
                encoder = self.config.semantic_encoder()
                self._semantic = SemanticCache(
                    self.cache,
                    lambda texts: self._vectors(
                        encoder, list(texts), 30.0, use_cache=True, ttl_s=7 * 24 * 3600.0
                    )[0],
                )
            return self._semantic

    # -- inspection and shutdown ---------------------------------------------------------------
    def circuit_states(self) -> dict[str, str]:
        """Each endpoint's circuit state in this process."""
        return {name: ep.breaker.state for name, ep in self._endpoints.items()}

    def close(self) -> None:
        """Flush the call records and the cache's writes, and release providers."""
        for ep in self._endpoints.values():
            ep.close()
        self.meter.close()
        self.cache.close()
