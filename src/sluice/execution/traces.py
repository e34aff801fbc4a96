"""Item traces: one OpenTelemetry trace per work item, across batches, processes and days.

An item is submitted by one process, run in batches by another, may wait days for a
reviewer and be settled by a third. Its trace holds together because its ids are facts
of the item, not of a process:

* The **trace id** is minted at intake from the item id (:func:`trace_id_for`) and
  stored in ``work_items.trace_id``; ``sluice lineage ITEM`` shows it.
* The **root span** is the item's intake span. Its span id is the trace id's low 64 bits
  (:func:`root_span_id`). Every later span of the item (a step, a model call, the gate,
  the review, the action) has as parent either another span of the item or the remote
  ``SpanContext`` rebuilt from the stored trace id (:func:`item_parent`), whichever
  process or day it is made in.

Two OpenTelemetry context keys are the contract with the rest of Sluice (strings, so
that no plane imports another to honour them):

* ``ROOT_IDS`` (``"sluice.trace.root_ids"``): set while the intake span starts, to the
  ``(trace_id, span_id)`` it must have. The SDK setup of :mod:`sluice.observability`
  installs an id generator that reads it. Under any other SDK setup the intake span
  becomes a child of the remote root instead (same trace, one missing parent).
* ``ITEM_SPANS`` (``"sluice.trace.item_spans"``): set while a step runs, to
  ``{item id: (span context of the item's step span, attributes)}``. The model gateway
  reads it to put a call made for many items into each item's trace.

Only the OpenTelemetry API is used here. Until an SDK ``TracerProvider`` is installed
(``SLUICE_OTLP_ENDPOINT``, see :mod:`sluice.observability.tracing`) :func:`enabled` is
false and callers skip every span: tracing off costs one ``isinstance`` per batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    NonRecordingSpan,
    NoOpTracerProvider,
    ProxyTracerProvider,
    Span,
    SpanContext,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
)
from sqlalchemy import select

from sluice.execution.records import StepRecord
from sluice.execution.tables import work_items
from sluice.execution.types import ItemView
from sluice.store import Store

__all__ = [
    "ITEM_SPANS",
    "ROOT_IDS",
    "enabled",
    "intake_spans",
    "item_parent",
    "record_spans",
    "root_span_id",
    "step_spans",
    "trace_id_for",
    "trace_ids",
]

ROOT_IDS = "sluice.trace.root_ids"
ITEM_SPANS = "sluice.trace.item_spans"
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
#: Spans of the settling phase, by the step name of their lineage row.
_SETTLING_NAMES = {
    "gate": "sluice.gate",
    "action": "sluice.action",
    "review": "sluice.review.apply",
}


def enabled() -> bool:
    """Whether an SDK tracer provider is installed (else every span is skipped)."""
    return not isinstance(trace.get_tracer_provider(), ProxyTracerProvider | NoOpTracerProvider)


def tracer() -> Tracer:
    """The execution plane's tracer, from the provider installed now.

    Looked up per use (once per batch, not per item), not cached at import: a cached
    proxy would keep serving a provider that was replaced since.
    """
    return trace.get_tracer_provider().get_tracer("sluice.execution")


def trace_id_for(item_id: str) -> str:
    """The trace id of a new item: 32 hex digits derived from its (random) id."""
    return hashlib.sha256(f"sluice-trace:{item_id}".encode()).hexdigest()[:32]


def root_span_id(trace_id: str) -> int:
    """The span id of an item's root (intake) span: the trace id's low 64 bits."""
    return int(trace_id[16:], 16) or 1


def item_parent(trace_id: str) -> otel_context.Context:
    """A context whose parent is the item's root span, as a remote span context."""
    remote = SpanContext(
        int(trace_id, 16), root_span_id(trace_id), is_remote=True, trace_flags=_SAMPLED
    )
    return trace.set_span_in_context(NonRecordingSpan(remote), otel_context.Context())


def trace_ids(store: Store, item_ids: Sequence[str]) -> dict[str, str]:
    """The stored trace ids of items, by item id (items without one are left out)."""
    found: dict[str, str] = {}
    with store.read() as conn:
        for start in range(0, len(item_ids), 500):
            part = list(item_ids[start : start + 500])
            for row in conn.execute(
                select(work_items.c.id, work_items.c.trace_id).where(work_items.c.id.in_(part))
            ):
                if row.trace_id:
                    found[row.id] = row.trace_id
    return found


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1e9)


