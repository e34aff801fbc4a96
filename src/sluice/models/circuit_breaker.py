"""A circuit breaker per endpoint: stop calling what keeps failing, then try again.

States: **closed** (calls pass; consecutive failures are counted), **open** (after
``failures`` consecutive failures: calls are refused at once for ``cooldown_s``),
**half-open** (after the cool-down: one trial call passes; its success closes the
circuit, its failure opens it for another cool-down). Breakers are per process: each
worker learns an endpoint's health from its own calls.

Example:
    >>> clock = [0.0]
    >>> breaker = CircuitBreaker("llm", failures=2, cooldown_s=10, clock=lambda: clock[0])
    >>> breaker.record_failure(); breaker.record_failure()
    >>> breaker.state, breaker.allow()
    ('open', False)
    >>> clock[0] = 11.0
    >>> breaker.allow(), breaker.state
    (True, 'half_open')
    >>> breaker.record_success(); breaker.state
    'closed'
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

__all__ = ["CircuitBreaker", "CircuitState"]

CircuitState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Closed, open or half-open (module docs). Thread-safe.

    Args:
        endpoint: The endpoint's name (for messages).
        failures: Consecutive failures that open the circuit.
        cooldown_s: Seconds the circuit stays open before a trial call.
        clock: Monotonic clock (tests pass their own).
    """

    def __init__(
        self,
        endpoint: str,
        *,
        failures: int,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = endpoint
        self.failures = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> CircuitState:
        """The current state."""
        with self._lock:
            return self._state()

    def _state(self) -> CircuitState:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.cooldown_s:
            return "half_open"
        return "open"

    def retry_in(self) -> float:
        """Seconds until an open circuit lets a trial call through (0 if it would now)."""
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self.cooldown_s - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """Whether a call may go out now. In half-open, only one trial at a time."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return True
            if state == "open" or self._trial_in_flight:
                return False
            self._trial_in_flight = True
            return True

    def record_success(self) -> None:
        """A call succeeded: close the circuit."""
        with self._lock:
            self._consecutive = 0
            self._opened_at = None
            self._trial_in_flight = False

    def record_failure(self) -> None:
        """A call failed: count it; open (or re-open) the circuit at the threshold."""
        with self._lock:
            was_trial = self._trial_in_flight
            self._trial_in_flight = False
            self._consecutive += 1
            if was_trial or self._consecutive >= self.failures:
                self._opened_at = self._clock()
