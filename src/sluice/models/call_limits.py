"""Per-endpoint concurrency and rate limits, and timeouts for calls that cannot stop.

Limits are per process (each worker process holds its own); set them so that the
number of processes times the limit is what the endpoint takes.

A call's timeout is one deadline: the wait for a slot or a rate token spends it, and the
call itself gets only what is left (:meth:`CallLimits.slot` yields that).

Example:
    >>> limits = CallLimits("llm", max_concurrency=2, rate_per_second=None)
    >>> with limits.slot(timeout_s=1.0) as remaining:
    ...     0 < remaining <= 1.0
    True
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sluice.errors import ModelTimeoutError

__all__ = ["CallLimits", "DeadlineWorkers", "timeout_error"]

T = TypeVar("T")


def timeout_error(endpoint: str, timeout_s: float) -> ModelTimeoutError:
    """The error of a call that ran out of its time at ``endpoint``."""
    return ModelTimeoutError(
        f"endpoint {endpoint!r} did not answer within {timeout_s:g} s",
        endpoint=endpoint,
        hint="raise the route's timeout_s, or check the endpoint's load",
    )


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
        self._held = 0
        self._held_lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        """Calls holding a concurrency slot now (always 0 without ``max_concurrency``)."""
        return self._held

    @contextmanager
    def slot(self, *, timeout_s: float | None) -> Iterator[float | None]:
        """Wait for a rate token and a free slot, at most ``timeout_s`` in all.

        Yields the seconds left of ``timeout_s`` once both are held (None without a
        timeout): the call made in the slot gets that, not the whole timeout again.

        Raises:
            ModelTimeoutError: No token or slot came before the deadline.
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
            with self._held_lock:
                self._held += 1
        try:
            left = None if deadline is None else deadline - self._clock()
            if left is not None and left <= 0:
                # The wait used the whole timeout: the call would have no time to run.
                raise ModelTimeoutError(
                    f"endpoint {self.endpoint!r}: the wait for a slot used the whole "
                    f"{timeout_s:g} s",
                    endpoint=self.endpoint,
                    hint="raise max_concurrency, rate_per_second or the route's timeout_s",
                )
            yield left
        finally:
            if self._slots is not None:
                with self._held_lock:
                    self._held -= 1
                self._slots.release()


class DeadlineWorkers:
    """Standing threads that run calls which cannot stop by themselves, under a deadline.

    For work that runs in Python's own thread (the in-process encoder): the call runs on
    one of ``workers`` long-lived threads while the caller waits at most its timeout, so
    a call costs a queue hand-off rather than a new thread. At the deadline the caller
    gets :class:`ModelTimeoutError` and moves on. Abandoned work is bounded: a call that
    had not started is cancelled, one that had keeps its thread until it ends (its result
    is dropped), so at most ``workers`` abandoned calls run at once and later calls queue
    behind them, each within its own deadline.

    Args:
        endpoint: The endpoint's name (for thread names and messages).
        workers: Threads, i.e. calls running at once.

    Example:
        >>> workers = DeadlineWorkers("doc", workers=1)
        >>> workers.run(lambda: 2 + 2, timeout_s=5.0)
        4
        >>> workers.close()
    """

    def __init__(self, endpoint: str, *, workers: int) -> None:
        self.endpoint = endpoint
        self.workers = max(1, workers)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            self.workers, thread_name_prefix=f"sluice-model-{endpoint}"
        )

    def run(self, fn: Callable[[], T], timeout_s: float | None) -> T:
        """``fn()``, or :class:`ModelTimeoutError` at ``timeout_s`` (None: no deadline)."""
        if timeout_s is None:
            return fn()
        if timeout_s <= 0:
            raise timeout_error(self.endpoint, timeout_s)
        future = self._pool.submit(fn)
        try:
            return future.result(timeout=timeout_s)
        except TimeoutError:
            if future.done() and not future.cancelled() and future.exception() is not None:
                raise  # fn's own TimeoutError
            future.cancel()  # works while it waits for a thread; a running call ends alone
            raise timeout_error(self.endpoint, timeout_s) from None

    def close(self) -> None:
        """Cancel queued calls and let the threads go when their calls end."""
        self._pool.shutdown(wait=False, cancel_futures=True)