def intake_spans(
    rows: Iterable[Mapping[str, Any]], origin: str, start_ns: int, end_ns: int
) -> None:
    """The root span of each new item (``rows`` as inserted into ``work_items``)."""
    tracer_ = tracer()
    empty = otel_context.Context()
    for row in rows:
        trace_id = row["trace_id"]
        ids = (int(trace_id, 16), root_span_id(trace_id))
        attributes = {
            "sluice.item.id": row["id"],
            "sluice.pipeline": row["pipeline"],
            "sluice.event.source": row["source"],
            "sluice.event.id": row["event_id"],
            "sluice.event.type": row["type"],
            "sluice.intake.origin": origin,
        }
        forced = otel_context.set_value(ROOT_IDS, ids, empty)
        token = otel_context.attach(forced)
        try:
            span = tracer_.start_span(
                "sluice.intake", context=forced, attributes=attributes, start_time=start_ns
            )
        finally:
            otel_context.detach(token)
        got = span.get_span_context()
        if (got.trace_id, got.span_id) != ids:
            # Another SDK setup ignored the forced ids; this span is left unended (never
            # exported) and the item's intake hangs under its remote root instead.
            span = tracer_.start_span(
                "sluice.intake",
                context=item_parent(trace_id),
                attributes=attributes,
                start_time=start_ns,
            )
        span.end(end_time=end_ns)


def _item_attributes(item: ItemView) -> dict[str, Any]:
    return {"sluice.item.id": item.id, "sluice.pipeline": item.pipeline}


@contextmanager
def step_spans(
    items: Sequence[ItemView], step: str, *, batch_id: str, attempt: int
) -> Iterator[dict[str, Span]]:
    """One span per item for an attempt of a step over a batch; yields them by item id.

    While the block runs, ``ITEM_SPANS`` maps each item to its span, so the model calls
    the step makes for its items land in their traces. The caller ends the spans with
    :func:`finish_step_span` (it knows the outputs); any left open are ended on exit.
    """
    tracer_ = tracer()
    spans: dict[str, Span] = {}
    for item in items:
        if not item.trace_id:
            continue
        spans[item.id] = tracer_.start_span(
            f"sluice.step.{step}",
            context=item_parent(item.trace_id),
            attributes={
                **_item_attributes(item),
                "sluice.step": step,
                "sluice.batch.id": batch_id,
                "sluice.batch.size": len(items),
                "sluice.attempt": attempt,
                "sluice.round": item.round,
            },
        )
    by_item = {
        item.id: (spans[item.id].get_span_context(), _item_attributes(item))
        for item in items
        if item.id in spans
    }
    token = otel_context.attach(otel_context.set_value(ITEM_SPANS, by_item))
    try:
        yield spans
    finally:
        otel_context.detach(token)
        for span in spans.values():
            if span.is_recording():
                span.end()


def finish_step_span(span: Span, record: StepRecord) -> None:
    """End an item's step span with what its lineage row says (model, prompt, error)."""
    _annotate(span, record)
    span.end(end_time=_ns(record.finished_at))


def _annotate(span: Span, record: StepRecord) -> None:
    if record.model_name:
        span.set_attribute("sluice.model.name", record.model_name)
    if record.model_version:
        span.set_attribute("sluice.model.version", record.model_version)
    output = record.output or {}
    prompt = output.get("prompt")
    # A step that rendered a versioned prompt records its lineage under "prompt"
    # (RenderedPrompt.lineage()): name, version, sha256.
    if isinstance(prompt, Mapping) and "version" in prompt:
        span.set_attribute("sluice.prompt.name", str(prompt.get("prompt")))
        span.set_attribute("sluice.prompt.version", str(prompt["version"]))
    for key in ("verdict", "outcome", "action", "decided_by", "label"):
        value = output.get(key)
        if isinstance(value, str | int | float | bool):
            span.set_attribute(f"sluice.{key}", value)
    if record.status == "failed":
        span.set_status(Status(StatusCode.ERROR, (record.error or "")[:500]))
        if record.error_type:
            span.set_attribute("error.type", record.error_type)


def record_spans(items: Sequence[ItemView], records: Sequence[StepRecord]) -> None:
    """Spans for lineage rows already written (gate, action, review), one per row.

    Made after the fact from the rows' own start and finish times: these phases call
    no model, so nothing needs them as a parent while they run.
    """
    traced = {item.id: item for item in items if item.trace_id}
    if not traced:
        return
    tracer_ = tracer()
    for record in records:
        item = traced.get(record.item_id)
        if item is None or item.trace_id is None:
            continue
        attributes: dict[str, Any] = {
            **_item_attributes(item),
            "sluice.step": record.step,
            "sluice.round": record.round,
        }
        if record.batch_id:
            attributes["sluice.batch.id"] = record.batch_id
        span = tracer_.start_span(
            _SETTLING_NAMES.get(record.step, f"sluice.step.{record.step}"),
            context=item_parent(item.trace_id),
            attributes=attributes,
            start_time=_ns(record.started_at),
        )
        _annotate(span, record)
        span.end(end_time=_ns(record.finished_at))
