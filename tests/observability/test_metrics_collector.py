"""The store collector's bookkeeping (tenant cap, late rows), and a worker's own /metrics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from api_server import free_port
from sluice.execution import parse_jsonl, submit_lines
from sluice.models.gateway_tables import model_calls
from sluice.models.metering import Meter
from sluice.observability import StoreCollector
from sluice.pipelines.support_triage import triage
from sluice.pipelines.support_triage.demo import run_demo, sample_events
from sluice.store import new_id, utcnow

TESTS = Path(__file__).parent.parent


def _call(meter: Meter, tenant: str | None, cost: float, **extra: Any) -> None:
    meter.call(
        call_id=new_id("call"),
        task="classify",
        kind="classify",
        endpoint="minilm",
        model="m",
        version="1",
        tenant=tenant,
        inputs=1,
        latency_ms=3.0,
        cost=cost,
        **extra,
    )


def _cost(registry: CollectorRegistry, tenant: str) -> float | None:
    return registry.get_sample_value(
        "sluice_model_cost_total",
        {"model": "m", "version": "1", "task": "classify", "tenant": tenant},
    )


def test_tenants_past_the_cap_share_other_and_keep_their_label(sqlite_settings: Any) -> None:
    from sluice.runtime import Runtime

    with Runtime(sqlite_settings) as rt:
        meter = Meter(rt.store)
        for n, tenant in enumerate(["a", "b", "c", "d", None]):
            # Ids order rows by the millisecond they were written: one per row here, so
            # "first seen" is a, then b.
            _call(meter, tenant, cost=float(n + 1))
            meter.flush()
            time.sleep(0.003)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(StoreCollector(rt.store, tenant_cap=2))
        assert _cost(registry, "a") == 1.0
        assert _cost(registry, "b") == 2.0
        assert _cost(registry, "other") == 3.0 + 4.0  # c and d
        assert _cost(registry, "none") == 5.0
        assert _cost(registry, "c") is None
        # A new tenant later is "other" too; "a" keeps its own series.
        _call(meter, "e", cost=10.0)
        _call(meter, "a", cost=100.0)
        _call(meter, None, cost=0.5, error=TimeoutError("slow"))
        meter.flush()
        assert _cost(registry, "other") == 17.0
        assert _cost(registry, "a") == 101.0
        assert (
            registry.get_sample_value(
                "sluice_errors_total", {"origin": "model", "kind": "exception"}
            )
            == 1.0
        )
        meter.close()


def test_a_row_that_commits_late_is_counted_once(sqlite_settings: Any) -> None:
    from sluice.runtime import Runtime

    def row(row_id: str) -> dict[str, Any]:
        return {
            "id": row_id,
            "call_id": row_id,
            "task": "t",
            "kind": "classify",
            "endpoint": "e",
            "model": "m",
            "version": "1",
            "tenant": None,
            "inputs": 1,
            "latency_ms": 1.0,
            "input_tokens": 0,
            "output_tokens": 0,
            "cost": 0.0,
            "cache": "miss",
            "tier": 0,
            "canary": False,
            "started_at": utcnow(),
        }

    with Runtime(sqlite_settings) as rt:
        early = new_id("mcl")  # drawn first, committed last: a slow transaction
        time.sleep(0.005)
        with rt.store.begin() as conn:
            conn.execute(model_calls.insert(), [row(new_id("mcl")) for _ in range(3)])
        registry = CollectorRegistry(auto_describe=False)
        registry.register(StoreCollector(rt.store, overlap_s=60.0, page=2))

        def calls() -> float | None:
            return registry.get_sample_value(
                "sluice_model_calls_total",
                {"endpoint": "e", "model": "m", "version": "1", "task": "t", "outcome": "ok"},
            )

        assert calls() == 3
        with rt.store.begin() as conn:
            conn.execute(model_calls.insert(), [row(early)])
        assert calls() == 4
        assert calls() == 4  # re-read inside the window, not counted again


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(url, timeout=30).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_worker_metrics_port_serves_store_metrics_and_its_circuit_breakers(
    runtime: Any, intent_model: Any
) -> None:
    run_demo(runtime, limit=4)  # trains what the pipeline needs
    lines, _ = sample_events("metrics-worker", 12)
    accepted = submit_lines(
        runtime.store, triage, parse_jsonl(lines, max_bytes=10**6), origin="test"
    ).accepted
    assert len(accepted) == 12
    settings = runtime.settings
    env = dict(os.environ)
    env.update(
        {
            "SLUICE_HOME": str(settings.home),
            "SLUICE_MODEL_CACHE": str(settings.model_cache),
            "SLUICE_POLL_INTERVAL_SECONDS": "0.05",
            "SLUICE_AUDIT_SAMPLE_RATE": "0",
            "PYTHONPATH": os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]),
        }
    )
    if settings.database_url:
        env["SLUICE_DATABASE_URL"] = settings.database_url
    port = free_port()
    worker = subprocess.Popen(
        [
            *(sys.executable, "-m", "sluice", "worker", "-p", "support-triage"),
            *("--executor-id", "metrics-worker", "--metrics-port", str(port)),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    pipeline = (("pipeline", "support-triage"),)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
            assert time.monotonic() < deadline, "the worker did not drain its queue in time"
            try:
                samples = _scrape(url)
            except httpx.TransportError:
                time.sleep(0.2)
                continue
            breakers = [k for k in samples if k[0] == "sluice_model_circuit_state"]
            items = {
                dict(labels)["status"]: v
                for (name, labels), v in samples.items()
                if name == "sluice_items" and dict(labels)["pipeline"] == "support-triage"
            }
            pending = items.get("queued", 0) + items.get("running", 0)
            if sum(items.values()) == 16 and pending == 0 and breakers:
                break
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    # The store's figures, as the API would give them.
    assert samples[("sluice_queue_depth_items", pipeline)] == 0
    assert items.get("completed", 0) + items.get("waiting_review", 0) == 16
    steps = [k for k in samples if k[0] == "sluice_step_runs_total"]
    assert steps
    # This process's breakers: every endpoint it called is closed, one state set per endpoint.
    states: dict[str, dict[str, float]] = {}
    for (name, labels), v in samples.items():
        if name == "sluice_model_circuit_state":
            as_dict = dict(labels)
            states.setdefault(as_dict["endpoint"], {})[as_dict["state"]] = v
    assert "minilm" in states
    for endpoint, by_state in states.items():
        assert set(by_state) == {"closed", "half_open", "open"}, endpoint
        assert sum(by_state.values()) == 1, endpoint
    assert states["minilm"]["closed"] == 1


@pytest.mark.parametrize("bad", ["0.5", "abc"])
def test_worker_refuses_a_bad_metrics_port(bad: str, tmp_path: Path) -> None:
    env = dict(os.environ, SLUICE_HOME=str(tmp_path / "home"))
    out = subprocess.run(
        [sys.executable, "-m", "sluice", "worker", "--metrics-port", bad],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr
