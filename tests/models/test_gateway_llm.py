"""The gateway's chat path against a real llama.cpp server on loopback (``sluice[llm]``).

Fallback on timeout, the cache and its invalidation on a version change, a hard budget
with a fallback configured, and support triage drafting replies with the local LLM.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sluice.errors import BudgetExceededError
from sluice.models import ChatMessage, ChatParams, Gateway, load_gateway_config
from sluice.models.gateway_tables import model_calls

pytestmark = pytest.mark.llm
# Without the sluice[llm] extra these tests cannot run; CI installs it (.ci/run).
pytest.importorskip("llama_cpp", reason="needs the sluice[llm] extra")

QUESTION = [
    ChatMessage("system", "You answer in one short sentence."),
    ChatMessage("user", "What is the capital of France?"),
]


def _gateway(runtime: Any, config: dict[str, Any]) -> Gateway:
    settings = runtime.settings.model_copy(update={"model_refresh_seconds": 0.0})
    return Gateway(
        settings,
        runtime.store,
        config=load_gateway_config(None, overrides=config),
        registry=runtime.models,
    )


def _endpoint(base_url: str, **extra: Any) -> dict[str, Any]:
    return {"provider": "openai", "base_url": base_url, "model": "smollm2", **extra}


def _rows(runtime: Any, gateway: Gateway) -> list[Any]:
    gateway.meter.flush()
    with runtime.store.read() as conn:
        return list(conn.execute(select(model_calls).order_by(model_calls.c.started_at)))


def test_chat_is_metered_cached_and_a_new_version_misses(runtime: Any, llm_server: str) -> None:
    config = {
        "endpoints": {"llm": _endpoint(llm_server, version="a", price={"output_per_1k": 0.002})},
        "routes": {"answer": {"kind": "chat", "tiers": ["llm"]}},
    }
    gateway = _gateway(runtime, config)
    try:
        first = gateway.chat("answer", QUESTION, params=ChatParams(max_tokens=16))
        assert first.reply.text.strip()
        record = first.record
        assert (record.endpoint, record.version, record.cache) == ("llm", "a", "miss")
        assert record.output_tokens > 0 and record.input_tokens > 0
        assert record.cost == pytest.approx(record.output_tokens / 1000 * 0.002)
        again = gateway.chat("answer", QUESTION, params=ChatParams(max_tokens=16))
        assert again.record.cache == "exact" and again.reply.text == first.reply.text
        other_params = gateway.chat("answer", QUESTION, params=ChatParams(max_tokens=17))
        assert other_params.record.cache == "miss"
        rows = _rows(runtime, gateway)
        assert [r.cache for r in rows] == ["miss", "exact", "miss"]
    finally:
        gateway.close()
    config["endpoints"]["llm"]["version"] = "b"  # the endpoint now serves another model
    gateway = _gateway(runtime, config)
    try:
        assert gateway.chat("answer", QUESTION, params=ChatParams(max_tokens=16)).record.cache == (
            "miss"
        )
    finally:
        gateway.close()


def test_a_timeout_falls_back_to_the_next_endpoint(runtime: Any, llm_server: str) -> None:
    gateway = _gateway(
        runtime,
        {
            # 50 ms is far less than 200 tokens take at ~40 tokens/s.
            "endpoints": {
                "hasty": _endpoint(llm_server, timeout_s=0.05),
                "patient": _endpoint(llm_server, timeout_s=120),
            },
            "routes": {
                "answer": {
                    "kind": "chat",
                    "tiers": ["hasty"],
                    "fallbacks": ["patient"],
                    "cache": {"exact": False},
                }
            },
        },
    )
    try:
        chatted = gateway.chat("answer", QUESTION, params=ChatParams(max_tokens=200))
        assert chatted.record.endpoint == "patient"
        assert chatted.record.fallbacks == ("hasty",)
        assert [(r.endpoint, r.error_kind) for r in _rows(runtime, gateway)] == [
            ("hasty", "timeout"),
            ("patient", None),
        ]
    finally:
        gateway.close()


def test_a_hard_budget_refuses_even_with_a_fallback(runtime: Any, llm_server: str) -> None:
    price = {"input_per_1k": 1.0, "output_per_1k": 1.0}
    gateway = _gateway(
        runtime,
        {
            "endpoints": {
                "paid": _endpoint(llm_server, price=price),
                "backup": _endpoint(llm_server, price=price),
            },
            "routes": {
                "answer": {
                    "kind": "chat",
                    "tiers": ["paid"],
                    "fallbacks": ["backup"],
                    "cache": {"exact": False},
                    "timeout_s": 60,
                }
            },
            # A call holds its worst case, (62 chars at one token each + 2 x 8 template
            # tokens + 16 out) / 1000 = 0.094, and costs about 0.05: the second call's
            # hold would pass 0.12.
            "budgets": {"tenants": {"acme": {"daily_hard": 0.12}}},
        },
    )
    try:
        params = ChatParams(max_tokens=16)
        gateway.chat("answer", QUESTION, params=params, tenant="acme")
        with pytest.raises(BudgetExceededError, match="tenant:acme"):
            gateway.chat("answer", QUESTION, params=params, tenant="acme")
        rows = _rows(runtime, gateway)
        assert [(r.endpoint, r.error_kind) for r in rows] == [
            ("paid", None),
            ("paid", "refused_by_policy"),
        ], "the refusal is metered and the fallback never called"
        assert gateway.budgets.spent("tenant:acme") <= 0.12
        # Another tenant has no budget and is not refused.
        gateway.chat("answer", QUESTION, params=params, tenant="globex")
    finally:
        gateway.close()


def test_support_triage_drafts_replies_with_the_local_llm_when_configured(
    runtime: Any, intent_model: Any, tmp_path: Path
) -> None:
    from sluice.execution import get_item, item_lineage, list_items
    from sluice.pipelines.support_triage import local_llm_models_config
    from sluice.pipelines.support_triage.demo import run_demo
    from sluice.review import list_tasks
    from sluice.runtime import Runtime

    settings = runtime.settings.model_copy(update={"models_config": local_llm_models_config()})
    with Runtime(settings) as rt:
        result = run_demo(rt, limit=3)
        assert result.report.processed == 3
        for item in list_items(rt.store, limit=3):
            steps = get_item(rt.store, item["id"])["steps"]
            draft = next(s for s in steps if s["step"] == "draft_reply")
            output = draft["output"]
            assert output["draft"] and output["mode"] == "llm", "the local LLM wrote something"
            (call,) = draft["model_calls"]
            assert call["endpoint"] == "smollm" and call["output_tokens"] > 0
            # Grounded or not is decided by the citations, whatever the 135M model wrote;
            # a reply that is not grounded keeps the ticket from being handled unread.
            assert output["grounded"] == (output["problem"] is None)
            if not output["grounded"]:
                assert item["status"] == "waiting_review"
                (task,) = [t for t in list_tasks(rt.store) if t.item_id == item["id"]]
                assert "not grounded" in task.reason or "below the threshold" in task.reason
            assert item_lineage(rt.store, item["id"])["intact"]


def test_an_unsure_chat_answer_escalates_and_the_item_pays_for_both(runtime: Any) -> None:
    # Two tiers of the in-process SmolLM2; the cheap one's mean token probability is
    # below 1.0 (no reply is certain of every token), so every answer is passed up.
    config = {
        "endpoints": {
            "cheap": {"provider": "llama-cpp", "price": {"per_call": 0.001}},
            "strong": {"provider": "llama-cpp", "price": {"per_call": 0.01}},
        },
        "routes": {
            "tiered": {
                "kind": "chat",
                "tiers": ["cheap", "strong"],
                "escalate_below": 1.0,
                "cache": {"exact": False},
            }
        },
    }
    gateway = _gateway(runtime, config)
    try:
        chatted = gateway.chat("tiered", QUESTION, params=ChatParams(max_tokens=8))
        assert chatted.record.endpoint == "strong" and chatted.record.tier == 1
        assert chatted.record.escalated_from == ("cheap",)
        assert chatted.record.cost == pytest.approx(0.011)
        rows = _rows(runtime, gateway)
        cheap = [r for r in rows if r.endpoint == "cheap"]
        assert [r.error_kind for r in cheap] == [None, "low_confidence"]
    finally:
        gateway.close()
