"""The OpenTelemetry SDK set-up: one trace per work item, exported over OTLP/HTTP.

The planes make their spans with the OpenTelemetry API only (the library pattern): with
no SDK tracer provider installed, every one of them is skipped. The edges (``sluice
worker``, ``sluice serve``) call :func:`configure_tracing` at start; it installs the
provider only when ``SLUICE_OTLP_ENDPOINT`` is set (or an exporter is passed, as tests
do), so tracing is off by default.

What the provider adds to the SDK's defaults is an id generator that honours the ids
the execution plane asks for when an item's root span starts (context key
``"sluice.trace.root_ids"``, see :mod:`sluice.execution.traces`): the intake span then
*is* the root of the item's trace, whose id is stored with the item, and every later
span, made by any process on any day, hangs under it.

Example:
    >>> from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    ...     InMemorySpanExporter)
    >>> provider = configure_tracing(settings, exporter=InMemorySpanExporter())
    ... # doctest: +SKIP
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace

from sluice.config import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.id_generator import IdGenerator

__all__ = ["configure_tracing", "tracing_provider"]

log = logging.getLogger("sluice.observability")

#: The context key of :mod:`sluice.execution.traces` (a string: no plane imports another).
ROOT_IDS = "sluice.trace.root_ids"


def tracing_provider() -> TracerProvider | None:
    """The SDK tracer provider installed in this process, if any."""
    from opentelemetry.sdk.trace import TracerProvider

    provider = trace.get_tracer_provider()
    return provider if isinstance(provider, TracerProvider) else None


def configure_tracing(
    settings: Settings, *, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """Install the SDK tracer provider when tracing is configured; else do nothing.

    Args:
        settings: ``otlp_endpoint`` turns tracing on (spans batched to it over HTTP);
            ``executor_id`` and ``app_version`` describe this process.
        exporter: Export here instead, each span as it ends (tests: an
            ``InMemorySpanExporter``).

    Returns:
        The installed provider (the one already installed, if any), or None when
        tracing is off. The provider flushes its spans at interpreter exit.
    """
    if exporter is None and not settings.otlp_endpoint:
        return None  # off: not even the SDK is imported
    existing = tracing_provider()
    if existing is not None:
        log.warning("a tracer provider is already installed; keeping it")
        return existing
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(
        resource=Resource.create(
            {
                "service.name": "sluice",
                "service.version": settings.app_version,
                "service.instance.id": settings.executor_id,
            }
        ),
        id_generator=_item_ids(),
    )
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # Batched off the hot path: a step's spans cost their creation, not an export.
        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint))
        )
    trace.set_tracer_provider(provider)
    return provider


def _item_ids() -> IdGenerator:
    """The SDK's random ids, except where the execution plane forces an item's root.

    Made here, not at import: the SDK takes ~90 ms to import, paid only when tracing is on.
    """
    from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator

    class ItemIdGenerator(IdGenerator):
        def __init__(self) -> None:
            self._random = RandomIdGenerator()

        def generate_span_id(self) -> int:
            forced = otel_context.get_value(ROOT_IDS)
            if isinstance(forced, tuple):
                return int(forced[1])
            return self._random.generate_span_id()

        def generate_trace_id(self) -> int:
            forced = otel_context.get_value(ROOT_IDS)
            if isinstance(forced, tuple):
                return int(forced[0])
            return self._random.generate_trace_id()

        def is_trace_id_random(self) -> bool:
            return False  # derived from the item id, not drawn for the span

    return ItemIdGenerator()
