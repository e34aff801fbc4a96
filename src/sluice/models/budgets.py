"""Daily budgets per task and per tenant: an alert at the soft limit, a refusal at the hard.

A paid call *reserves* its worst-case cost in every budget that applies to it before it
goes out (input tokens estimated from the text, output at ``max_tokens``), in one
transaction that refuses if any hard limit would be passed; after the call the
reservation is settled to the real cost. So calls running at once on many workers
cannot together overshoot a hard limit, and a fallback, which is just another paid
call, reserves like any other: a budget cannot be bypassed by failing over.

The first time a day's spend reaches a soft limit, a ``model.budget_alert`` audit entry
is written (once per scope and day), and, once that commits, the hook set with
:func:`set_budget_alert_hook` is called with the scope and the entry's details: the
composition root plugs the alert channel in there (the model plane knows nothing of it).

Example:
    >>> ledger = BudgetLedger(store, budgets)  # doctest: +SKIP
    >>> hold = ledger.reserve("support-reply", "acme", 0.002)  # doctest: +SKIP
    >>> ledger.settle(hold, 0.0013)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from sluice.errors import BudgetExceededError
from sluice.governance import AuditEvent, append
from sluice.models._sql import insert_ignore
from sluice.models.gateway_config import Budgets, BudgetSpec, Price
from sluice.models.gateway_tables import model_spend
from sluice.store import Store, utcnow

__all__ = [
    "BudgetAlertHook",
    "BudgetLedger",
    "Reservation",
    "set_budget_alert_hook",
    "worst_case_cost",
]

log = logging.getLogger(__name__)

#: Called as ``hook(scope, details)`` after a soft-limit alert is committed.
BudgetAlertHook = Callable[[str, Mapping[str, Any]], None]
_alert_hook: BudgetAlertHook | None = None


def set_budget_alert_hook(hook: BudgetAlertHook | None) -> BudgetAlertHook | None:
    """Call ``hook`` for every soft budget alert of this process (None: no hook).

    The hook runs on the caller's thread after the alert's audit entry commits; an
    exception in it is logged and never fails the model call. Returns the hook it
    replaces (to put back later).
    """
    global _alert_hook
    previous, _alert_hook = _alert_hook, hook
    return previous


def worst_case_cost(
    price: Price, texts: Sequence[str], max_output_tokens: int, timeout_s: float
) -> float:
    """What a call could cost at most, the amount it reserves before it goes out.

    One token per character in (English averages ~4 characters a token, but digits,
    code and some scripts come close to one) plus a chat template's few tokens per
    message, ``max_output_tokens`` out, the whole timeout: so that calls in flight
    together cannot pass a hard limit. The settled cost is the real one.
    """
    return price.cost(
        input_tokens=sum(len(t) + 8 for t in texts),
        output_tokens=max_output_tokens,
        seconds=timeout_s,
        calls=len(texts),
    )


@dataclass(frozen=True)
class Reservation:
    """Amount held in each scope for one call (settle it exactly once)."""

    day: str
    scopes: tuple[tuple[str, BudgetSpec], ...]
    amount: float


class BudgetLedger:
    """Reserve, settle and read spend per scope and UTC day (module docs).

    Args:
        store: Where ``model_spend`` lives.
        budgets: The configured budgets.
        currency: For messages.
    """

    def __init__(self, store: Store, budgets: Budgets, *, currency: str = "USD") -> None:
        self.store = store
        self.budgets = budgets
        self.currency = currency

    def scopes(self, task: str, tenant: str | None) -> list[tuple[str, BudgetSpec]]:
        """The budgets that apply to a call of ``task`` for ``tenant``."""
        out = []
        if task in self.budgets.tasks:
            out.append((f"task:{task}", self.budgets.tasks[task]))
        tenant_name = tenant or "default"
        spec = self.budgets.tenants.get(tenant_name) or self.budgets.tenants.get("default")
        if spec is not None:
            out.append((f"tenant:{tenant_name}", spec))
        return out

    @staticmethod
    def _day(now: datetime | None = None) -> str:
        return (now or utcnow()).date().isoformat()

    def reserve(self, task: str, tenant: str | None, amount: float) -> Reservation | None:
        """Hold ``amount`` in every applicable budget; None when no budget applies.

        Raises:
            BudgetExceededError: A hard limit would be passed (nothing is held then).
        """
        scopes = self.scopes(task, tenant)
        if not scopes:
            return None
        day = self._day()
        with self.store.begin() as conn:
            self._ensure_rows(conn, day, [s for s, _ in scopes])
            for scope, spec in scopes:
                limit = spec.daily_hard
                query = update(model_spend).where(
                    model_spend.c.day == day, model_spend.c.scope == scope
                )
                if limit is not None:
                    query = query.where(model_spend.c.spent + amount <= limit)
                if conn.execute(query.values(spent=model_spend.c.spent + amount)).rowcount != 1:
                    spent = self._spent(conn, day, scope)
                    # Raising rolls the transaction back: nothing stays held anywhere.
                    raise BudgetExceededError(
                        f"the daily hard budget of {scope} is reached: {spent:.4f} of "
                        f"{limit:.4f} {self.currency} spent today; this call could cost "
                        f"up to {amount:.4f}",
                        scope=scope,
                        hint="raise daily_hard in the models config, or wait for tomorrow (UTC)",
                    )
        return Reservation(day, tuple(scopes), amount)

    def settle(self, reservation: Reservation | None, actual: float) -> None:
        """Replace the held amount with the call's real cost; alert on a soft limit."""
        if reservation is None:
            return
        delta = actual - reservation.amount
        with self.store.begin() as conn:
            alerts = []
            for scope, spec in reservation.scopes:
                conn.execute(
                    update(model_spend)
                    .where(model_spend.c.day == reservation.day, model_spend.c.scope == scope)
                    .values(spent=model_spend.c.spent + delta)
                )
                if spec.daily_soft is None:
                    continue
                spent = self._spent(conn, reservation.day, scope)
                if spent < spec.daily_soft:
                    continue
                first = conn.execute(
                    update(model_spend)
                    .where(
                        model_spend.c.day == reservation.day,
                        model_spend.c.scope == scope,
                        model_spend.c.soft_alerted.is_(False),
                    )
                    .values(soft_alerted=True)
                ).rowcount
                if first == 1:
                    alerts.append(
                        AuditEvent(
                            "model-gateway",
                            "model.budget_alert",
                            scope,
                            {
                                "day": reservation.day,
                                "spent": round(spent, 6),
                                "daily_soft": spec.daily_soft,
                                "daily_hard": spec.daily_hard,
                                "currency": self.currency,
                            },
                        )
                    )
            if alerts:
                append(conn, alerts)
        hook = _alert_hook
        for event in alerts:
            if hook is None:
                break
            try:
                hook(event.target, event.details)
            except Exception:  # an alert that cannot be sent must not fail the call
                log.exception("budget alert hook failed for %s", event.target)

    def spent(self, scope: str, day: str | None = None) -> float:
        """What ``scope`` spent (and holds) on ``day`` (default today, UTC)."""
        with self.store.read() as conn:
            return self._spent(conn, day or self._day(), scope)

    @staticmethod
    def _spent(conn: Connection, day: str, scope: str) -> float:
        found = conn.execute(
            select(model_spend.c.spent).where(
                model_spend.c.day == day, model_spend.c.scope == scope
            )
        ).scalar_one_or_none()
        return float(found or 0.0)

    def _ensure_rows(self, conn: Connection, day: str, scopes: list[str]) -> None:
        conn.execute(
            insert_ignore(self.store, model_spend),
            [{"day": day, "scope": s, "spent": 0.0, "soft_alerted": False} for s in scopes],
        )
