"""The alert channel: every alert is stored, audited, and POSTed to a webhook if one is set.

Drift monitors (:mod:`.monitors`) and the gateway's soft budget limits raise alerts
through the same :class:`AlertChannel`:

1. the alert is written to the ``alerts`` table and an ``alert.raised`` audit entry is
   appended, in one transaction (an alert is never stored unaudited, nor the reverse);
2. if ``SLUICE_ALERT_WEBHOOK_URL`` is set, a background thread POSTs the alert as JSON,
   retrying with exponential backoff, and records the outcome on the row
   (``webhook_status``: ``pending`` -> ``delivered`` | ``failed``).

The webhook never blocks or fails the caller: delivery happens on the channel's own
daemon thread, and an unreachable or failing receiver only ends as ``failed`` on the
alert's row. A repeat of the same alert (kind, name, subject) within
``SLUICE_ALERT_COOLDOWN_SECONDS`` is not raised again, so a monitor that stays red does
not page every run.

Example:
    >>> channel = AlertChannel.from_settings(store, settings)  # doctest: +SKIP
    >>> alert = Alert("drift", "prediction", "support-triage", "PSI 0.41")
    >>> channel.raise_alert(alert)  # doctest: +SKIP
    >>> channel.close()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from sluice.config import Settings
from sluice.governance import AuditEvent, append
from sluice.observability.alerts_tables import alerts
from sluice.store import Store, new_id, utcnow

__all__ = ["Alert", "AlertChannel", "AlertRecord", "list_alerts"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    """Something a person should look at.

    Attributes:
        kind: ``drift`` (a monitor) or ``budget`` (a soft budget limit).
        name: The monitor (``prediction`` ...) or ``budget_soft_limit``.
        subject: What it is about: a pipeline, or a budget scope (``task:support-reply``).
        message: One line for a person.
        severity: ``warning`` or ``critical``.
        value: The measured value.
        threshold: The threshold it passed.
        details: Anything else (JSON-safe).
    """

    kind: str
    name: str
    subject: str
    message: str
    severity: str = "warning"
    value: float | None = None
    threshold: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertRecord:
    """A stored alert and its webhook delivery."""

    id: str
    kind: str
    name: str
    subject: str
    severity: str
    message: str
    value: float | None
    threshold: float | None
    details: dict[str, Any]
    created_at: datetime
    webhook_status: str
    webhook_attempts: int
    webhook_error: str | None
    delivered_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (times in ISO 8601)."""
        out = asdict(self)
        out["created_at"] = self.created_at.isoformat()
        out["delivered_at"] = self.delivered_at.isoformat() if self.delivered_at else None
        return out

    def payload(self) -> dict[str, Any]:
        """What the webhook receives."""
        out = self.to_dict()
        for key in ("webhook_status", "webhook_attempts", "webhook_error", "delivered_at"):
            out.pop(key)
        return {"type": "sluice.alert", **out}


def _record(row: Any) -> AlertRecord:
    return AlertRecord(**{k: row._mapping[k] for k in AlertRecord.__dataclass_fields__})


