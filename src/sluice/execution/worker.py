"""The worker loop: form batches from queued items and let the engine run them.

Many workers (processes, hosts) may run at once against one PostgreSQL store: each
claims distinct items, and the engine's queue spreads batch runs over all of them. On
SQLite, one machine's workers share the file.

Example:
    >>> worker = Worker(settings, store, [triage])  # doctest: +SKIP
    >>> worker.run(drain=True)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from threadpoolctl import threadpool_limits

from sluice.config import Settings
from sluice.errors import ConfigError
from sluice.execution import batches as batch_store
from sluice.execution.engine import Engine
from sluice.execution.pipeline import Pipeline
from sluice.execution.tables import work_items
from sluice.governance import AuditEvent, append, checkpoint, entries_for, load_signing_key
from sluice.store import Store, redact_url

__all__ = ["Worker", "WorkerStats", "queue_counts"]

log = logging.getLogger("sluice.execution")

_START_ACTIONS = ("worker.started", "config.changed")


def _public_config(settings: Settings) -> dict[str, Any]:
    """The settings as JSON, with the password of a database URL hidden."""
    values = settings.model_dump(mode="json")
    if values.get("database_url"):
        values["database_url"] = redact_url(values["database_url"])
    return values


#: How often the loop looks for batches whose run ended without settling them.
_HEALTH_CHECK_EVERY_S = 30.0


@dataclass
class WorkerStats:
    """What a worker did while it ran."""

    batches: int = 0
    items: int = 0
    seconds: float = 0.0


def queue_counts(
    store: Store, pipeline: str | None = None, *, source: str | None = None
) -> dict[str, int]:
    """Number of items per status, optionally of one pipeline and one event source."""
    query = select(work_items.c.status, func.count()).group_by(work_items.c.status)
    if pipeline:
        query = query.where(work_items.c.pipeline == pipeline)
    if source:
        query = query.where(work_items.c.source == source)
    with store.read() as conn:
        return {status: int(n) for status, n in conn.execute(query)}


class Worker:
    """Runs pipelines durably until stopped (or, with ``drain``, until no work is left).

    Args:
        settings: Runtime settings (executor id, batch size, polling interval).
        store: The store.
        pipelines: Pipelines this worker serves.
        concurrency: Batches of each pipeline this worker runs at once (default: the
            pipeline's ``QueueSpec.worker_concurrency``).
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        pipelines: Sequence[Pipeline],
        *,
        concurrency: int | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.pipelines = list(pipelines)
        if concurrency is not None and concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
        self.concurrency = concurrency
        self.engine = Engine(settings, store)
        self.stats = WorkerStats()

    def run(
        self,
        *,
        drain: bool = False,
        stop: threading.Event | None = None,
        on_tick: Callable[[dict[str, int]], None] | None = None,
    ) -> WorkerStats:
        """Serve until ``stop`` is set, or until drained when ``drain`` is true.

        Drained means: no queued item and no unfinished batch of this worker's pipelines.
        Items waiting for review do not count; their runs stay parked in the store and
        resume in whichever worker receives the decision's wake-up after a restart.
        """
        stop = stop or threading.Event()
        started = time.monotonic()
        # Model steps run many short native calls (~1 ms each) from several threads;
        # with Python's default 5 ms GIL switch interval they wait on the database
        # threads' Python work. 1 ms measured +25% throughput on the triage benchmark.
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(switch_interval, 0.0002))
        # One BLAS thread: parallelism comes from batches and the encoder processes, and
        # idle OpenBLAS threads spin on the cores those need (the classify step ran at
        # 570 items/s with two BLAS threads, 990 with one).
        blas = threadpool_limits(1, user_api="blas")
        signing_key = load_signing_key(self.settings.audit_key)
        self._audit_start()
        self.engine.launch(self.pipelines, worker_concurrency=self.concurrency)
        last_seal = time.monotonic()
        try:
            for pipeline in self.pipelines:
                pipeline.check()
                self.engine.context(pipeline.name)  # load models now: fail fast, not mid-run
            last_check = time.monotonic()
            while not stop.is_set():
                formed = sum(self._form_batches(p) for p in self.pipelines)
                now = time.monotonic()
                if now - last_check > _HEALTH_CHECK_EVERY_S:
                    self.engine.fail_dead_batches()
                    last_check = now
                if now - last_seal > self.settings.audit_checkpoint_seconds:
                    self._seal(signing_key)
                    last_seal = now
                if on_tick is not None:
                    on_tick(self._counts())
                if drain and formed == 0 and self._drained():
                    break
                if formed == 0:
                    stop.wait(self.settings.poll_interval_seconds)
            self._seal(signing_key)  # a worker that stops cleanly leaves the chain sealed
        finally:
            self.engine.shutdown()
            sys.setswitchinterval(switch_interval)
            blas.restore_original_limits()
            self.stats.seconds = time.monotonic() - started
        return self.stats

    def _form_batches(self, pipeline: Pipeline) -> int:
        """Claim batches while this worker has fewer than its look-ahead open.

        The look-ahead is counted per worker (its own open batches), so a worker on a
        busy shared queue still claims work for itself and never starves.
        """
        size = pipeline.batch_size or self.settings.batch_size
        ahead = pipeline.queue.max_pending_batches * self._concurrency(pipeline)
        formed = 0
        executor = self.settings.executor_id
        while batch_store.open_batch_count(self.store, pipeline.name, executor_id=executor) < ahead:
            batch = batch_store.claim_batch(
                self.store, pipeline.name, size, executor, self.engine.enqueue_in
            )
            if batch is None:
                break
            formed += 1
            self.stats.batches += 1
            self.stats.items += batch.size
        return formed

    def _audit_start(self) -> None:
        """Audit the worker's start with its effective settings (secrets redacted).

        When they differ from the last start of the same executor id, the entry is a
        ``config.changed`` one and says which settings changed.
        """
        config = _public_config(self.settings)
        executor = self.settings.executor_id
        with self.store.begin() as conn:
            previous = [e for e in entries_for(conn, [executor]) if e.action in _START_ACTIONS]
            before = previous[-1].details_dict().get("config", {}) if previous else None
            changed = sorted(k for k in config if before is not None and before.get(k) != config[k])
            append(
                conn,
                [
                    AuditEvent(
                        f"worker:{executor}",
                        "config.changed" if changed else "worker.started",
                        executor,
                        {
                            "config": config,
                            "changed": changed,
                            "pipelines": [p.name for p in self.pipelines],
                        },
                    )
                ],
            )

    def _seal(self, key: Any) -> None:
        """Checkpoint the audit chain; a failure is logged, never fatal to the worker."""
        try:
            checkpoint(self.store, key, actor=f"worker:{self.settings.executor_id}")
        except Exception:
            log.exception("could not checkpoint the audit chain; will try again")

    def _concurrency(self, pipeline: Pipeline) -> int:
        return self.concurrency or pipeline.queue.worker_concurrency

    def _counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for pipeline in self.pipelines:
            for status, n in queue_counts(self.store, pipeline.name).items():
                counts[status] = counts.get(status, 0) + n
        return counts

    def _drained(self) -> bool:
        for pipeline in self.pipelines:
            counts = queue_counts(self.store, pipeline.name)
            if counts.get("queued", 0) or counts.get("running", 0):
                return False
            if batch_store.open_batch_count(self.store, pipeline.name):
                return False
        return True
