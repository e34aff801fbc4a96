"""A Prometheus collector that derives Sluice's metrics from the store at scrape time.

The store is the one source of truth shared by every process and host, so each scrape
asks it: gauges (items by status, queue depth and age, review backlog) are read afresh;
counters and histograms are built from the rows the planes append (step runs, model
calls, review decisions, outbox records), incrementally: each scrape reads only the rows
added since the previous one (:mod:`sluice.observability.collector_rows`). Nothing is
counted in the pipeline's own path, so a worker pays nothing for metrics, and any number
of processes can serve ``/metrics`` with the same figures: they are multi-process safe
by construction (no shared memory files, no per-process counters to add up).

A new collector starts from the first row of the store, so its counters cover the whole
history: after a restart the values come back where they were. A scrape reads at most
``max_rows`` new rows per table; a large store is caught up over a few scrapes.

Labels are bounded: pipeline, step, endpoint, model, version, task, queue, outcome and
error kinds come from code and configuration. Tenants come from event data, so only the
first ``tenant_cap`` tenants seen get a label value of their own; later ones share
``"other"`` (first seen, not top-N by cost: a series must not change its label once
counted, or its counter would jump).

Example:
    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> registry = CollectorRegistry()  # doctest: +SKIP
    >>> registry.register(StoreCollector(store))  # doctest: +SKIP
    >>> b"sluice_step_runs_total" in generate_latest(registry)  # doctest: +SKIP
    True
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from sluice.observability.collector_rows import RowCursor, read_gauges, read_new_rows
from sluice.store import Store, utcnow

__all__ = [
    "LATENCY_BUCKETS_S",
    "REVIEW_ACTIVE_BUCKETS_S",
    "REVIEW_RESOLUTION_BUCKETS_S",
    "StoreCollector",
    "error_kind_of_step",
]

#: Step and model-call latency buckets, in seconds (0.5 ms to 5 min).
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip
#: Review resolution (task opened to decided) buckets, in seconds (1 s to 1 week).
REVIEW_RESOLUTION_BUCKETS_S: tuple[float, ...] = (
    1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 4 * 3600.0,
    8 * 3600.0, 24 * 3600.0, 3 * 24 * 3600.0, 7 * 24 * 3600.0,
)  # fmt: skip
#: Reviewer active time per decision buckets, in seconds (1 s to 30 min).
REVIEW_ACTIVE_BUCKETS_S: tuple[float, ...] = (
    1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
)  # fmt: skip

#: How a failed step run's exception class is counted in ``sluice_errors_total``.
_STEP_ERROR_KINDS = {
    "StepTimeoutError": "timeout",
    "ModelTimeoutError": "timeout",
    "CircuitOpenError": "circuit_open",
    "DataPolicyError": "refused_by_policy",
    "BudgetExceededError": "refused_by_policy",
    "PermissionDeniedError": "refused_by_policy",
    "GuardError": "guard",
}


def error_kind_of_step(error_type: str | None) -> str:
    """The error kind a failed step run counts as, from its exception class name.

    >>> error_kind_of_step("StepTimeoutError"), error_kind_of_step("KeyError")
    ('timeout', 'exception')
    """
    return _STEP_ERROR_KINDS.get(error_type or "", "exception")


@dataclass
class _Histogram:
    bounds: Sequence[float]
    counts: list[int] = field(default_factory=list)  # per bucket, +Inf last (not cumulative)
    total: float = 0.0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, n in zip([*self.bounds, float("inf")], self.counts, strict=True):
            running += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
        return out


class _Tenants:
    """Tenant label values: the first ``cap`` seen keep their name (module docs)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.named: set[str] = set()

    def label(self, tenant: str | None) -> str:
        if tenant is None:
            return "none"
        if tenant in self.named:
            return tenant
        if len(self.named) < self.cap:
            self.named.add(tenant)
            return tenant
        return "other"


