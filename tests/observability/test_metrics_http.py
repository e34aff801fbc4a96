"""Prometheus metrics over real HTTP: after a demo run, checked against the store.

The demo runs the support-triage pipeline end to end; then a live uvicorn server over the
same store is scraped at /metrics, the text is parsed with prometheus_client's parser, and
every figure is compared with what the planes recorded (read here with plain SQL).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from api_server import LiveServer
from sluice.api import create_app
from sluice.execution.tables import step_runs, work_items
from sluice.governance import create_token
from sluice.models.gateway_tables import model_calls
from sluice.observability.collector import LATENCY_BUCKETS_S
from sluice.pipelines.support_triage.demo import run_demo
from sluice.review import claim, decide, list_tasks
from sluice.review.tables import review_tasks

PIPELINE = "support-triage"
#: Label names any Sluice metric may carry: none of them identifies an item.
BOUNDED_LABELS = {
    "pipeline",
    "status",
    "step",
    "decided_by",
    "endpoint",
    "model",
    "version",
    "task",
    "outcome",
    "cache",
    "tenant",
    "queue",
    "kind",
    "origin",
    "state",
    "le",
}


def scrape(url: str, token: str) -> dict[str, list[Any]]:
    """Samples by sample name (``..._total``, ``..._bucket``...) from a live /metrics."""
    reply = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain")
    samples: dict[str, list[Any]] = defaultdict(list)
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples[sample.name].append(sample)
    return samples


def value(samples: dict[str, list[Any]], name: str, **labels: str) -> float:
    """The one sample of ``name`` with exactly those label values (for the given keys)."""
    found = [s.value for s in samples[name] if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, labels, found)
    return float(found[0])


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """What PromQL's histogram_quantile() computes from cumulative (upper bound, count)."""
    total = buckets[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    raise AssertionError("rank beyond the last bucket")


def bucket_width(x: float) -> float:
    """Width of the latency bucket that holds ``x``."""
    bounds = [0.0, *LATENCY_BUCKETS_S]
    for lower, upper in itertools.pairwise(bounds):
        if x <= upper:
            return upper - lower
    return math.inf


@pytest.fixture
def demo(runtime: Any, intent_model: Any) -> Any:
    return run_demo(runtime, limit=60)


@pytest.fixture
def server(runtime: Any) -> Any:
    with LiveServer(create_app(runtime.settings, runtime=runtime)) as live:
        yield live


@pytest.fixture
def token(runtime: Any) -> str:
    value, _ = create_token(runtime.store, name="prometheus", role="auditor", created_by="test")
    return value


def test_metrics_after_a_demo_run_match_the_store(
    runtime: Any, demo: Any, server: Any, token: str
) -> None:
    samples = scrape(server.url, token)
    with runtime.store.read() as conn:
        by_status = dict(
            conn.execute(
                select(work_items.c.status, func.count())
                .where(work_items.c.pipeline == PIPELINE)
                .group_by(work_items.c.status)
            ).all()
        )
        runs = conn.execute(
            select(step_runs.c.step, step_runs.c.status, step_runs.c.error_type)
        ).all()
        calls = conn.execute(select(model_calls)).all()
        open_tasks = conn.execute(
            select(func.count())
            .select_from(review_tasks)
            .where(review_tasks.c.state.in_(["open", "claimed", "escalated", "expired"]))
        ).scalar_one()

    # Items by status, queue depth and age: the demo drained its queue.
    assert by_status and demo.report.processed == 60
    for status, n in by_status.items():
        assert value(samples, "sluice_items", pipeline=PIPELINE, status=status) == n
    assert value(samples, "sluice_queue_depth_items", pipeline=PIPELINE) == 0
    assert value(samples, "sluice_queue_oldest_item_age_seconds", pipeline=PIPELINE) == 0

    # Throughput: step runs by step and outcome, settled items by who decided.
    per_step = Counter((r.step, r.status) for r in runs)
    assert per_step
    for (step, status), n in per_step.items():
        got = value(samples, "sluice_step_runs_total", pipeline=PIPELINE, step=step, status=status)
        assert got == n, (step, status)
    settled = sum(s.value for s in samples["sluice_items_settled_total"])
    assert settled == demo.report.auto_handled + demo.report.reviewed

    # Review backlog: what waits for a human.
    assert open_tasks == demo.report.waiting_review > 0
    assert sum(s.value for s in samples["sluice_review_backlog_tasks"]) == open_tasks

    # Model calls: invocations, cache, cost, and no low-confidence rows counted as calls.
    real = [c for c in calls if c.cache not in ("exact", "semantic")]
    real = [c for c in real if c.error_kind != "low_confidence"]
    assert real
    assert sum(s.value for s in samples["sluice_model_calls_total"]) == len(real)
    inputs = sum(c.inputs for c in calls if c.error_kind != "low_confidence")
    assert sum(s.value for s in samples["sluice_model_inputs_total"]) == inputs
    cost_by_model: dict[tuple[str, str], float] = defaultdict(float)
    for c in real:
        cost_by_model[(c.model, c.version)] += c.cost
    for (model, version), cost in cost_by_model.items():
        got = sum(
            s.value
            for s in samples["sluice_model_cost_total"]
            if s.labels["model"] == model and s.labels["version"] == version
        )
        assert got == pytest.approx(cost, rel=1e-9, abs=1e-12)
    assert {s.labels["tenant"] for s in samples["sluice_model_cost_total"]} <= {
        *(c.tenant for c in calls if c.tenant),
        "none",
    }
    endpoints = {c.endpoint for c in calls}
    for endpoint in endpoints:
        rows = [c for c in calls if c.endpoint == endpoint and c.error_kind != "low_confidence"]
        hits = sum(c.inputs for c in rows if c.cache in ("exact", "semantic"))
        total = sum(c.inputs for c in rows)
        expected = hits / total if total else 0.0
        got = value(samples, "sluice_model_cache_hit_ratio", endpoint=endpoint)
        assert got == pytest.approx(expected)
    low = sum(c.inputs for c in calls if c.error_kind == "low_confidence")
    errors = {
        (s.labels["origin"], s.labels["kind"]): s.value for s in samples["sluice_errors_total"]
    }
    assert errors.get(("model", "low_confidence"), 0) == low
    failed = sum(r.status == "failed" and r.error_type != "GuardError" for r in runs)
    step_errors = sum(v for (o, kind), v in errors.items() if o == "step" and kind != "guard")
    assert step_errors == failed

    # Bounded labels only: no item, run or task id anywhere.
    for name, group in samples.items():
        for sample in group:
            assert set(sample.labels) <= BOUNDED_LABELS, (name, sample.labels)
            for label_value in sample.labels.values():
                assert not label_value.startswith(("itm_", "run_", "tsk_", "dec_", "mcl_"))


def test_latency_histograms_give_the_lineage_percentiles(
    runtime: Any, demo: Any, server: Any, token: str
) -> None:
    samples = scrape(server.url, token)
    with runtime.store.read() as conn:
        runs = conn.execute(
            select(step_runs.c.step, step_runs.c.latency_ms).where(
                step_runs.c.status == "completed"
            )
        ).all()
        calls = conn.execute(
            select(model_calls.c.endpoint, model_calls.c.latency_ms).where(
                model_calls.c.cache.not_in(["exact", "semantic"]),
                (model_calls.c.error_kind.is_(None))
                | (model_calls.c.error_kind != "low_confidence"),
            )
        ).all()
    checked = 0
    for series, rows, name in (
        ("step", runs, "sluice_step_latency_seconds"),
        ("endpoint", calls, "sluice_model_call_latency_seconds"),
    ):
        by_key: dict[str, list[float]] = defaultdict(list)
        for key, latency_ms in rows:
            by_key[key].append(latency_ms / 1000)
        assert by_key
        for key, latencies in by_key.items():
            # sum by (le): an endpoint may serve several models (or versions).
            by_le: dict[float, float] = defaultdict(float)
            for s in samples[f"{name}_bucket"]:
                if s.labels[series] == key:
                    by_le[float(s.labels["le"])] += s.value
            buckets = sorted(by_le.items())
            assert buckets[-1][1] == len(latencies), key
            count = sum(s.value for s in samples[f"{name}_count"] if s.labels[series] == key)
            total = sum(s.value for s in samples[f"{name}_sum"] if s.labels[series] == key)
            assert count == len(latencies)
            assert total == pytest.approx(sum(latencies), rel=1e-6)
            for q in (0.5, 0.95):
                # The nearest-rank percentile: histogram_quantile() interpolates within
                # the bucket that holds it, so the two differ by at most that bucket's width.
                truth = float(np.percentile(latencies, q * 100, method="inverted_cdf"))
                estimate = bucket_quantile(q, buckets)
                assert abs(estimate - truth) <= bucket_width(truth), (key, q, estimate, truth)
                checked += 1
    assert checked >= 4


def test_each_scrape_counts_only_new_rows(runtime: Any, demo: Any, server: Any, token: str) -> None:
    first = scrape(server.url, token)
    again = scrape(server.url, token)
    for name in ("sluice_step_runs_total", "sluice_model_calls_total", "sluice_model_inputs_total"):
        assert sorted((tuple(sorted(s.labels.items())), s.value) for s in first[name]) == sorted(
            (tuple(sorted(s.labels.items())), s.value) for s in again[name]
        ), name

    task = list_tasks(runtime.store, pipeline=PIPELINE)[0]
    claim(runtime.store, task.id, reviewer="ana")
    decide(runtime.store, task.id, reviewer="ana", outcome="approve", active_seconds=7.5)
    after = scrape(server.url, token)
    labels = {"pipeline": PIPELINE, "queue": task.queue, "kind": task.kind}
    assert value(after, "sluice_review_decisions_total", outcome="approve", **labels) == 1
    assert value(after, "sluice_review_active_seconds_count", **labels) == 1
    assert value(after, "sluice_review_active_seconds_sum", **labels) == 7.5
    assert value(after, "sluice_review_active_seconds_bucket", le="5.0", **labels) == 0
    assert value(after, "sluice_review_active_seconds_bucket", le="10.0", **labels) == 1
    assert value(after, "sluice_review_resolution_seconds_count", **labels) == 1
    before = sum(s.value for s in first["sluice_review_backlog_tasks"])
    assert sum(s.value for s in after["sluice_review_backlog_tasks"]) == before - 1


def test_metrics_need_an_unscoped_reading_token(runtime: Any, server: Any) -> None:
    assert httpx.get(f"{server.url}/metrics").status_code == 401
    reviewer, _ = create_token(runtime.store, name="r", role="reviewer", created_by="test")
    scoped, _ = create_token(
        runtime.store, name="s", role="operator", created_by="test", pipelines=[PIPELINE]
    )
    for token in (reviewer, scoped):
        reply = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {token}"})
        assert reply.status_code == 403, reply.text
    service, _ = create_token(runtime.store, name="p", role="service", created_by="test")
    reply = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {service}"})
    assert reply.status_code == 200
