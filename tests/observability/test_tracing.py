"""One OpenTelemetry trace per item: intake, every step, model calls, gate, review, action.

Real telemetry: the SDK with an in-memory exporter (and, for OTLP, a loopback HTTP
collector), the real support-triage demo on a real store and worker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import ProxyTracerProvider
from opentelemetry.util._once import Once

from sluice.execution import get_item, item_lineage, list_items, parse_jsonl, submit_lines
from sluice.execution import traces as execution_traces
from sluice.models import call_traces
from sluice.observability import configure_tracing, tracing
from sluice.pipelines.support_triage import triage
from sluice.pipelines.support_triage.demo import run_demo, sample_events
from sluice.review import decide, list_tasks


def _reset_provider() -> None:
    # The API lets a process set its tracer provider once; tests install one each, so
    # they put the global back as they found it (what opentelemetry-test-utils does).
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]


@pytest.fixture
def no_provider() -> Iterator[None]:
    """No tracer provider before the test, none left after it."""
    assert isinstance(trace.get_tracer_provider(), ProxyTracerProvider)
    try:
        yield
    finally:
        provider = trace.get_tracer_provider()
        if not isinstance(provider, ProxyTracerProvider):
            provider.shutdown()  # type: ignore[attr-defined]
        _reset_provider()


@pytest.fixture
def spans(runtime: Any, no_provider: None) -> InMemorySpanExporter:
    """Tracing on, every span kept in memory."""
    exporter = InMemorySpanExporter()
    assert configure_tracing(runtime.settings, exporter=exporter) is not None
    return exporter


def _trace(exporter: InMemorySpanExporter, trace_id: str) -> list[ReadableSpan]:
    wanted = int(trace_id, 16)
    return [s for s in exporter.get_finished_spans() if s.context.trace_id == wanted]


def _names(spans: list[ReadableSpan]) -> set[str]:
    return {s.name for s in spans}


def _assert_one_tree(spans: list[ReadableSpan], trace_id: str) -> None:
    """The intake span is the root; every other span's parent is in the same trace."""
    (root,) = [s for s in spans if s.name == "sluice.intake"]
    assert root.parent is None
    assert root.context.span_id == execution_traces.root_span_id(trace_id)
    ids = {s.context.span_id for s in spans}
    orphans = [
        s.name for s in spans if s is not root and (s.parent is None or s.parent.span_id not in ids)
    ]
    assert orphans == []


def _run_until(runtime: Any, done: Callable[[], bool], timeout: float = 60.0) -> None:
    stop = threading.Event()
    worker = runtime.worker([triage.name])
    thread = threading.Thread(target=worker.run, kwargs={"stop": stop})
    thread.start()
    deadline = time.monotonic() + timeout
    try:
        while not done():
            assert time.monotonic() < deadline, "timed out waiting for the worker"
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(30)


def test_an_items_trace_holds_intake_every_step_its_model_call_gate_review_and_action(
    runtime: Any, intent_model: Any, spans: InMemorySpanExporter
) -> None:
    run_demo(runtime, limit=12)
    items = {i["id"]: get_item(runtime.store, i["id"]) for i in list_items(runtime.store)}
    assert len(items) == 12
    steps = [f"sluice.step.{s.name}" for s in triage.steps]
    assert len(steps) == 5

    for item_id, item in items.items():
        trace_id = item["trace_id"]
        assert trace_id == execution_traces.trace_id_for(item_id)
        assert item_lineage(runtime.store, item_id)["item"]["trace_id"] == trace_id
        mine = _trace(spans, trace_id)
        _assert_one_tree(mine, trace_id)
        names = _names(mine)
        assert {"sluice.intake", *steps, "sluice.model.classify", "sluice.gate"} <= names
        assert ("sluice.action" in names) == (item["status"] == "completed")
        for span in mine:
            attributes = span.attributes or {}
            assert attributes["sluice.item.id"] == item_id, span.name
            assert attributes["sluice.pipeline"] == "support-triage", span.name
        batch = next(s["batch_id"] for s in item["steps"] if s["step"] == "classify")
        by_name = {s.name: s for s in mine}
        classify_step = by_name["sluice.step.classify"]
        assert classify_step.attributes["sluice.batch.id"] == batch
        assert classify_step.attributes["sluice.model.version"] == intent_model.version
        # The batched classification call is in this item's trace, under its step.
        call = by_name["sluice.model.classify"]
        assert call.parent is not None and call.parent.span_id == classify_step.context.span_id
        assert call.attributes["sluice.model.name"] == "support-intent"
        assert call.attributes["sluice.model.version"] == intent_model.version
        assert call.attributes["sluice.model.inputs"] >= 1
        assert by_name["sluice.gate"].attributes["sluice.verdict"] in {"auto", "review"}

    # A reviewer decides a parked item, in another "process" and later: the wait, the
    # decision, its application and the action join the item's trace.
    task = next(t for t in list_tasks(runtime.store) if t.item_id in items)
    before = {s.context.span_id for s in _trace(spans, items[task.item_id]["trace_id"])}
    decide(runtime.store, task.id, reviewer="ana", outcome="approve")
    _run_until(runtime, lambda: get_item(runtime.store, task.item_id)["status"] == "completed")
    trace_id = items[task.item_id]["trace_id"]
    mine = _trace(spans, trace_id)
    _assert_one_tree(mine, trace_id)
    added = {s.name: s for s in mine if s.context.span_id not in before}
    assert set(added) == {
        "sluice.review.wait",
        "sluice.review.decision",
        "sluice.review.apply",
        "sluice.action",
    }
    decision = added["sluice.review.decision"]
    assert decision.parent.span_id == added["sluice.review.wait"].context.span_id
    assert decision.attributes["sluice.review.reviewer"] == "ana"
    assert decision.attributes["sluice.review.outcome"] == "approve"
    assert added["sluice.review.wait"].start_time <= decision.start_time
    assert added["sluice.action"].attributes["sluice.decided_by"] == "reviewer:ana"


