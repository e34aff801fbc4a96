"""Concurrency and rate limits, and one deadline per call, on the real local encoder.

The limits are observed where they act: inside the call an endpoint lets through
(:meth:`Endpoint.invoke`), with the packaged int8 MiniLM doing the work. The deadline is
observed through the gateway: a call that waited for its slot gets only the time left.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from sluice.config import Settings
from sluice.errors import ModelCallError, ModelTimeoutError
from sluice.models import Gateway, load_encoder, load_gateway_config
from sluice.models.endpoints import Endpoint
from sluice.models.gateway_config import EndpointSpec
from sluice.models.gateway_tables import model_calls
from sluice.models.providers.local_encoder import LocalEncoderProvider
from sluice.store import utcnow

#: Distinct texts (the gateway embeds a repeated text once), enough to keep the encoder
#: busy for well over a second on any machine that runs these tests.
MANY = [
    f"message {i}: where is parcel {i * 7} that I ordered on day {i % 28}?" for i in range(4000)
]


@pytest.fixture
def runtime(sqlite_settings: Settings) -> Iterator[Any]:
    """One SQLite runtime: what is timed here does not depend on the store."""
    from sluice.runtime import Runtime

    with Runtime(sqlite_settings) as rt:
        yield rt


def _gateway(runtime: Any, limited: dict[str, Any]) -> Gateway:
    config = load_gateway_config(
        None,
        overrides={
            "endpoints": {
                "limited": {"provider": "local-encoder", "micro_batch": None, **limited},
                "minilm": {"provider": "local-encoder", "micro_batch": None},
            },
            "routes": {
                "limited": {"kind": "embed", "tiers": ["limited"], "cache": {"exact": False}},
                "with-fallback": {
                    "kind": "embed",
                    "tiers": ["limited"],
                    "fallbacks": ["minilm"],
                    "cache": {"exact": False},
                },
            },
        },
    )
    return Gateway(runtime.settings, runtime.store, config=config, registry=runtime.models)


def _errors(runtime: Any, gateway: Gateway) -> list[tuple[str, str | None]]:
    gateway.meter.flush()
    with runtime.store.read() as conn:
        rows = conn.execute(select(model_calls).order_by(model_calls.c.started_at))
        return [(r.endpoint, r.error_kind) for r in rows]


def _hold_slot(gateway: Gateway, timeout_s: float, failed: list[BaseException]) -> threading.Thread:
    """A call that takes the only slot and keeps it until its own timeout (``failed``
    gets its error)."""

    def hold() -> None:
        try:
            gateway.embed("limited", MANY, timeout_s=timeout_s)
        except ModelCallError as exc:
            failed.append(exc)

    holder = threading.Thread(target=hold, daemon=True)
    limits = gateway._endpoints["limited"].limits
    holder.start()
    while not limits.in_flight:
        time.sleep(0.001)
    return holder


@pytest.mark.parametrize("wait_for", ["rate", "slot"])
def test_a_call_gets_only_the_time_left_after_its_wait(runtime: Any, wait_for: str) -> None:
    limited = {"rate_per_second": 1.0} if wait_for == "rate" else {"max_concurrency": 1}
    gateway = _gateway(runtime, limited)
    try:
        load_encoder(runtime.settings).encode(["warm up"])  # start the encoder processes
        gateway.embed("limited", ["warm up"])  # makes the provider; takes the rate token
        failed: list[BaseException] = []
        holder = _hold_slot(gateway, 1.0, failed) if wait_for == "slot" else None
        t0 = time.monotonic()
        # About 1 s waiting (for the next token, or for the holder's timeout to free the
        # slot), then MANY need longer than the 1 s left: the call ends at its 2 s
        # deadline. Given the whole 2 s again after the wait, it would run until 3 s.
        with pytest.raises(ModelCallError, match="every endpoint"):
            gateway.embed("limited", MANY, timeout_s=2.0)
        elapsed = time.monotonic() - t0
        assert 1.8 < elapsed < 2.6, elapsed
        if holder is not None:
            holder.join(10)
            assert failed, "the holder ran into its own timeout"
        assert _errors(runtime, gateway)[-1] == ("limited", "timeout")
    finally:
        gateway.close()


@pytest.mark.parametrize("wait_for", ["rate", "slot"])
def test_a_deadline_that_passes_while_waiting_is_a_timeout_and_the_fallback_answers(
    runtime: Any, wait_for: str
) -> None:
    limit = {"rate_per_second": 0.2} if wait_for == "rate" else {"max_concurrency": 1}
    # The limited endpoint's own timeout; the fallback keeps its default 30 s.
    gateway = _gateway(runtime, {**limit, "timeout_s": 0.3})
    try:
        load_encoder(runtime.settings).encode(["warm up"])  # start the encoder processes
        gateway.embed("limited", ["warm up"])
        holder = _hold_slot(gateway, 1.0, []) if wait_for == "slot" else None
        started = utcnow()
        got = gateway.embed("with-fallback", ["where is my parcel?"])
        assert got.records[0].endpoint == "minilm"
        assert got.records[0].fallbacks == ("limited",)
        if holder is not None:
            holder.join(10)
        gateway.meter.flush()
        with runtime.store.read() as conn:
            gave_up = conn.execute(
                select(model_calls.c.started_at).where(
                    model_calls.c.endpoint == "limited",
                    model_calls.c.inputs == 1,
                    model_calls.c.error_kind == "timeout",
                )
            ).scalar_one()
        # Metered when it gave up: at its 0.3 s deadline, without waiting for the next
        # token (5 s away) or for the slot (held until 1 s).
        assert (gave_up - started).total_seconds() < 0.8
    finally:
        gateway.close()


def _in_flight_probe(
    endpoint: Endpoint, provider: LocalEncoderProvider, texts: list[str]
) -> tuple[list[float], list[int]]:
    """Six threads call through ``endpoint``; returns when each call started and how many
    calls were inside the endpoint at each start."""
    lock = threading.Lock()
    inside = 0
    starts: list[float] = []
    seen: list[int] = []

    def work(timeout_s: float | None) -> Any:
        nonlocal inside
        with lock:
            inside += 1
            starts.append(time.monotonic())
            seen.append(inside)
        try:
            return provider.embed(texts, timeout_s=timeout_s)
        finally:
            with lock:
                inside -= 1

    barrier = threading.Barrier(6)

    def caller() -> None:
        barrier.wait()
        for _ in range(4):
            endpoint.invoke(work, 30.0)

    threads = [threading.Thread(target=caller) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return sorted(starts), seen


def test_max_concurrency_bounds_the_calls_in_flight(sqlite_settings: Settings) -> None:
    spec = EndpointSpec(provider="local-encoder", micro_batch=None, max_concurrency=2)
    endpoint = Endpoint("limited", spec)
    provider = endpoint.provider(sqlite_settings)
    try:
        _, seen = _in_flight_probe(endpoint, provider, MANY[:40])
        assert len(seen) == 24
        assert max(seen) == 2, seen  # never more than the limit, and the limit is used
    finally:
        endpoint.close()


def test_rate_per_second_bounds_how_fast_calls_start(sqlite_settings: Settings) -> None:
    spec = EndpointSpec(provider="local-encoder", micro_batch=None, rate_per_second=12.0)
    endpoint = Endpoint("limited", spec)
    provider = endpoint.provider(sqlite_settings)
    try:
        starts, _ = _in_flight_probe(endpoint, provider, MANY[:1])
        # A burst of 12, then 12 a second: 24 starts take at least (24 - 12) / 12 = 1 s.
        assert len(starts) == 24
        assert starts[-1] - starts[0] > 0.9, starts[-1] - starts[0]
        # And no window of 0.25 s holds more than the burst plus what refills in it.
        for i, start in enumerate(starts):
            assert sum(1 for s in starts[i:] if s - start < 0.25) <= 12 + 3 + 1
    finally:
        endpoint.close()


def test_an_in_process_encoder_times_out_on_standing_threads(
    model_cache: Any, tmp_path: Any
) -> None:
    """In-process encoding cannot be interrupted: calls run on a few standing threads, a
    caller leaves at its deadline, and abandoned calls never take more threads."""
    from helpers import make_settings

    settings = make_settings(tmp_path / "home", None, model_cache, encoder_processes=0)
    provider = LocalEncoderProvider(load_encoder(settings), endpoint="inproc")
    assert provider._workers is not None
    workers = provider._workers.workers
    failures: list[tuple[float, BaseException]] = []

    def call() -> None:
        t0 = time.monotonic()
        try:
            provider.embed(MANY[:300], timeout_s=0.1)
        except BaseException as exc:  # what the test checks
            failures.append((time.monotonic() - t0, exc))

    try:
        threads = [threading.Thread(target=call) for _ in range(3 * workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(failures) == 3 * workers
        assert all(isinstance(exc, ModelTimeoutError) for _, exc in failures), failures
        # Each caller got control back at its deadline, not when the work ended.
        assert max(elapsed for elapsed, _ in failures) < 0.6, failures
        running = [t for t in threading.enumerate() if t.name.startswith("sluice-model-inproc")]
        assert len(running) <= workers, [t.name for t in running]
        vectors, _ = provider.embed(["where is my parcel?"], timeout_s=30.0)
        assert vectors.shape == (1, 384)
    finally:
        provider.close()
        for thread in threading.enumerate():  # the abandoned calls end on their own
            if thread.name.startswith("sluice-model-inproc"):
                thread.join(30)
