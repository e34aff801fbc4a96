"""Dynamic micro-batching: concurrent small requests to a local encoder, sent as one.

Callers in different threads (a worker's concurrent batches, API requests) each ask for
a few embeddings. The batcher holds the first request up to ``max_wait_ms`` for others
to join, then dispatches up to ``max_batch`` texts as one call to the encoder and hands
every caller its own rows. A request that alone fills a batch is dispatched at once.

What "one call" buys depends on the encoder. Sluice's int8 MiniLM runs each text through
the graph on its own (its activations are quantized per call, so padding a text together
with others would change its embedding; see ``encoder_runner``): a batch is one dispatch
to the encoder processes instead of one per caller, and each caller's rows are exactly
what it would have got alone. ``bench.gateway`` measures the gain.

Example:
    >>> batcher = MicroBatcher(lambda texts: [t.upper() for t in texts], max_batch=8,
    ...                        max_wait_ms=1, name="doc")
    >>> batcher.submit(["a", "b"])
    ['A', 'B']
    >>> batcher.close()
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["BatchStats", "MicroBatcher"]

Out = TypeVar("Out")


@dataclass
class BatchStats:
    """What the batcher did: requests, dispatches, texts."""

    requests: int = 0
    dispatches: int = 0
    texts: int = 0

    @property
    def mean_batch(self) -> float:
        """Texts per dispatch."""
        return self.texts / self.dispatches if self.dispatches else 0.0


@dataclass
class _Request:
    texts: list[str]
    future: Future[Any] = field(default_factory=Future)


class MicroBatcher(Generic[Out]):
    """Batches concurrent :meth:`submit` calls into calls of ``fn`` (module docs).

    Args:
        fn: Maps a list of texts to a sequence of results (one per text, in order), or
            to an array whose rows are the results.
        max_batch: Most texts per dispatch.
        max_wait_ms: Longest the first request of a batch waits for company.
        name: For thread names.
        max_in_flight: Dispatches running at once (e.g. the encoder's processes).
    """

    def __init__(
        self,
        fn: Callable[[list[str]], Any],
        *,
        max_batch: int,
        max_wait_ms: float,
        name: str,
        max_in_flight: int = 2,
    ) -> None:
        self._fn = fn
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000
        self.stats = BatchStats()
        self._pending: list[_Request] = []
        self._cond = threading.Condition()
        self._closed = False
        self._pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix=f"sluice-batch-{name}")
        self._thread = threading.Thread(
            target=self._loop, name=f"sluice-batcher-{name}", daemon=True
        )
        self._thread.start()

    def submit(self, texts: Sequence[str]) -> Any:
        """Results for ``texts``, computed in a batch with other callers' texts."""
        texts = list(texts)
        if len(texts) >= self.max_batch or self.max_wait_s == 0:
            with self._cond:
                self.stats.requests += 1
                self.stats.dispatches += 1
                self.stats.texts += len(texts)
            return self._fn(texts)  # a full batch alone: nothing to wait for
        request = _Request(texts)
        with self._cond:
            if self._closed:
                raise RuntimeError("the micro-batcher is closed")
            self.stats.requests += 1
            self._pending.append(request)
            self._cond.notify()
        return request.future.result()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed and not self._pending:
                    return
                deadline = time.monotonic() + self.max_wait_s
                while (
                    sum(len(r.texts) for r in self._pending) < self.max_batch
                    and (left := deadline - time.monotonic()) > 0
                    and not self._closed
                ):
                    self._cond.wait(left)
                batch: list[_Request] = []
                size = 0
                while self._pending and (
                    not batch or size + len(self._pending[0].texts) <= self.max_batch
                ):
                    request = self._pending.pop(0)
                    batch.append(request)
                    size += len(request.texts)
                self.stats.dispatches += 1
                self.stats.texts += size
            self._pool.submit(self._dispatch, batch)

    def _dispatch(self, batch: list[_Request]) -> None:
        texts = [t for r in batch for t in r.texts]
        try:
            results = self._fn(texts)
        except BaseException as exc:
            for r in batch:
                r.future.set_exception(exc)
            return
        start = 0
        for r in batch:
            r.future.set_result(results[start : start + len(r.texts)])
            start += len(r.texts)

    def close(self) -> None:
        """Finish what is pending and stop the dispatcher."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=True)
