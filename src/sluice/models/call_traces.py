"""Spans of model calls, in the traces of the work items they were made for.

:func:`traced` wraps the gateway's public calls (``classify``, ``embed``, ``chat``). A
call made inside a pipeline step finds, in the OpenTelemetry context, the key
``"sluice.trace.item_spans"`` that the execution plane sets while a step runs: a map
from item id to the span context of that item's step span and the item's attributes.
Then:

* each input whose key (``keys=`` of ``classify``, ``key=`` of ``chat``) is an item of
  that map gets its own ``sluice.model.<kind>`` span, a child of the item's step span,
  so a batched call appears in every item's trace (with ``sluice.model.inputs``, the
  size of the batch it was part of, and the whole call's duration);
* inputs without such a key get one span for the call, in the current context, linked
  to every item's step span; when the step runs for one item, they are that item's.

The call record of each input gives the span its attributes: endpoint, model and
version, cache outcome, cost, tier, canary, fallbacks, tokens.

Only the OpenTelemetry API is used (no import of another plane): until an SDK tracer
provider is installed, a call pays one ``isinstance`` check and nothing else.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    Link,
    NoOpTracerProvider,
    ProxyTracerProvider,
    SpanContext,
    Status,
    StatusCode,
)

from sluice.models.calls import CallKind, CallRecord, Chatted, Classified, Embedded

__all__ = ["ITEM_SPANS", "traced"]

#: The context key the execution plane sets while a step runs (see module docs).
ITEM_SPANS = "sluice.trace.item_spans"

F = TypeVar("F", bound=Callable[..., Any])
_ItemSpans = Mapping[str, tuple[SpanContext, Mapping[str, Any]]]


def _enabled() -> bool:
    return not isinstance(trace.get_tracer_provider(), ProxyTracerProvider | NoOpTracerProvider)


def traced(kind: CallKind) -> Callable[[F], F]:
    """Decorate a gateway call ``(self, task, inputs, **options)`` with its spans."""

    def wrap(method: F) -> F:
        @functools.wraps(method)
        def call(self: Any, task: str, inputs: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
            if not _enabled():
                return method(self, task, inputs, *args, **kwargs)
            if kind == "chat":
                keys: list[str | None] = [kwargs.get("key")]
            else:
                given = kwargs.get("keys")
                keys = list(given) if given is not None else [None] * len(inputs)
            started = time.time_ns()
            try:
                result = method(self, task, inputs, *args, **kwargs)
            except BaseException as exc:
                _emit(kind, task, keys, started, [], exc)
                raise
            _emit(kind, task, keys, started, _records(result), None)
            return result

        return cast(F, call)

    return wrap


def _records(result: Any) -> list[CallRecord]:
    if isinstance(result, Chatted):
        return [result.record]
    if isinstance(result, Embedded):
        return list(result.records)
    return [c.record for c in result if isinstance(c, Classified)]


def _attributes(record: CallRecord | None, task: str, kind: str, inputs: int) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "sluice.model.task": task,
        "sluice.model.kind": kind,
        "sluice.model.inputs": inputs,
    }
    if record is None:
        return attributes
    attributes |= {
        "sluice.model.call_id": record.call_id,
        "sluice.model.endpoint": record.endpoint,
        "sluice.model.name": record.model,
        "sluice.model.version": record.version,
        "sluice.model.cache": record.cache,
        "sluice.model.cost": record.cost,
        "sluice.model.tier": record.tier,
        "sluice.model.canary": record.canary,
    }
    if record.fallbacks:
        attributes["sluice.model.fallbacks"] = list(record.fallbacks)
    if record.escalated_from:
        attributes["sluice.model.escalated_from"] = list(record.escalated_from)
    if kind == "chat":
        attributes["gen_ai.usage.input_tokens"] = record.input_tokens
        attributes["gen_ai.usage.output_tokens"] = record.output_tokens
    return attributes


def _emit(
    kind: CallKind,
    task: str,
    keys: Sequence[str | None],
    started: int,
    records: Sequence[CallRecord],
    error: BaseException | None,
) -> None:
    items = cast(_ItemSpans, otel_context.get_value(ITEM_SPANS) or {})
    tracer = trace.get_tracer_provider().get_tracer("sluice.models")
    ended = time.time_ns()
    name = f"sluice.model.{kind}"
    sole = next(iter(items)) if len(items) == 1 else None
    per_item: dict[str, int] = {}
    loose: list[int] = []
    for i, key in enumerate(keys):
        owner = key if key in items else sole
        if owner is not None:
            per_item.setdefault(owner, i)
        else:
            loose.append(i)

    def finish(span: Any) -> None:
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, str(error)[:500]))
            span.set_attribute("error.type", type(error).__name__)
        span.end(end_time=ended)

    for item_id, i in per_item.items():
        parent, item_attributes = items[item_id]
        record = records[i] if i < len(records) else None
        span = tracer.start_span(
            name,
            context=trace.set_span_in_context(trace.NonRecordingSpan(parent)),
            attributes={**item_attributes, **_attributes(record, task, kind, len(keys))},
            start_time=started,
        )
        finish(span)
    if loose or not keys:
        record = records[loose[0]] if loose and loose[0] < len(records) else None
        span = tracer.start_span(
            name,
            attributes=_attributes(record, task, kind, len(keys)),
            links=[Link(parent) for parent, _ in items.values()],
            start_time=started,
        )
        finish(span)
