"""The model gateway against the real local encoder and real classifier heads.

Routing (tiers, canary, fallbacks), the circuit breaker, budgets, caching, micro-batching
and metering, each exercised on the packaged int8 MiniLM and classifiers trained on the
shipped sample. The LLM side is in test_gateway_llm.py (real llama.cpp server).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from sluice.errors import BudgetExceededError, ConfigError, ModelCallError
from sluice.governance import iter_entries
from sluice.models import (
    Gateway,
    LabelledData,
    load_gateway_config,
    model_usage,
    read_labelled_csv,
    train_classifier,
)
from sluice.models.gateway import canary_bucket
from sluice.models.gateway_tables import model_calls
from sluice.pipelines.support_triage import MODEL_NAME, sample_path

TEST = read_labelled_csv(sample_path("test.csv"))


def _gateway(runtime: Any, overrides: dict[str, Any] | None = None, **settings: Any) -> Gateway:
    config = load_gateway_config(None, overrides=overrides)
    s = runtime.settings.model_copy(update={"model_refresh_seconds": 0.0, **settings})
    return Gateway(s, runtime.store, config=config, registry=runtime.models)


def _calls(runtime: Any, gateway: Gateway) -> list[Any]:
    gateway.meter.flush()
    with runtime.store.read() as conn:
        return list(conn.execute(select(model_calls).order_by(model_calls.c.started_at)))


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory, model_cache: Any) -> dict[str, Any]:
    """A weak classifier: four training messages per intent, so it is often unsure."""
    from helpers import make_settings
    from sluice.runtime import Runtime

    full = read_labelled_csv(sample_path("train.csv"))
    seen: Counter[str] = Counter()
    texts, labels = [], []
    for text, label in zip(full.texts, full.labels, strict=True):
        if seen[label] < 4:
            seen[label] += 1
            texts.append(text)
            labels.append(label)
    data = LabelledData(texts, labels, "small-" + full.sha256, "four per intent")
    with Runtime(make_settings(tmp_path_factory.mktemp("small"), None, model_cache)) as rt:
        record = train_classifier(rt.settings, rt.models, "intent-small", data)
        blob = rt.models.artifact_path(record.name, record.version).read_bytes()
    return {"artifact": blob, "card": dict(record.card)}


def test_classification_goes_through_the_gateway_and_is_metered(
    runtime: Any, intent_model: Any
) -> None:
    gateway = _gateway(runtime)
    try:
        results = gateway.classify(MODEL_NAME, TEST.texts[:40], keys=[f"k{i}" for i in range(40)])
        accuracy = np.mean(
            [r.prediction.label == g for r, g in zip(results, TEST.labels, strict=False)]
        )
        assert accuracy > 0.8
        record = results[0].record
        assert (record.endpoint, record.model, record.version) == (
            MODEL_NAME,
            MODEL_NAME,
            intent_model.version,
        )
        assert record.tier == 0 and not record.canary and record.cache == "miss"
        assert results[0].threshold == pytest.approx(
            intent_model.card["gate"]["threshold"], abs=1e-9
        )
        rows = _calls(runtime, gateway)
        assert {r.kind for r in rows} == {"classify"}
        assert sum(r.inputs for r in rows) == 40
        report = model_usage(runtime.store)["endpoints"][MODEL_NAME]
        assert report["calls"] == 1 and report["inputs"] == 40
        assert report["p50_ms"] > 0 and report["p99_ms"] >= report["p50_ms"]
    finally:
        gateway.close()


def test_cache_hits_are_marked_and_a_new_encoder_version_misses(
    runtime: Any, intent_model: Any
) -> None:
    gateway = _gateway(runtime)
    try:
        texts = TEST.texts[:10]
        first = gateway.classify(MODEL_NAME, texts)
        gateway.cache.clear_memory()  # the second answer must come from the store
        second = gateway.classify(MODEL_NAME, ["  " + t.replace(" ", "   ") + " " for t in texts])
        assert {r.record.cache for r in first} == {"miss"}
        assert {r.record.cache for r in second} == {"exact"}
        assert [r.prediction.label for r in first] == [r.prediction.label for r in second]
        _calls(runtime, gateway)  # flushes the meter
        usage = model_usage(runtime.store)
        assert usage["endpoints"][MODEL_NAME]["inputs"] == 20
    finally:
        gateway.close()
    # The cache key holds the encoder's version: another version reads none of it.
    from sluice.models.response_cache import cache_key, normalize_text

    gateway2 = _gateway(runtime)
    try:
        encoder = gateway2._encoder("minilm")
        text = normalize_text(texts[0])
        mine = cache_key("embedding", f"{encoder.model}@{encoder.version}", text)
        other = cache_key("embedding", f"{encoder.model}@another-build", text)
        assert gateway2.cache.get_many([mine]) and not gateway2.cache.get_many([other])
    finally:
        gateway2.close()


def test_low_confidence_answers_escalate_to_the_next_tier(
    runtime: Any, intent_model: Any, small_model: dict[str, Any]
) -> None:
    runtime.models.register(
        "intent-small", "classifier", small_model["artifact"], small_model["card"]
    )
    gateway = _gateway(
        runtime,
        {
            "endpoints": {
                "small": {
                    "provider": "local-classifier",
                    "model": "intent-small",
                    "price": {"per_call": 0.001},
                }
            },
            "routes": {
                "tiered": {
                    "kind": "classify",
                    "tiers": ["small", MODEL_NAME],
                    "escalate_below": 0.4,
                }
            },
        },
    )
    try:
        texts = TEST.texts[:60]
        tiered = gateway.classify("tiered", texts, keys=[str(i) for i in range(60)])
        small_confidence = [r.prediction.confidence for r in _small_only(gateway, texts)]
        escalated = [r for r in tiered if r.record.tier == 1]
        kept = [r for r in tiered if r.record.tier == 0]
        assert escalated and kept, "the weak model is unsure of some messages, not all"
        for result, confidence in zip(tiered, small_confidence, strict=True):
            # Only the small tier is priced: an escalated answer carries what the small
            # tier's answer cost, since the item paid for both.
            assert result.record.cost == pytest.approx(0.001)
            if confidence < 0.4:
                assert result.record.endpoint == MODEL_NAME
                assert result.record.escalated_from == ("small",)
            else:
                assert result.record.endpoint == "small"
                assert result.record.escalated_from == ()
        _calls(runtime, gateway)
        errors = model_usage(runtime.store, task="tiered")["endpoints"]["small"]["errors"]
        assert errors == {"low_confidence": len(escalated)}
    finally:
        gateway.close()


def _small_only(gateway: Gateway, texts: list[str]) -> list[Any]:
    config = load_gateway_config(
        None,
        overrides={
            "endpoints": {"small": {"provider": "local-classifier", "model": "intent-small"}},
            "routes": {"small-only": {"kind": "classify", "tiers": ["small"]}},
        },
    )
    alone = Gateway(gateway.settings, gateway.store, config=config, registry=gateway.registry)
    try:
        return alone.classify("small-only", texts)
    finally:
        alone.close()


def test_canary_split_is_sticky_and_near_its_share(
    runtime: Any, intent_model: Any, trained_intent_model: dict[str, Any]
) -> None:
    candidate = runtime.models.register(
        MODEL_NAME,
        "classifier",
        trained_intent_model["artifact"],
        trained_intent_model["card"],
        promote=False,
    )
    _make_canary(runtime, candidate.version)
    gateway = _gateway(
        runtime,
        {
            "routes": {
                MODEL_NAME: {"kind": "classify", "tiers": [MODEL_NAME], "canary": {"percent": 30}}
            }
        },
    )
    try:
        keys = [f"itm_{i}" for i in range(2000)]
        texts = [TEST.texts[i % len(TEST.texts)] for i in range(2000)]
        first = gateway.classify(MODEL_NAME, texts, keys=keys)
        share = np.mean([r.record.canary for r in first])
        # Binomial standard deviation at n=2000, p=0.3 is 0.0102: four of them.
        assert abs(share - 0.30) < 0.041, share
        for r in first:
            expected = candidate.version if r.record.canary else intent_model.version
            assert r.record.version == expected
        # Sticky: in another order and other batches, each item gets the same version.
        order = list(reversed(range(2000)))
        again = {}
        for start in range(0, 2000, 300):
            chunk = order[start : start + 300]
            for i, r in zip(
                chunk,
                gateway.classify(
                    MODEL_NAME, [texts[i] for i in chunk], keys=[keys[i] for i in chunk]
                ),
                strict=True,
            ):
                again[i] = r.record.version
        assert all(again[i] == first[i].record.version for i in range(2000))
        assert all(
            (canary_bucket(MODEL_NAME, k) < 30) == r.record.canary
            for k, r in zip(keys, first, strict=True)
        )
    finally:
        gateway.close()


def _make_canary(runtime: Any, version: str) -> None:
    from sluice.models import evaluate_for_promotion

    evaluate_for_promotion(
        runtime.settings, runtime.models, MODEL_NAME, version, TEST, created_by="test"
    )
    runtime.models.promote(MODEL_NAME, version, to="canary", actor="test")


def test_a_pinned_version_takes_no_canary_traffic(
    runtime: Any, intent_model: Any, trained_intent_model: dict[str, Any]
) -> None:
    candidate = runtime.models.register(
        MODEL_NAME,
        "classifier",
        trained_intent_model["artifact"],
        trained_intent_model["card"],
        promote=False,
    )
    _make_canary(runtime, candidate.version)
    gateway = _gateway(runtime, model_pins={MODEL_NAME: intent_model.version})
    try:
        results = gateway.classify(MODEL_NAME, TEST.texts[:50], keys=[str(i) for i in range(50)])
        assert {r.record.version for r in results} == {intent_model.version}
        assert not any(r.record.canary for r in results)
    finally:
        gateway.close()


def test_a_rollback_takes_effect_for_the_next_call(
    runtime: Any, intent_model: Any, trained_intent_model: dict[str, Any]
) -> None:
    from sluice.models import evaluate_for_promotion

    candidate = runtime.models.register(
        MODEL_NAME,
        "classifier",
        trained_intent_model["artifact"],
        trained_intent_model["card"],
        promote=False,
    )
    gateway = _gateway(runtime)
    try:
        assert gateway.classify(MODEL_NAME, ["refund?"])[0].record.version == intent_model.version
        evaluate_for_promotion(
            runtime.settings, runtime.models, MODEL_NAME, candidate.version, TEST, created_by="test"
        )
        runtime.models.promote(MODEL_NAME, candidate.version, to="production", actor="test")
        assert gateway.classify(MODEL_NAME, ["refund?"])[0].record.version == candidate.version
        runtime.models.rollback(MODEL_NAME, actor="test")
        assert gateway.classify(MODEL_NAME, ["refund?"])[0].record.version == intent_model.version
    finally:
        gateway.close()


def _strict_encoder_routes(extra_route: dict[str, Any] | None = None) -> dict[str, Any]:
    """A classifier whose encoder endpoint has its own breaker, beside the normal one."""
    return {
        "endpoints": {
            "minilm-strict": {
                "provider": "local-encoder",
                "micro_batch": None,
                "circuit": {"failures": 2, "cooldown_s": 1.0},
            },
            "strict": {
                "provider": "local-classifier",
                "model": MODEL_NAME,
                "encoder": "minilm-strict",
                "circuit": {"failures": 2, "cooldown_s": 1.0},
            },
        },
        "routes": {
            "strict-only": {"kind": "classify", "tiers": ["strict"], "cache": {"exact": False}},
            "with-fallback": {
                "kind": "classify",
                "tiers": ["strict"],
                "fallbacks": [MODEL_NAME],
                "cache": {"exact": False},
                **(extra_route or {}),
            },
        },
    }


def test_a_timeout_falls_back_to_the_next_endpoint(runtime: Any, intent_model: Any) -> None:
    config = _strict_encoder_routes()
    # 1 µs is less than the real encoder needs for one message: every attempt times out.
    config["endpoints"]["strict"]["timeout_s"] = 1e-6
    gateway = _gateway(runtime, config)
    try:
        with pytest.raises(ModelCallError, match="every endpoint"):
            gateway.classify("strict-only", ["where is my refund?"])
        results = gateway.classify("with-fallback", ["where is my refund?", "charged twice"])
        assert {r.record.endpoint for r in results} == {MODEL_NAME}
        assert {r.record.fallbacks for r in results} == {("strict",)}
        rows = _calls(runtime, gateway)
        assert [(r.endpoint, r.error_kind) for r in rows] == [
            ("strict", "timeout"),
            ("strict", "timeout"),
            (MODEL_NAME, None),
        ]
    finally:
        gateway.close()


def test_the_circuit_opens_half_opens_and_closes(runtime: Any, intent_model: Any) -> None:
    gateway = _gateway(runtime, _strict_encoder_routes())
    try:
        for _ in range(2):
            with pytest.raises(ModelCallError):
                gateway.classify("strict-only", ["where is my refund?"], timeout_s=1e-6)
        # The classifier endpoint's breaker counts every failure of its attempts: its
        # encoder's timeout, or (on a busy machine) a slot wait that spent the 1 µs.
        assert gateway.circuit_states()["strict"] == "open"
        # Open: the fallback answers and the failing encoder is not even called.
        results = gateway.classify("with-fallback", ["where is my refund?"])
        assert results[0].record.endpoint == MODEL_NAME
        assert results[0].record.fallbacks == ("strict",)
        rows = _calls(runtime, gateway)
        assert [(r.endpoint, r.error_kind) for r in rows] == [
            ("strict", "timeout"),
            ("strict", "timeout"),
            ("strict", "circuit_open"),
            (MODEL_NAME, None),
        ]
        time.sleep(1.1)  # the cool-down passes: one trial call may go
        assert gateway.circuit_states()["strict"] == "half_open"
        results = gateway.classify("strict-only", ["where is my refund?"])
        assert results[0].record.endpoint == "strict"
        assert gateway.circuit_states()["strict"] == "closed"
        assert gateway.circuit_states()["minilm-strict"] == "closed"
    finally:
        gateway.close()


def test_a_hard_budget_stops_paid_calls_and_no_fallback_spends_around_it(
    runtime: Any, intent_model: Any
) -> None:
    priced = {"provider": "local-classifier", "model": MODEL_NAME, "price": {"per_call": 0.01}}
    gateway = _gateway(
        runtime,
        {
            "endpoints": {"paid-a": priced, "paid-b": priced},
            "routes": {
                "paid": {
                    "kind": "classify",
                    "tiers": ["paid-a"],
                    "fallbacks": ["paid-b"],
                    "cache": {"exact": False},
                }
            },
            "budgets": {"tasks": {"paid": {"daily_soft": 0.03, "daily_hard": 0.05}}},
        },
    )
    try:
        for i in range(5):  # 5 calls x 0.01 reach the hard limit exactly
            gateway.classify("paid", [f"message {i}"])
        with pytest.raises(BudgetExceededError, match="task:paid"):
            gateway.classify("paid", ["one more"])
        rows = _calls(runtime, gateway)
        assert {r.endpoint for r in rows} == {"paid-a"}, "the fallback was never called"
        # The refusal is metered like any failed call, so usage shows why calls stopped.
        assert [r.error_kind for r in rows] == [None] * 5 + ["refused_by_policy"]
        assert gateway.budgets.spent("task:paid") == pytest.approx(0.05)
        with runtime.store.read() as conn:
            alerts = [e for e in iter_entries(conn) if e.action == "model.budget_alert"]
        assert len(alerts) == 1 and alerts[0].target == "task:paid"
    finally:
        gateway.close()


def test_concurrent_small_calls_are_micro_batched_with_unchanged_embeddings(
    runtime: Any,
) -> None:
    gateway = _gateway(
        runtime,
        {
            "endpoints": {
                "minilm": {"provider": "local-encoder", "micro_batch": {"max_batch": 16}}
            },
            "routes": {"embed": {"kind": "embed", "tiers": ["minilm"], "cache": {"exact": False}}},
        },
    )
    texts = [f"message number {i} about order {i * 7}" for i in range(8)]
    results: dict[int, Any] = {}
    try:
        provider = gateway._encoder("minilm")
        batcher = provider.batcher  # type: ignore[attr-defined]
        # Keep every dispatch slot busy with long calls first: requests that arrive
        # while the encoder is busy are the ones gathered (an idle encoder takes each
        # request at once, so without this the outcome depends on thread timing).
        long_text = " ".join(["a long message about a delayed parcel and a refund"] * 20)
        busy = [
            threading.Thread(target=gateway.embed, args=("embed", [long_text] * 256))
            for _ in range(batcher.max_in_flight)
        ]
        for t in busy:
            t.start()
        deadline = time.monotonic() + 30
        while batcher._running < batcher.max_in_flight and time.monotonic() < deadline:
            time.sleep(0.001)
        assert batcher._running == batcher.max_in_flight, "the long calls never ran"

        def call(i: int) -> None:
            results[i] = gateway.embed("embed", [texts[i]]).vectors[0]

        threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in [*threads, *busy]:
            t.join()
        stats = batcher.stats
        small_dispatches = stats.dispatches - len(busy)
        assert stats.requests == 8 + len(busy) and small_dispatches < 8, stats
        encoder = provider.encoder  # type: ignore[attr-defined]
        for i in range(8):
            # Each text embedded alone, in a call of its own: what the caller would have
            # got had nobody else been calling.
            alone = encoder.encode([texts[i]])[0]
            assert np.array_equal(results[i], alone), texts[i]
    finally:
        gateway.close()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"routes": {"x": {"kind": "classify", "tiers": ["nope"]}}},
            "routes.x.tiers: unknown endpoint 'nope'",
        ),
        ({"routes": {"x": {"kind": "chat", "tiers": ["minilm"]}}}, "cannot serve a 'chat' route"),
        ({"budgets": {"tasks": {"ghost": {"daily_hard": 1}}}}, "budgets.tasks.ghost: no route"),
        ({"endpoints": {"o": {"provider": "openai"}}}, "needs base_url and model"),
        ({"routes": {"x": {"kind": "embed", "tiers": []}}}, "routes.x.tiers"),
    ],
)
def test_config_mistakes_are_named_at_start_up(override: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_gateway_config(None, overrides=override)
    assert message in str(info.value)


def test_a_config_file_is_merged_over_the_defaults(tmp_path: Any) -> None:
    path = tmp_path / "models.toml"
    path.write_text(
        '[endpoints.local-llm]\nprovider = "llama-cpp"\n\n'
        '[routes.support-reply]\nkind = "chat"\ntiers = ["local-llm"]\n'
    )
    config = load_gateway_config(path)
    assert set(config.routes) >= {"support-intent", "embed", "support-reply"}
    path.write_text("[routes\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_gateway_config(path)


def test_served_models_are_catalogued_and_retiring_one_stops_its_calls(
    runtime: Any, intent_model: Any
) -> None:
    gateway = _gateway(
        runtime,
        {
            "routes": {
                MODEL_NAME: {"kind": "classify", "tiers": [MODEL_NAME], "cache": {"exact": False}}
            }
        },
    )
    try:
        gateway.classify(MODEL_NAME, ["where is my refund?"])
        encoder = gateway._encoder("minilm")
        record = runtime.models.get(encoder.model, encoder.version)
        assert (record.kind, record.stage, record.catalogued) == ("encoder", "production", True)
        assert record.sha256 == encoder.encoder.model_sha256  # type: ignore[attr-defined]
        runtime.models.retire(encoder.model, encoder.version, actor="test", reason="kill switch")
        with pytest.raises(ModelCallError, match="retired in the registry"):
            gateway.classify(MODEL_NAME, ["where is my refund?"])
    finally:
        gateway.close()


def test_a_canary_endpoint_takes_its_sticky_share_and_a_fallback_is_not_the_canary(
    runtime: Any, intent_model: Any, small_model: dict[str, Any]
) -> None:
    runtime.models.register(
        "intent-small", "classifier", small_model["artifact"], small_model["card"]
    )
    route = {
        "kind": "classify",
        "tiers": [MODEL_NAME],
        "canary": {"endpoint": "small", "percent": 25},
        "fallbacks": [MODEL_NAME],
        "cache": {"exact": False},
    }
    small = {"provider": "local-classifier", "model": "intent-small"}
    gateway = _gateway(runtime, {"endpoints": {"small": small}, "routes": {"split": route}})
    keys = [f"itm_{i}" for i in range(400)]
    texts = [TEST.texts[i % len(TEST.texts)] for i in range(400)]
    try:
        results = gateway.classify("split", texts, keys=keys)
        for key, r in zip(keys, results, strict=True):
            in_canary = canary_bucket("split", key) < 25
            assert r.record.canary == in_canary
            assert r.record.endpoint == ("small" if in_canary else MODEL_NAME)
        assert 0.15 < np.mean([r.record.canary for r in results]) < 0.35
    finally:
        gateway.close()
    # The canary endpoint fails (1 µs timeout): its items are answered by the fallback,
    # and that answer is not counted as the canary's.
    failing = _gateway(
        runtime,
        {
            "endpoints": {"small": {**small, "timeout_s": 1e-6}},
            "routes": {"split": route},
        },
    )
    try:
        results = failing.classify("split", texts[:80], keys=keys[:80])
        assert all(r.record.endpoint == MODEL_NAME and not r.record.canary for r in results)
        rerouted = [
            r for k, r in zip(keys[:80], results, strict=True) if canary_bucket("split", k) < 25
        ]
        assert rerouted and all(r.record.fallbacks == ("small",) for r in rerouted)
        rows = _calls(runtime, failing)
        assert not any(r.canary for r in rows if r.endpoint == MODEL_NAME)
    finally:
        failing.close()
