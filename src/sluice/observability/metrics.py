"""Prometheus metrics: the registry a process exposes at ``/metrics``, and how to serve it.

Two sources, with different scopes (docs/observability.md, "Metrics"):

* :class:`~sluice.observability.collector.StoreCollector`: everything the planes record
  in the store (step runs, model calls, reviews, queues). The same figures from every
  process that shares the store.
* :class:`CircuitBreakerCollector`: each model endpoint's circuit-breaker state, which
  lives in the memory of the process whose gateway makes the calls (a worker): only that
  process can tell it.

``sluice serve`` exposes :func:`metrics_registry` at ``GET /metrics`` (bearer token);
``sluice worker --metrics-port P`` starts :func:`start_metrics_server` in the worker,
with its breakers added.

Example:
    >>> registry = metrics_registry(store)  # doctest: +SKIP
    >>> body, content_type = render_metrics(registry)  # doctest: +SKIP
    >>> server = start_metrics_server(registry, port=9464)  # doctest: +SKIP
    >>> server.close()  # doctest: +SKIP
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.exposition import start_http_server
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sluice.observability.collector import StoreCollector
from sluice.store import Store

__all__ = [
    "CIRCUIT_STATES",
    "CircuitBreakerCollector",
    "MetricsServer",
    "circuit_states_in",
    "metrics_registry",
    "render_metrics",
    "start_metrics_server",
]

#: The states a circuit breaker can be in (``sluice.models.CircuitBreaker``).
CIRCUIT_STATES = ("closed", "half_open", "open")
_WORST = {state: rank for rank, state in enumerate(CIRCUIT_STATES)}


def circuit_states_in(resources: Iterable[Any]) -> dict[str, str]:
    """Circuit state per endpoint of the gateways found in ``resources``.

    A resource counts if it has a ``circuit_states()`` method (a
    :class:`sluice.models.Gateway`), or is a dataclass with such a field (a pipeline's
    resources). Two gateways with the same endpoint report the worse of their states.

    >>> class Gw:
    ...     def circuit_states(self):
    ...         return {"llm": "open"}
    >>> circuit_states_in([Gw(), None])
    {'llm': 'open'}
    """
    found: dict[int, Any] = {}
    for resource in resources:
        candidates = [resource]
        if is_dataclass(resource) and not isinstance(resource, type):
            candidates += [getattr(resource, f.name) for f in fields(resource)]
        for candidate in candidates:
            if callable(getattr(candidate, "circuit_states", None)):
                found[id(candidate)] = candidate
    states: dict[str, str] = {}
    for gateway in found.values():
        for endpoint, state in gateway.circuit_states().items():
            if _WORST.get(state, 0) >= _WORST.get(states.get(endpoint, "closed"), 0):
                states[endpoint] = state
    return states


class CircuitBreakerCollector(Collector):
    """``sluice_model_circuit_state``: 1 for each endpoint's current state, 0 for the others.

    Args:
        states: Called at each scrape; returns endpoint -> state for this process.

    Example:
        >>> registry = CollectorRegistry()
        >>> _ = registry.register(CircuitBreakerCollector(lambda: {"llm": "open"}))
        >>> registry.get_sample_value(
        ...     "sluice_model_circuit_state", {"endpoint": "llm", "state": "open"}
        ... )
        1.0
    """

    def __init__(self, states: Callable[[], Mapping[str, str]]) -> None:
        self.states = states

    def collect(self) -> Iterable[Metric]:
        """One gauge family, three samples per endpoint."""
        family = GaugeMetricFamily(
            "sluice_model_circuit_state",
            "Circuit breaker of a model endpoint in this process: 1 for the current state.",
            labels=["endpoint", "state"],
        )
        for endpoint, current in sorted(self.states().items()):
            for state in CIRCUIT_STATES:
                family.add_metric([endpoint, state], 1.0 if state == current else 0.0)
        yield family

    def describe(self) -> Iterable[Metric]:
        """Nothing: registration must not call the states function."""
        return []


def metrics_registry(
    store: Store,
    *,
    circuit_states: Callable[[], Mapping[str, str]] | None = None,
    tenant_cap: int = 50,
) -> CollectorRegistry:
    """A registry of this process's metrics: the store's, plus its breakers if given.

    A new registry, not prometheus_client's global one: the global one would add
    process and platform collectors, and state that belongs to the app, not the module.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store, tenant_cap=tenant_cap))
    if circuit_states is not None:
        registry.register(CircuitBreakerCollector(circuit_states))
    return registry


def render_metrics(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The Prometheus text exposition of ``registry`` and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


@dataclass
class MetricsServer:
    """A running metrics HTTP server (see :func:`start_metrics_server`)."""

    host: str
    port: int
    _server: Any
    _thread: threading.Thread

    @property
    def url(self) -> str:
        """Where to scrape it."""
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def start_metrics_server(
    registry: CollectorRegistry, *, port: int, host: str = "127.0.0.1"
) -> MetricsServer:
    """Serve ``registry`` at ``http://host:port/metrics`` from a daemon thread.

    No authentication: bind it to loopback (the default) or a network only Prometheus
    reaches. ``port=0`` picks a free port (see :attr:`MetricsServer.port`).
    """
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(host, int(server.server_port), server, thread)