class StoreCollector(Collector):
    """Sluice's metrics, derived from ``store`` at each scrape (module docs).

    Args:
        store: The store every process shares.
        tenant_cap: Tenants with a label of their own; the rest are ``"other"``.
        overlap_s: Re-read window for rows that commit late (see ``collector_rows``).
        max_rows: Most new rows read per table in one scrape.
        page: Rows per query.

    Example:
        >>> registry.register(StoreCollector(store, tenant_cap=20))  # doctest: +SKIP
    """

    def __init__(
        self,
        store: Store,
        *,
        tenant_cap: int = 50,
        overlap_s: float = 10.0,
        max_rows: int = 100_000,
        page: int = 5_000,
    ) -> None:
        self.store = store
        self.max_rows = max_rows
        self.page = page
        self._lock = threading.Lock()
        self._cursors = {
            name: RowCursor(overlap_s=overlap_s)
            for name in ("step_runs", "model_calls", "decisions", "outbox")
        }
        self._tenants = _Tenants(tenant_cap)
        self._counters: dict[str, dict[tuple[str, ...], float]] = defaultdict(
            lambda: defaultdict(float)
        )
        self._histograms: dict[str, dict[tuple[str, ...], _Histogram]] = defaultdict(dict)
        # Cache inputs per endpoint: hits (exact or semantic) and all.
        self._cache: dict[str, list[int]] = defaultdict(lambda: [0, 0])

    # -- reading -----------------------------------------------------------------------------
    def _rows(self, source: str) -> Iterator[Any]:
        return read_new_rows(
            self.store, source, self._cursors[source], page=self.page, budget=self.max_rows
        )

    def _count(self, name: str, labels: tuple[str, ...], amount: float = 1.0) -> None:
        self._counters[name][labels] += amount

    def _observe(
        self, name: str, labels: tuple[str, ...], bounds: Sequence[float], value: float
    ) -> None:
        hist = self._histograms[name].get(labels)
        if hist is None:
            hist = self._histograms[name][labels] = _Histogram(bounds)
        hist.observe(value)

    def _read_steps(self) -> None:
        for row in self._rows("step_runs"):
            labels = (row.pipeline, row.step)
            self._count("step_runs", (*labels, row.status))
            if row.status == "completed":
                self._observe("step_latency", labels, LATENCY_BUCKETS_S, row.latency_ms / 1000)
                output = row.output
                if isinstance(output, dict) and output.get("guard"):
                    self._count("errors", ("step", "guard"))
            elif row.status == "failed":
                self._count("errors", ("step", error_kind_of_step(row.error_type)))

    def _read_model_calls(self) -> None:
        for row in self._rows("model_calls"):
            model = (row.endpoint, row.model, row.version)
            if row.error_kind == "low_confidence":  # an answer passed up a tier, not a call
                self._count("errors", ("model", "low_confidence"), row.inputs)
                continue
            self._count("model_inputs", (*model, row.task, row.cache), row.inputs)
            self._cache[row.endpoint][1] += row.inputs
            if row.cache in ("exact", "semantic"):
                self._cache[row.endpoint][0] += row.inputs
                continue
            self._count("model_calls", (*model, row.task, row.error_kind or "ok"))
            self._observe("model_latency", model, LATENCY_BUCKETS_S, row.latency_ms / 1000)
            if row.error_kind:
                self._count("errors", ("model", row.error_kind))
            self._count(
                "model_cost",
                (row.model, row.version, row.task, self._tenants.label(row.tenant)),
                row.cost,
            )

    def _read_decisions(self) -> None:
        for row in self._rows("decisions"):
            labels = (row.pipeline, row.queue, row.kind)
            self._count("decisions", (*labels, row.outcome))
            opened, decided = row.created_at, row.decided_at
            self._observe(
                "review_resolution",
                labels,
                REVIEW_RESOLUTION_BUCKETS_S,
                max(0.0, (decided - opened).total_seconds()),
            )
            if row.active_seconds is not None:
                self._observe(
                    "review_active", labels, REVIEW_ACTIVE_BUCKETS_S, float(row.active_seconds)
                )
            if row.kind == "audit" and row.label != (row.proposal or {}).get("label"):
                self._count("errors", ("audit", "audit_mismatch"))

    def _read_outbox(self) -> None:
        for row in self._rows("outbox"):
            who = "auto" if row.decided_by == "auto" else "human"
            self._count("settled", (row.pipeline, who))

    # -- the Collector protocol -----------------------------------------------------------------
    def collect(self) -> Iterable[Metric]:
        """Read what is new in the store and yield every metric family."""
        with self._lock:
            self._read_steps()
            self._read_model_calls()
            self._read_decisions()
            self._read_outbox()
            gauges = read_gauges(self.store)
            families = [*self._counter_families(), *self._histogram_families()]
        now = utcnow()
        items = GaugeMetricFamily(
            "sluice_items", "Work items by pipeline and status, now.", labels=["pipeline", "status"]
        )
        depth = GaugeMetricFamily(
            "sluice_queue_depth_items",
            "Items waiting in a pipeline's queue (status queued), now.",
            labels=["pipeline"],
        )
        oldest = GaugeMetricFamily(
            "sluice_queue_oldest_item_age_seconds",
            "Age of the oldest queued item of a pipeline (0 when its queue is empty).",
            labels=["pipeline"],
        )
        for (pipeline, status), n in sorted(gauges.items.items()):
            items.add_metric([pipeline, status], n)
        for pipeline in sorted({p for p, _ in gauges.items}):
            depth.add_metric([pipeline], gauges.items.get((pipeline, "queued"), 0))
            since = gauges.queue_oldest.get(pipeline)
            oldest.add_metric([pipeline], (now - since).total_seconds() if since else 0.0)
        backlog = GaugeMetricFamily(
            "sluice_review_backlog_tasks",
            "Review tasks not decided yet (open, claimed, escalated, expired), now.",
            labels=["pipeline", "queue", "kind"],
        )
        for key, n in sorted(gauges.review_backlog.items()):
            backlog.add_metric(list(key), n)
        task_age = GaugeMetricFamily(
            "sluice_review_oldest_task_age_seconds",
            "Age of the oldest undecided review task of a queue.",
            labels=["pipeline", "queue"],
        )
        for (pipeline, queue), since in sorted(gauges.review_oldest.items()):
            task_age.add_metric([pipeline, queue], max(0.0, (now - since).total_seconds()))
        yield from families
        yield from (items, depth, oldest, backlog, task_age)

    def describe(self) -> Iterable[Metric]:
        """Nothing: the registry must not call :meth:`collect` (a store read) to register."""
        return []

    # -- families -------------------------------------------------------------------------------
    def _counter_families(self) -> Iterator[Metric]:
        specs = [
            (
                "step_runs",
                "sluice_step_runs",
                "Step runs recorded, by outcome (completed, failed, duplicate).",
                ["pipeline", "step", "status"],
            ),
            (
                "settled",
                "sluice_items_settled",
                "Items whose action reached the outbox, by who decided (auto or human).",
                ["pipeline", "decided_by"],
            ),
            (
                "model_calls",
                "sluice_model_calls",
                "Provider invocations through the gateway (a batch is one), by outcome.",
                ["endpoint", "model", "version", "task", "outcome"],
            ),
            (
                "model_inputs",
                "sluice_model_inputs",
                "Inputs sent to the gateway, by cache result (miss, exact, semantic, off).",
                ["endpoint", "model", "version", "task", "cache"],
            ),
            (
                "model_cost",
                "sluice_model_cost",
                "What model calls cost, in the price table's currency.",
                ["model", "version", "task", "tenant"],
            ),
            (
                "decisions",
                "sluice_review_decisions",
                "Review decisions, by outcome (approve, correct, reject).",
                ["pipeline", "queue", "kind", "outcome"],
            ),
            (
                "errors",
                "sluice_errors",
                "Errors by origin (step, model, audit) and kind.",
                ["origin", "kind"],
            ),
        ]
        for key, name, doc, labels in specs:
            family = CounterMetricFamily(name, doc, labels=labels)
            for values, amount in sorted(self._counters[key].items()):
                family.add_metric(list(values), amount)
            yield family
        ratio = GaugeMetricFamily(
            "sluice_model_cache_hit_ratio",
            "Share of an endpoint's inputs answered from the cache, over the store's history.",
            labels=["endpoint"],
        )
        for endpoint, (hits, total) in sorted(self._cache.items()):
            ratio.add_metric([endpoint], hits / total if total else 0.0)
        yield ratio

    def _histogram_families(self) -> Iterator[Metric]:
        specs = [
            (
                "step_latency",
                "sluice_step_latency_seconds",
                "Latency of completed step runs (a batch step's latency on each of its items).",
                ["pipeline", "step"],
            ),
            (
                "model_latency",
                "sluice_model_call_latency_seconds",
                "Latency of provider invocations (cache hits excluded).",
                ["endpoint", "model", "version"],
            ),
            (
                "review_resolution",
                "sluice_review_resolution_seconds",
                "Time from a review task's opening to its decision.",
                ["pipeline", "queue", "kind"],
            ),
            (
                "review_active",
                "sluice_review_active_seconds",
                "Time the review screen was in front of the reviewer, per decision.",
                ["pipeline", "queue", "kind"],
            ),
        ]
        for key, name, doc, labels in specs:
            family = HistogramMetricFamily(name, doc, labels=labels)
            for values, hist in sorted(self._histograms[key].items()):
                family.add_metric(list(values), hist.buckets(), hist.total)
            yield family
