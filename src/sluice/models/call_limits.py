"""Per-endpoint concurrency and rate limits, and timeouts for calls that cannot stop.

Limits are per process (each worker process holds its own); set them so that the
number of processes times the limit is what the endpoint takes.

Example:
    >>> limits = CallLimits("llm", max_concurrency=2, rate_per_second=None)
    >>> with limits.slot(timeout_s=1.0):
    ...     pass
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sluice.errors import ModelTimeoutError

__all__ = ["CallLimits", "run_with_timeout"]

T = TypeVar("T")


class _TokenBucket:
    """``rate`` tokens per second, bursts up to ``rate`` (at least 1)."""

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._tokens = self.capacity
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()

    def wait_time(self) -> float:
        """Take a token if there is one (0.0), else the seconds until there will be."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate


class CallLimits:
    """A concurrency cap and a rate limit for one endpoint.

    Args:
        endpoint: The endpoint's name (for messages).
        max_concurrency: Calls in flight at once (None: unlimited).
        rate_per_second: Calls started per second (None: unlimited).
    """

    def __init__(
        self,
        endpoint: str,
        *,
        max_concurrency: int | None,
        rate_per_second: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.endpoint = endpoint
        self._slots = threading.BoundedSemaphore(max_concurrency) if max_concurrency else None
        self._bucket = _TokenBucket(rate_per_second, clock) if rate_per_second else None
        self._clock = clock
        self._sleep = sleep

    @contextmanager
    def slot(self, *, timeout_s: float | None) -> Iterator[None]:
        """Wait for a free slot and a rate token, at most ``timeout_s`` in all.

        Raises:
            ModelTimeoutError: No slot or token came in time.
        """
        deadline = None if timeout_s is None else self._clock() + timeout_s
        if self._bucket is not None:
            while (wait := self._bucket.wait_time()) > 0:
                if deadline is not None and self._clock() + wait > deadline:
                    raise ModelTimeoutError(
                        f"endpoint {self.endpoint!r}: rate limit left no slot within "
                        f"{timeout_s:g} s",
                        endpoint=self.endpoint,
                        hint="raise rate_per_second or the route's timeout_s",
                    )
                self._sleep(wait)
        if self._slots is not None:
            remaining = None if deadline is None else max(0.0, deadline - self._clock())
            if not self._slots.acquire(timeout=remaining):
                raise ModelTimeoutError(
                    f"endpoint {self.endpoint!r}: all concurrent slots stayed busy for "
                    f"{timeout_s:g} s",
                    endpoint=self.endpoint,
                    hint="raise max_concurrency or the route's timeout_s",
                )
        try:
            yield
        finally:
            if self._slots is not None:
                self._slots.release()


def run_with_timeout(fn: Callable[[], T], timeout_s: float | None, endpoint: str) -> T:
    """Run ``fn``; raise :class:`ModelTimeoutError` if it takes longer than ``timeout_s``.

    For local models that cannot be interrupted: on timeout the call is abandoned and
    finishes in a background thread; its result is dropped.
    """
    if timeout_s is None:
        return fn()
    box: concurrent.futures.Future[T] = concurrent.futures.Future()

    def target() -> None:
        try:
            box.set_result(fn())
        except BaseException as exc:
            box.set_exception(exc)

    threading.Thread(target=target, name=f"sluice-model-{endpoint}", daemon=True).start()
    try:
        return box.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        raise ModelTimeoutError(
            f"endpoint {endpoint!r} did not answer within {timeout_s:g} s",
            endpoint=endpoint,
            hint="raise the route's timeout_s, or check the endpoint's load",
        ) from None
