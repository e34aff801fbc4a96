"""Dynamic micro-batching: concurrent small requests to a local encoder, sent as one.

Callers in different threads (a worker's concurrent batches, API requests) each ask for
a few embeddings. While the encoder is idle, a request is dispatched at once, alone: a
lone caller waits for no window. While ``max_in_flight`` dispatches are running, new
requests queue; each dispatch, when it ends, takes what queued meanwhile (up to
``max_batch`` texts) as its next batch. So batches form from exactly the requests that
would otherwise have waited for the encoder, and grow with the load.

What "one call" buys depends on the encoder. Sluice's int8 MiniLM runs each text through
the graph on its own (its activations are quantized per call, so padding a text together
with others would change its embedding; see ``encoder_runner``): a batch is one dispatch
to the encoder processes instead of one per caller, and each caller's rows are exactly
what it would have got alone. ``bench.gateway`` measures the gain.

A caller waits at most its ``timeout_s``: a request still queued then is withdrawn (no
work is done for it); one already in a running batch is computed and its rows dropped.
Abandoned work is therefore bounded by ``max_in_flight`` batches.

Example:
    >>> batcher = MicroBatcher(lambda texts: [t.upper() for t in texts], max_batch=8,
    ...                        name="doc")
    >>> batcher.submit(["a", "b"])
    ['A', 'B']
    >>> batcher.close()
"""

from __future__ import annotations

import threading
import time
from collections import deque
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


@dataclass(eq=False)  # identity: two requests for the same texts are two
class _Request:
    texts: list[str]
    future: Future[Any] = field(default_factory=Future)


class MicroBatcher(Generic[Out]):
    """Batches concurrent :meth:`submit` calls into calls of ``fn`` (module docs).

    Args:
        fn: Maps a list of texts to a sequence of results (one per text, in order), or
            to an array whose rows are the results.
        max_batch: Most texts per dispatch (a larger request is dispatched alone).
        name: For thread names.
        max_in_flight: Dispatches running at once; requests arriving while that many
            run are batched.
    """

    def __init__(
        self,
        fn: Callable[[list[str]], Any],
        *,
        max_batch: int,
        name: str,
        max_in_flight: int = 1,
    ) -> None:
        self._fn = fn
        self.max_batch = max_batch
        self.max_in_flight = max(1, max_in_flight)
        self.stats = BatchStats()
        self._pending: deque[_Request] = deque()
        self._running = 0
        self._lock = threading.Lock()
        self._closed = False
        self._pool = ThreadPoolExecutor(
            self.max_in_flight, thread_name_prefix=f"sluice-batch-{name}"
        )

    def submit(self, texts: Sequence[str], *, timeout_s: float | None = None) -> Any:
        """Results for ``texts``, computed alone or in a batch with other callers' texts.

        Raises:
            TimeoutError: No result within ``timeout_s`` (the request is withdrawn if it
                was still queued).
            RuntimeError: The batcher is closed.
        """
        request = _Request(list(texts))
        with self._lock:
            if self._closed:
                raise RuntimeError("the micro-batcher is closed")
            self.stats.requests += 1
            self._pending.append(request)
            start = self._running < self.max_in_flight
            if start:
                self._running += 1
        if start:
            self._pool.submit(self._drain)
        try:
            return request.future.result(timeout=timeout_s)
        except TimeoutError:
            if request.future.done() and request.future.exception() is not None:
                raise  # fn's own TimeoutError
            with self._lock:
                if request in self._pending:
                    self._pending.remove(request)  # never dispatched: no work wasted
            raise TimeoutError(
                f"micro-batched request of {len(request.texts)} texts took over {timeout_s:g} s"
            ) from None

    def _drain(self) -> None:
        """Dispatch what is queued, batch after batch, until nothing is."""
        while True:
            with self._lock:
                batch: list[_Request] = []
                size = 0
                while self._pending and (
                    not batch or size + len(self._pending[0].texts) <= self.max_batch
                ):
                    request = self._pending.popleft()
                    batch.append(request)
                    size += len(request.texts)
                if not batch:
                    self._running -= 1
                    return
                self.stats.dispatches += 1
                self.stats.texts += size
            self._dispatch(batch)
            if len(batch) > 1:
                # Not a wait: it hands the interpreter to the callers just answered, so
                # that those with a next request queue it before this dispatcher looks
                # again (measured with 8 callers: batches ~1.4x as large, ~5% more texts/s).
                time.sleep(0)

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
        """Refuse new requests, finish the queued ones and stop the dispatch threads."""
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=True)
