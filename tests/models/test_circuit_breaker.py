"""The circuit breaker through the gateway, on the real local encoder.

The encoder is made to fail by a timeout shorter than it can answer in (1 µs), so every
failure here is a real call that really ran out of time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from sluice.config import Settings
from sluice.errors import ModelCallError
from sluice.models import Gateway, load_gateway_config
from sluice.models.gateway_tables import model_calls

COOLDOWN_S = 0.5


@pytest.fixture
def gateway(sqlite_settings: Settings) -> Iterator[Gateway]:
    from sluice.runtime import Runtime

    config = load_gateway_config(
        None,
        overrides={
            "endpoints": {
                "fragile": {
                    "provider": "local-encoder",
                    "micro_batch": None,
                    "circuit": {"failures": 2, "cooldown_s": COOLDOWN_S},
                }
            },
            "routes": {
                "fragile": {"kind": "embed", "tiers": ["fragile"], "cache": {"exact": False}}
            },
        },
    )
    with Runtime(sqlite_settings) as rt:
        gw = Gateway(rt.settings, rt.store, config=config, registry=rt.models)
        try:
            yield gw
        finally:
            gw.close()


def _errors(gateway: Gateway) -> list[str | None]:
    gateway.meter.flush()
    with gateway.store.read() as conn:
        rows = conn.execute(select(model_calls).order_by(model_calls.c.started_at))
        return [r.error_kind for r in rows]


def _fail(gateway: Gateway) -> None:
    with pytest.raises(ModelCallError):
        gateway.embed("fragile", ["where is my refund?"], timeout_s=1e-6)


def test_a_failed_half_open_trial_opens_the_circuit_for_a_new_cooldown(gateway: Gateway) -> None:
    breaker = gateway._endpoints["fragile"].breaker
    gateway.embed("fragile", ["warm up"])  # starts the encoder: later failures are timeouts
    _fail(gateway)
    _fail(gateway)
    assert gateway.circuit_states()["fragile"] == "open"
    time.sleep(COOLDOWN_S + 0.1)
    assert gateway.circuit_states()["fragile"] == "half_open"

    _fail(gateway)  # the one trial call, and it fails
    # Open again at once, for a whole new cool-down: not half-open, not closed.
    assert gateway.circuit_states()["fragile"] == "open"
    assert breaker.retry_in() > COOLDOWN_S * 0.6
    with pytest.raises(ModelCallError, match="circuit is open"):
        gateway.embed("fragile", ["where is my refund?"])  # a good call is not even made

    time.sleep(COOLDOWN_S + 0.1)
    assert gateway.embed("fragile", ["where is my refund?"]).vectors.shape == (1, 384)
    assert gateway.circuit_states()["fragile"] == "closed"
    assert _errors(gateway) == [
        None,
        "timeout",
        "timeout",
        "timeout",  # the trial
        "circuit_open",
        None,
    ]
