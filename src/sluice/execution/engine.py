"""The durable engine: DBOS Transact, configured for Sluice.

DBOS is used only in this package (this module and :mod:`sluice.execution.workflows`).

DBOS keeps its system tables in the same database as Sluice's own (the SQLite file, or
the PostgreSQL database in schema ``dbos``). That lets a batch's claim and its run's
enqueue commit together, and a reviewer's decision and the message that wakes the
waiting run commit together: neither can happen without the other.

One engine per process (DBOS is a process-wide singleton). It listens only to the queues
of the pipelines the worker serves. Recovery of interrupted runs happens at
:meth:`Engine.launch` for this worker's executor id and application version
(``SLUICE_EXECUTOR_ID``, ``SLUICE_APP_VERSION``).
"""

from __future__ import annotations

import logging
import random
import sqlite3
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from dbos import DBOS, DBOSClient, DBOSConfig, EnqueueOptions

from sluice.config import Settings
from sluice.errors import ConfigError, ExecutionError
from sluice.execution import batches as batch_store
from sluice.execution.pipeline import Pipeline, StepContext, get_pipeline
from sluice.store import Store
from sluice.store._engine import sqlalchemy_url

__all__ = [
    "DECISION_TOPIC",
    "Engine",
    "current_engine",
    "queue_name",
    "recover_executor",
    "review_queue_name",
    "review_workflow_id",
    "send_in_transaction",
]

log = logging.getLogger("sluice.execution")

DECISION_TOPIC = "sluice.decision"
_FAILED_STATES = {"ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"}


def queue_name(pipeline: str) -> str:
    """The engine queue of a pipeline's batch runs."""
    return f"sluice-{pipeline}"


def review_queue_name(pipeline: str) -> str:
    """The engine queue of a pipeline's review waits.

    It has no concurrency limit: a waiting run holds no thread.
    """
    return f"sluice-review-{pipeline}"


def review_workflow_id(batch_id: str) -> str:
    """The durable run id of a batch's review wait."""
    return f"sluice-review-{batch_id}"


@dataclass
class Engine:
    """DBOS configured for Sluice, plus what its workflows need in this process.

    Args:
        settings: Runtime settings (executor id, app version, polling).
        store: The store; DBOS uses the same database.
    """

    settings: Settings
    store: Store
    rng: random.Random = field(default_factory=random.Random, init=False)
    _contexts: dict[str, StepContext[Any]] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def launch(self, pipelines: Sequence[Pipeline], *, worker_concurrency: int | None) -> None:
        """Start DBOS for ``pipelines`` and recover this executor's interrupted runs.

        The process listens only to these pipelines' queues, so a worker never takes a
        run of a pipeline it does not serve (or may not even declare).
        """
        import sluice.execution.workflows  # noqa: F401  (registers the workflows)

        global _ENGINE
        if _ENGINE is not None:
            raise ExecutionError("a durable engine is already running in this process")
        _ENGINE = self
        _route_dbos_logs()
        try:
            DBOS(config=self._dbos_config())
            names = [p.name for p in pipelines]
            DBOS.listen_queues([*map(queue_name, names), *map(review_queue_name, names)])
            DBOS.launch()
            for pipeline in pipelines:
                DBOS.register_queue(
                    queue_name(pipeline.name),
                    worker_concurrency=worker_concurrency or pipeline.queue.worker_concurrency,
                    global_concurrency=pipeline.queue.concurrency,
                    polling_interval_sec=self._queue_poll_s,
                    on_conflict="always_update",
                )
                # Review waits are not latency-critical and every poll costs Python
                # time the model steps need: poll at the slower, general interval.
                DBOS.register_queue(
                    review_queue_name(pipeline.name),
                    polling_interval_sec=self.settings.poll_interval_seconds,
                    on_conflict="always_update",
                )
        except Exception:
            _ENGINE = None
            DBOS.destroy(destroy_registry=False)
            raise

    @property
    def _queue_poll_s(self) -> float:
        # Short, because a batch slot freed by a finished run stays idle until the next
        # poll; not shorter, because each poll runs several queries under the GIL that
        # the model steps then wait for (measured on bench/triage_banking77.py).
        return min(0.02, self.settings.poll_interval_seconds)

    def shutdown(self) -> None:
        """Stop DBOS, then release the pipelines' resources (their ``close()``, if any).

        Runs in progress are recovered by the next launch of this executor.
        """
        global _ENGINE
        try:
            DBOS.destroy(destroy_registry=False)
        finally:
            _ENGINE = None
            contexts, self._contexts = dict(self._contexts), {}
            for ctx in contexts.values():
                close = getattr(ctx.resources, "close", None)
                if callable(close):
                    try:
                        close()
                    except Exception:
                        log.warning("closing the resources of a pipeline failed", exc_info=True)

    def _dbos_config(self) -> DBOSConfig:
        url = sqlalchemy_url(self.settings.resolved_database_url())
        config: DBOSConfig = {
            "name": "sluice",
            "system_database_url": url,
            "executor_id": self.settings.executor_id,
            "application_version": self.settings.app_version,
            # On SQLite every waiting review run costs one query per poll; on PostgreSQL
            # LISTEN/NOTIFY wakes waits at once and this is only a fallback.
            "notification_listener_polling_interval_sec": self.settings.poll_interval_seconds,
            # DBOS warns about every review wait it cancels at shutdown; they stay
            # pending and resume at the next launch, which is the design, not a problem.
            "log_level": "ERROR",
        }
        if self.store.dialect == "sqlite":
            config["db_engine_kwargs"] = {"creator": _sqlite_creator(self.store)}
        return config

    def enqueue_in(self, conn: sa.Connection, batch: batch_store.Batch) -> None:
        """Enqueue ``batch``'s run inside ``conn``'s transaction (the claim's)."""
        options: EnqueueOptions = {
            "workflow_name": "sluice.batch",
            "queue_name": queue_name(batch.pipeline),
            "workflow_id": batch.workflow_id,
            "app_version": self.settings.app_version,
            # DBOS priorities: 1 is served first. Item priority 0 (urgent) -> 1.
            "priority": batch.priority + 1,
        }
        _client(self.store).enqueue_in_transaction(conn, options, batch.pipeline, batch.id)

    def fail_dead_batches(self, *, older_than_s: float = 30.0) -> int:
        """Fail the items of open batches whose run ended without settling them.

        A run ends that way only when even its error handling could not reach the
        database (an outage of many minutes). Returns the number of batches closed.
        """
        closed = 0
        for batch in batch_store.stale_batches(self.store, older_than_s=older_than_s):
            status = DBOS.get_workflow_status(batch.workflow_id)
            review = DBOS.get_workflow_status(review_workflow_id(batch.id))
            dead = status is not None and status.status in _FAILED_STATES
            dead_review = review is not None and review.status in _FAILED_STATES
            if dead or dead_review:
                which = status if dead else review
                assert which is not None
                log.error(
                    "run of batch %s ended as %s; failing its unsettled items",
                    batch.id,
                    which.status,
                )
                batch_store.abandon_batch(
                    self.store,
                    batch.id,
                    "RunFailed",
                    f"the batch's durable run ended as {which.status}",
                )
                closed += 1
        return closed

    def context(self, pipeline_name: str) -> StepContext[Any]:
        """The pipeline's step context, with resources loaded once per process."""
        with self._lock:
            if pipeline_name not in self._contexts:
                pipeline = get_pipeline(pipeline_name)
                pipeline.check()
                self._contexts[pipeline_name] = pipeline.load_resources(self.settings, self.store)
            return self._contexts[pipeline_name]

    @property
    def executor_id(self) -> str:
        """This worker's executor id."""
        return self.settings.executor_id


