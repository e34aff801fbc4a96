"""The alert channel: stored, audited, POSTed to a real loopback webhook; never blocking."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sluice.config import Settings
from sluice.governance import iter_entries
from sluice.models.budgets import BudgetLedger
from sluice.models.gateway_config import Budgets, BudgetSpec
from sluice.observability import Alert, AlertChannel, list_alerts
from sluice.store import Store, open_store


class _Receiver:
    """A webhook receiver on 127.0.0.1: records the JSON bodies, answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.bodies: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    r = _Receiver()
    yield r
    r.close()


@pytest.fixture
def store(sqlite_settings: Settings) -> Iterator[Store]:
    s = open_store(sqlite_settings)
    yield s
    s.dispose()


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"  # nothing listens there any more


def _audited(store: Store, action: str) -> list[Any]:
    with store.read() as conn:
        return [e for e in iter_entries(conn) if e.action == action]


def test_an_alert_is_stored_audited_and_posted(store: Store, receiver: _Receiver) -> None:
    channel = AlertChannel(store, webhook_url=receiver.url)
    record = channel.raise_alert(
        Alert("drift", "prediction", "support-triage", "PSI 0.41", value=0.41, threshold=0.2)
    )
    assert record is not None
    assert channel.flush(10)
    channel.close(5)
    [stored] = list_alerts(store)
    assert stored.id == record.id
    assert stored.webhook_status == "delivered"
    assert stored.webhook_attempts == 1
    [body] = receiver.bodies
    assert body["type"] == "sluice.alert"
    assert body["id"] == record.id
    assert body["name"] == "prediction"
    assert body["value"] == 0.41
    [entry] = _audited(store, "alert.raised")
    assert entry.target == record.id
    assert entry.details_dict()["subject"] == "support-triage"


def test_a_failing_receiver_is_retried_then_marked_failed(
    store: Store, receiver: _Receiver
) -> None:
    receiver.status = 503
    channel = AlertChannel(store, webhook_url=receiver.url, retries=2, backoff_s=0.01)
    record = channel.raise_alert(Alert("drift", "confidence", "p", "more low confidence"))
    assert record is not None
    assert channel.flush(10)
    channel.close(5)
    [stored] = list_alerts(store)
    assert stored.webhook_status == "failed"
    assert stored.webhook_attempts == 3
    assert stored.webhook_error == "HTTP 503"
    assert len(receiver.bodies) == 3


def test_a_down_webhook_never_blocks_or_fails_the_caller(store: Store) -> None:
    channel = AlertChannel(store, webhook_url=_closed_port_url(), retries=3, backoff_s=0.2)
    started = time.monotonic()
    record = channel.raise_alert(Alert("drift", "input_length", "p", "longer texts"))
    elapsed = time.monotonic() - started
    # Retries take >= 0.2 + 0.4 + 0.8 s; the caller returned long before.
    assert elapsed < 0.5
    assert record is not None
    assert list_alerts(store)[0].webhook_status == "pending"
    assert channel.flush(20)
    channel.close(5)
    [stored] = list_alerts(store)
    assert stored.webhook_status == "failed"
    assert stored.webhook_attempts == 4
    assert "ConnectError" in (stored.webhook_error or "")


def test_repeats_within_the_cooldown_are_not_raised(store: Store) -> None:
    channel = AlertChannel(store, cooldown_s=3600)
    first = channel.raise_alert(Alert("drift", "prediction", "p", "x"))
    again = channel.raise_alert(Alert("drift", "prediction", "p", "x"))
    other = channel.raise_alert(Alert("drift", "prediction", "q", "x"))
    assert first is not None
    assert again is None
    assert other is not None
    assert {a.subject for a in list_alerts(store)} == {"p", "q"}
    assert list_alerts(store)[0].webhook_status == "none"
    no_cooldown = AlertChannel(store, cooldown_s=0)
    assert no_cooldown.raise_alert(Alert("drift", "prediction", "p", "x")) is not None


def test_soft_budget_alerts_go_through_the_same_channel(
    sqlite_settings: Settings, receiver: _Receiver
) -> None:
    from sluice.runtime import Runtime

    settings = sqlite_settings.model_copy(update={"alert_webhook_url": receiver.url})
    with Runtime(settings) as rt:
        ledger = BudgetLedger(
            rt.store, Budgets(tasks={"support-reply": BudgetSpec(daily_soft=0.01)})
        )
        hold = ledger.reserve("support-reply", None, 0.02)
        ledger.settle(hold, 0.015)  # passes the soft limit: alert
        hold = ledger.reserve("support-reply", None, 0.02)
        ledger.settle(hold, 0.015)  # same day: the gateway alerts once
        assert rt.alerts.flush(10)
        [alert] = list_alerts(rt.store, kind="budget")
        assert alert.subject == "task:support-reply"
        assert alert.threshold == 0.01
        assert alert.webhook_status == "delivered"
        assert _audited(rt.store, "model.budget_alert")
        assert [e.target for e in _audited(rt.store, "alert.raised")] == [alert.id]
    assert [b["kind"] for b in receiver.bodies] == ["budget"]


def test_a_broken_alert_hook_does_not_fail_the_model_call(store: Store) -> None:
    from sluice.models import set_budget_alert_hook

    def broken(scope: str, details: Any) -> None:
        raise RuntimeError("alert store down")

    previous = set_budget_alert_hook(broken)
    try:
        ledger = BudgetLedger(store, Budgets(tasks={"t": BudgetSpec(daily_soft=0.0)}))
        ledger.settle(ledger.reserve("t", None, 0.01), 0.01)  # must not raise
        assert ledger.spent("task:t") == pytest.approx(0.01)
    finally:
        set_budget_alert_hook(previous)