def _reply_route(tmp_path: Any, base_url: str) -> Any:
    config = tmp_path / "models.toml"
    config.write_text(
        f"""
[endpoints.vendor]
provider = "openai"
base_url = "{base_url}"
model = "vendor-chat"
version = "7"

[routes.support-reply]
kind = "chat"
tiers = ["vendor"]
"""
    )
    return config


def test_a_rendered_prompts_version_and_the_llm_call_are_in_the_trace(
    runtime: Any, intent_model: Any, tmp_path: Any, spans: InMemorySpanExporter
) -> None:
    from openai_stub import OpenAIStub
    from sluice.runtime import Runtime

    with OpenAIStub(lambda request: "Thanks, we are on it.") as stub:
        settings = runtime.settings.model_copy(
            update={"models_config": _reply_route(tmp_path, stub.base_url)}
        )
        with Runtime(settings) as rt:
            run_demo(rt, limit=3)
            items = [get_item(rt.store, i["id"]) for i in list_items(rt.store)]
    drafted = 0
    for item in items:
        draft = next(s for s in item["steps"] if s["step"] == "draft_reply")["output"]
        if draft.get("mode") != "llm" or "prompt" not in draft:
            continue
        drafted += 1
        by_name = {s.name: s for s in _trace(spans, item["trace_id"])}
        step = by_name["sluice.step.draft_reply"]
        assert step.attributes["sluice.prompt.name"] == draft["prompt"]["prompt"]
        assert step.attributes["sluice.prompt.version"] == str(draft["prompt"]["version"])
        assert step.attributes["sluice.model.version"] == "7"
        chat = by_name["sluice.model.chat"]
        assert chat.parent.span_id == step.context.span_id
        assert chat.attributes["sluice.model.endpoint"] == "vendor"
        assert chat.attributes["sluice.model.version"] == "7"
        assert chat.attributes["sluice.item.id"] == item["id"]
    assert drafted >= 1


def test_tracing_is_off_by_default_and_the_off_path_makes_no_span(
    runtime: Any, intent_model: Any, no_provider: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert runtime.settings.otlp_endpoint is None
    assert configure_tracing(runtime.settings) is None
    assert isinstance(trace.get_tracer_provider(), ProxyTracerProvider)

    def no_tracer(*_: Any, **__: Any) -> Any:
        raise AssertionError("a tracer was asked for while tracing is off")

    # Any span the off path tried to make would go through the proxy provider.
    monkeypatch.setattr(ProxyTracerProvider, "get_tracer", no_tracer)
    result = run_demo(runtime, limit=4)
    assert result.report.processed == 4
    for summary in list_items(runtime.store):
        # The trace id is still minted, so items submitted now join traces later.
        item = get_item(runtime.store, summary["id"])
        assert item["trace_id"] == execution_traces.trace_id_for(summary["id"])
    assert not execution_traces.enabled()


def test_spans_are_exported_over_otlp_when_an_endpoint_is_set(
    runtime: Any, no_provider: None
) -> None:
    received: list[tuple[str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
        settings = runtime.settings.model_copy(update={"otlp_endpoint": endpoint})
        provider = configure_tracing(settings)
        assert provider is not None
        lines, _ = sample_events("otlp", limit=2)
        report = submit_lines(
            runtime.store, triage, parse_jsonl(lines, max_bytes=10_000), origin="t"
        )
        assert provider.force_flush(10_000)
    finally:
        server.shutdown()
        server.server_close()
    assert received and {path for path, _ in received} == {"/v1/traces"}
    body = b"".join(payload for _, payload in received)
    for _, item_id in report.accepted:
        # The protobuf carries the trace id as its 16 raw bytes.
        assert bytes.fromhex(execution_traces.trace_id_for(item_id)) in body


def test_the_planes_and_the_sdk_setup_share_their_context_keys() -> None:
    assert execution_traces.ITEM_SPANS == call_traces.ITEM_SPANS
    assert execution_traces.ROOT_IDS == tracing.ROOT_IDS