_ENGINE: Engine | None = None


def current_engine() -> Engine:
    """The engine launched in this process.

    Raises:
        ConfigError: No engine runs here (workflows only run inside a worker).
    """
    if _ENGINE is None:
        raise ConfigError(
            "no durable engine is running in this process", hint="start one with `sluice worker`"
        )
    return _ENGINE


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each record.

    DBOS's own console handler binds the stream it finds at its first start; a program
    that redirects stderr later (a test runner, an embedding app) would then see DBOS
    write to, or flush, a closed stream.
    """

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _route_dbos_logs() -> None:
    dbos_logger = logging.getLogger("dbos")
    if any(isinstance(h, _CurrentStderr) for h in dbos_logger.handlers):
        return
    for handler in list(dbos_logger.handlers):
        dbos_logger.removeHandler(handler)
    handler = _CurrentStderr()
    handler.setFormatter(
        logging.Formatter("%(asctime)s dbos %(levelname)s %(message)s", "%H:%M:%S")
    )
    dbos_logger.addHandler(handler)
    dbos_logger.propagate = False


def _sqlite_creator(store: Store) -> Any:
    """Connections for DBOS's SQLite engine with ``synchronous=NORMAL``.

    DBOS 3.4 leaves SQLite at ``synchronous=FULL``; with WAL (already set on the file by
    the store) NORMAL halves the cost of a checkpoint and stays safe against process
    crashes. DBOS still applies its own settings (IMMEDIATE transactions, busy timeout,
    foreign keys) on top of these connections.
    """
    path = store.engine.url.database
    assert path, "the store's SQLite URL names no file"

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    return connect


# -- calls that need no running engine (CLI, API, the worker loop) ----------------------
_CLIENTS: dict[str, DBOSClient] = {}
_CLIENTS_LOCK = threading.Lock()


def _client(store: Store) -> DBOSClient:
    url = sqlalchemy_url(store.settings.resolved_database_url())
    with _CLIENTS_LOCK:
        if url not in _CLIENTS:
            _CLIENTS[url] = DBOSClient(system_database_url=url)
        return _CLIENTS[url]


def send_in_transaction(
    store: Store, conn: sa.Connection, workflow_id: str, message: dict[str, Any]
) -> None:
    """Wake the review wait ``workflow_id`` with ``message``, inside ``conn``'s transaction.

    Works from any process (CLI, API, another worker): the message is a row in the same
    database, committed with the caller's decision or not at all.
    """
    _client(store).send_in_transaction(conn, workflow_id, message, DECISION_TOPIC)


def recover_executor(store: Store, executor_id: str) -> dict[str, int]:
    """Hand the unfinished runs of a dead worker to the live ones.

    Runs are recovered automatically when a worker restarts with the same executor id.
    When a host is gone for good, this moves its pending runs back onto their queues,
    where any live worker of the same application version picks them up.

    Only call it for an executor that is really gone: a live one would keep running the
    same runs, and although the engine fences the stale copy and every step is
    idempotent, work would be done twice.

    Returns:
        Number of runs handed over, by queue.
    """
    client = _client(store)
    pending = client.list_workflows(
        status="PENDING", executor_id=executor_id, application_name="sluice"
    )
    by_queue: dict[str | None, list[str]] = {}
    for workflow in pending:
        by_queue.setdefault(workflow.queue_name, []).append(workflow.workflow_id)
    for queue, ids in by_queue.items():
        # Back onto its own queue, so the queue's concurrency limits keep applying.
        client.resume_workflows(ids, queue_name=queue)
    return {queue or "(engine)": len(ids) for queue, ids in by_queue.items()}