class AlertChannel:
    """Stores, audits and delivers alerts (module docs).

    Args:
        store: Where ``alerts`` lives.
        webhook_url: Where to POST alerts (None: store and audit only).
        timeout_s: Timeout of one POST.
        retries: Further attempts after a failed POST.
        backoff_s: Wait before the first retry; doubled each time.
        cooldown_s: A repeat of an alert within this time is not raised again.
        transport: An httpx transport (tests of the client itself; default: the network).
    """

    def __init__(
        self,
        store: Store,
        *,
        webhook_url: str | None = None,
        timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        cooldown_s: float = 3600.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.store = store
        self.webhook_url = webhook_url
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.cooldown_s = cooldown_s
        self._transport = transport
        self._queue: queue.Queue[AlertRecord | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, store: Store, settings: Settings) -> AlertChannel:
        """A channel configured by the ``SLUICE_ALERT_*`` settings."""
        return cls(
            store,
            webhook_url=settings.alert_webhook_url,
            timeout_s=settings.alert_webhook_timeout_seconds,
            retries=settings.alert_webhook_retries,
            cooldown_s=settings.alert_cooldown_seconds,
        )

    def raise_alert(self, alert: Alert, *, actor: str = "monitors") -> AlertRecord | None:
        """Store and audit ``alert``, and queue its delivery; None if it is a repeat.

        A repeat is the same kind, name and subject raised within the cooldown.
        """
        now = utcnow()
        values: dict[str, Any] = {
            "id": new_id("alert"),
            "kind": alert.kind,
            "name": alert.name,
            "subject": alert.subject,
            "severity": alert.severity,
            "message": alert.message,
            "value": alert.value,
            "threshold": alert.threshold,
            "details": dict(alert.details),
            "created_at": now,
            "webhook_status": "pending" if self.webhook_url else "none",
            "webhook_attempts": 0,
            "webhook_error": None,
            "delivered_at": None,
        }
        with self.store.begin() as conn:
            if self.cooldown_s > 0:
                recent = conn.execute(
                    select(alerts.c.id)
                    .where(
                        alerts.c.kind == alert.kind,
                        alerts.c.name == alert.name,
                        alerts.c.subject == alert.subject,
                        alerts.c.created_at >= now - timedelta(seconds=self.cooldown_s),
                    )
                    .limit(1)
                ).first()
                if recent is not None:
                    return None
            conn.execute(alerts.insert().values(**values))
            append(
                conn,
                [
                    AuditEvent(
                        actor,
                        "alert.raised",
                        values["id"],
                        {
                            "kind": alert.kind,
                            "name": alert.name,
                            "subject": alert.subject,
                            "severity": alert.severity,
                            "value": alert.value,
                            "threshold": alert.threshold,
                        },
                    )
                ],
            )
        record = AlertRecord(**values)
        if self.webhook_url:
            self._start()
            self._queue.put(record)
        return record

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                # A daemon: an alert still being retried never keeps the process alive.
                self._thread = threading.Thread(
                    target=self._deliver_loop, name="sluice-alert-webhook", daemon=True
                )
                self._thread.start()

    def _deliver_loop(self) -> None:
        with httpx.Client(timeout=self.timeout_s, transport=self._transport) as client:
            while True:
                record = self._queue.get()
                try:
                    if record is None:
                        return
                    self._deliver(client, record)
                except Exception:  # the loop must survive anything one delivery does
                    log.exception("alert %s: webhook delivery crashed", getattr(record, "id", ""))
                finally:
                    self._queue.task_done()

    def _deliver(self, client: httpx.Client, record: AlertRecord) -> None:
        assert self.webhook_url is not None
        error: str | None = None
        attempts = 0
        for attempt in range(self.retries + 1):
            attempts = attempt + 1
            try:
                response = client.post(self.webhook_url, json=record.payload())
                if response.status_code < 300:
                    error = None
                    break
                error = f"HTTP {response.status_code}"
                if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                    break  # the receiver refuses this alert; asking again will not help
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            if attempt < self.retries:
                time.sleep(self.backoff_s * 2**attempt)
        if error:
            log.warning("alert %s: webhook %s failed: %s", record.id, self.webhook_url, error)
        with self.store.begin() as conn:
            conn.execute(
                update(alerts)
                .where(alerts.c.id == record.id)
                .values(
                    webhook_status="failed" if error else "delivered",
                    webhook_attempts=attempts,
                    webhook_error=error,
                    delivered_at=None if error else utcnow(),
                )
            )

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until queued deliveries are done; False if ``timeout_s`` passed first."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self._queue.unfinished_tasks:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout_s: float | None = None) -> None:
        """Finish queued deliveries (up to ``timeout_s``) and stop the delivery thread."""
        if self._thread is not None and self._thread.is_alive():
            self.flush(timeout_s)
            self._queue.put(None)
            self._thread.join(timeout_s)

    def budget_alert(self, scope: str, details: Mapping[str, Any]) -> None:
        """Raise the alert of a soft budget limit (the gateway's budget-alert hook)."""
        spent, soft = details.get("spent"), details.get("daily_soft")
        self.raise_alert(
            Alert(
                "budget",
                "budget_soft_limit",
                scope,
                f"{scope} spent {spent} {details.get('currency', '')} today, over its soft "
                f"daily budget of {soft}",
                value=float(spent) if spent is not None else None,
                threshold=float(soft) if soft is not None else None,
                details=dict(details),
            ),
            actor="model-gateway",
        )


def list_alerts(
    store: Store,
    *,
    kind: str | None = None,
    subject: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
) -> list[AlertRecord]:
    """Stored alerts, newest first."""
    query = select(alerts).order_by(alerts.c.created_at.desc(), alerts.c.id.desc()).limit(limit)
    if kind:
        query = query.where(alerts.c.kind == kind)
    if subject:
        query = query.where(alerts.c.subject == subject)
    if since is not None:
        query = query.where(alerts.c.created_at >= since)
    with store.read() as conn:
        return [_record(r) for r in conn.execute(query)]
