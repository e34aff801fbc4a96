"""Micro-batching on the real local encoder: no window, batches form while one runs.

The batcher dispatches a request at once when the encoder is idle and batches only what
arrives while a batch is running; a caller's timeout withdraws a request still queued.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from sluice.config import Settings
from sluice.models import Encoder, Gateway, MicroBatcher, load_encoder, load_gateway_config

#: Distinct texts: a request of many keeps the encoder busy for a while.
TEXTS = [f"message {i}: my card number {i * 13} was charged twice" for i in range(1500)]


@pytest.fixture
def encoder(sqlite_settings: Settings) -> Encoder:
    encoder = load_encoder(sqlite_settings)
    encoder.encode(["warm up"])  # starts the encoder processes
    return encoder


@pytest.fixture
def batcher(encoder: Encoder) -> Iterator[MicroBatcher[Any]]:
    batcher: MicroBatcher[Any] = MicroBatcher(
        encoder.encode, max_batch=4096, name="test", max_in_flight=1
    )
    try:
        yield batcher
    finally:
        batcher.close()


def _in_background(fn: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        out["result"] = fn()
        out["done_at"] = time.monotonic()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def _until(condition: Any) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.001)


def test_a_lone_caller_waits_for_no_window(sqlite_settings: Settings) -> None:
    from sluice.runtime import Runtime

    # max_wait_ms is what older configurations set; it no longer delays anything.
    config = load_gateway_config(
        None,
        overrides={
            "endpoints": {
                "minilm": {
                    "provider": "local-encoder",
                    "micro_batch": {"max_batch": 32, "max_wait_ms": 1000},
                }
            },
            "routes": {"embed": {"kind": "embed", "tiers": ["minilm"], "cache": {"exact": False}}},
        },
    )
    with Runtime(sqlite_settings) as rt:
        gateway = Gateway(rt.settings, rt.store, config=config, registry=rt.models)
        try:
            gateway.embed("embed", ["warm up"])
            seconds = []
            for text in TEXTS[:10]:
                t0 = time.monotonic()
                gateway.embed("embed", [text])
                seconds.append(time.monotonic() - t0)
            # One text takes milliseconds; a window would add up to a second to each.
            assert statistics.median(seconds) < 0.25, seconds
            stats = gateway._encoder("minilm").batcher.stats  # type: ignore[attr-defined]
            assert (stats.requests, stats.dispatches) == (11, 11)
        finally:
            gateway.close()


def test_what_arrives_while_a_batch_runs_goes_as_the_next_batch(
    batcher: MicroBatcher[Any], encoder: Encoder
) -> None:
    first, _ = _in_background(lambda: batcher.submit(TEXTS[:600]))
    _until(lambda: batcher.stats.dispatches == 1)  # the first request is running, alone
    singles = TEXTS[600:605]
    late = [_in_background(lambda t=t: batcher.submit([t])) for t in singles]
    first.join(60)
    for thread, _ in late:
        thread.join(60)
    # The five requests queued while the first ran were dispatched together.
    assert (batcher.stats.requests, batcher.stats.dispatches) == (6, 2)
    assert batcher.stats.texts == 605
    for text, (_, out) in zip(singles, late, strict=True):
        assert np.array_equal(out["result"][0], encoder.encode([text])[0])


def test_a_timed_out_request_is_withdrawn_before_it_runs(batcher: MicroBatcher[Any]) -> None:
    first, out = _in_background(lambda: batcher.submit(TEXTS))
    _until(lambda: batcher.stats.dispatches == 1)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        batcher.submit(["where is my card?"], timeout_s=0.05)
    returned_at = time.monotonic()
    assert returned_at - t0 < 0.5
    first.join(120)
    # The caller left at its deadline, while the batch it waited behind still ran...
    assert returned_at < out["done_at"]
    # ...and its request was never dispatched: no work for a caller who left.
    assert (batcher.stats.dispatches, batcher.stats.texts) == (1, len(TEXTS))
