"""The durable engine. DBOS Transact lives here and nowhere else in Sluice.

Shape of a run:

* ``sluice.batch`` (one workflow per batch, on the pipeline's queue): one checkpointed
  step per declared pipeline step, then ``settle`` (gate, action, outbox), then, if the
  gate parked items, it enqueues the batch's review wait, then ``finish``.
* ``sluice.review`` (one async workflow per batch with parked items, id
  ``sluice-review-<batch>``): opens a review task per parked item, waits for decisions
  with ``DBOS.recv`` (durable: the wait and its deadline survive restarts), applies each
  decision as it arrives, escalates the undecided tasks after the SLA, marks them
  expired after the escalation deadline, and keeps waiting until every task is decided.

DBOS keeps its system tables in the same database as Sluice's own (the SQLite file, or
the PostgreSQL database in schema ``dbos``). That lets a reviewer's decision and the
message that wakes the waiting run commit in one transaction
(:func:`send_in_transaction`): a decision can never be recorded without its wake-up.

One engine per process (DBOS is a process-wide singleton). Recovery of interrupted runs
happens at :meth:`Engine.launch` for this worker's executor id and application version
(``SLUICE_EXECUTOR_ID``, ``SLUICE_APP_VERSION``): restart a crashed worker with the
same executor id.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from dbos import DBOS, DBOSClient, DBOSConfig, SetEnqueueOptions, SetWorkflowID

from sluice.config import Settings
from sluice.errors import ConfigError, ExecutionError
from sluice.execution import batches as batch_store
from sluice.execution.desk import get_review_desk
from sluice.execution.pipeline import Pipeline, StepContext, get_pipeline
from sluice.execution.records import load_views
from sluice.execution.settle import apply_resolution, parked_items, review_from_gate, settle_batch
from sluice.execution.steps import run_step
from sluice.store import Store, utcnow
from sluice.store._engine import sqlalchemy_url

__all__ = [
    "DECISION_TOPIC",
    "Engine",
    "current_engine",
    "recover_executor",
    "review_workflow_id",
    "send_in_transaction",
]

log = logging.getLogger("sluice.execution")

DECISION_TOPIC = "sluice.decision"
#: Engine queue of the review waits: no concurrency limit, a waiting run holds no thread.
REVIEW_QUEUE = "sluice-review"
_DAY_S = 24 * 3600.0


def queue_name(pipeline: str) -> str:
    """The engine queue of a pipeline's batches."""
    return f"sluice-{pipeline}"


def review_workflow_id(batch_id: str) -> str:
    """The durable run id of a batch's review wait."""
    return f"sluice-review-{batch_id}"


# --------------------------------------------------------------------------------------
# The process's engine
# --------------------------------------------------------------------------------------
@dataclass
class Engine:
    """DBOS configured for Sluice, plus what its workflows need in this process.

    Args:
        settings: Runtime settings (executor id, app version, polling).
        store: The store; DBOS uses the same database.
    """

    settings: Settings
    store: Store
    _contexts: dict[str, StepContext[Any]] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _rng: random.Random = field(default_factory=random.Random, init=False)
    _queues: dict[str, Any] = field(default_factory=dict, init=False)

    def launch(self) -> None:
        """Start DBOS and recover this executor's interrupted runs."""
        global _ENGINE
        if _ENGINE is not None:
            raise ExecutionError("a durable engine is already running in this process")
        _ENGINE = self
        _route_dbos_logs()
        try:
            DBOS(config=self._dbos_config())
            DBOS.launch()
            # Review waits are not latency-critical and every poll costs Python time that
            # the model steps need: poll their queue at the slower, general interval.
            DBOS.register_queue(
                REVIEW_QUEUE,
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
        """Stop DBOS. Runs in progress are recovered by the next launch of this executor."""
        global _ENGINE
        try:
            DBOS.destroy(destroy_registry=False)
        finally:
            _ENGINE = None

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

    # -- queues ------------------------------------------------------------------------
    def queue_for(self, pipeline: Pipeline, *, worker_concurrency: int | None = None) -> Any:
        """Register (first call) and return the engine queue of ``pipeline``.

        The queue's limits are stored in the database and shared by every worker: the
        last worker to start sets ``worker_concurrency`` for all.
        """
        with self._lock:
            if pipeline.name not in self._queues:
                self._queues[pipeline.name] = DBOS.register_queue(
                    queue_name(pipeline.name),
                    worker_concurrency=worker_concurrency or pipeline.queue.worker_concurrency,
                    global_concurrency=pipeline.queue.concurrency,
                    polling_interval_sec=self._queue_poll_s,
                    on_conflict="always_update",
                )
            return self._queues[pipeline.name]

    def enqueue_batch(self, pipeline: Pipeline, batch: batch_store.Batch) -> None:
        """Enqueue the durable run of ``batch`` (idempotent by its workflow id)."""
        queue = self.queue_for(pipeline)
        # DBOS priorities: 1 is served first. Item priority 0 (urgent) -> 1.
        with SetWorkflowID(batch.workflow_id), SetEnqueueOptions(priority=batch.priority + 1):
            queue.enqueue(run_batch, pipeline.name, batch.id)
        batch_store.mark_enqueued(self.store, batch.id)

    def pending_runs(self, pipeline: Pipeline) -> int:
        """Batch runs of ``pipeline`` enqueued or running (not yet finished)."""
        return batch_store.open_batch_count(self.store, pipeline.name)

    # -- what workflows need -----------------------------------------------------------
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


# --------------------------------------------------------------------------------------
# Calls from processes that run no engine (CLI, API): wake-ups and recovery
# --------------------------------------------------------------------------------------
_CLIENTS: dict[str, DBOSClient] = {}
_CLIENTS_LOCK = threading.Lock()


def _client(store: Store) -> DBOSClient:
    url = sqlalchemy_url(store.settings.resolved_database_url())
    with _CLIENTS_LOCK:
        if url not in _CLIENTS:
            _CLIENTS[url] = DBOSClient(system_database_url=url)
        return _CLIENTS[url]


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


def send_in_transaction(
    store: Store, conn: sa.Connection, workflow_id: str, message: dict[str, Any]
) -> None:
    """Wake the review wait ``workflow_id`` with ``message``, inside ``conn``'s transaction.

    Works from any process (CLI, API, another worker): the message is a row in the same
    database, committed with the caller's decision or not at all.
    """
    _client(store).send_in_transaction(conn, workflow_id, message, DECISION_TOPIC)


# --------------------------------------------------------------------------------------
# Workflows and their steps (registered at import, the same names in every process)
# --------------------------------------------------------------------------------------
# Sluice's own database work inside steps is retried by DBOS on transient errors (a
# restarting database, a lock timeout); errors of the pipeline's code are handled by the
# step's own RetryPolicy inside run_step and never reach here.
_INFRA_RETRY: dict[str, Any] = {
    "retries_allowed": True,
    "max_attempts": 5,
    "interval_seconds": 0.5,
    "backoff_rate": 2.0,
}


@DBOS.step(name="sluice.batch.step", **_INFRA_RETRY)
def _run_step(pipeline_name: str, batch_id: str, step_name: str) -> dict[str, int]:
    engine = current_engine()
    ctx = engine.context(pipeline_name)
    spec = next(s for s in ctx.pipeline.steps if s.name == step_name)
    summary = run_step(
        engine.store, ctx, spec, batch_id, executor_id=engine.executor_id, rng=engine._rng
    )
    return {"completed": summary.completed, "skipped": summary.skipped, "failed": summary.failed}


@DBOS.step(name="sluice.batch.settle", **_INFRA_RETRY)
def _settle(pipeline_name: str, batch_id: str) -> list[str]:
    engine = current_engine()
    settle_batch(
        engine.store, engine.context(pipeline_name), batch_id, executor_id=engine.executor_id
    )
    return parked_items(engine.store, batch_id)


@DBOS.step(name="sluice.batch.finish", **_INFRA_RETRY)
def _finish(batch_id: str, reviews_pending: bool) -> None:
    batch_store.finish_batch(current_engine().store, batch_id, reviews_pending=reviews_pending)


@DBOS.step(name="sluice.batch.abandon", **_INFRA_RETRY)
def _abandon(batch_id: str, error_type: str, error: str) -> int:
    return batch_store.abandon_batch(current_engine().store, batch_id, error_type, error)


@DBOS.workflow(name="sluice.batch")
def run_batch(pipeline_name: str, batch_id: str) -> dict[str, Any]:
    """The durable run of one batch (see module docs)."""
    pipeline = get_pipeline(pipeline_name)
    steps = {}
    try:
        for spec in pipeline.steps:
            steps[spec.name] = _run_step(pipeline_name, batch_id, spec.name)
        parked = _settle(pipeline_name, batch_id)
    except Exception as exc:
        # Infrastructure failed past its retries: fail the batch's unsettled items with
        # the error (each can be retried with `sluice items retry`) instead of leaving
        # them running forever.
        log.exception("batch %s abandoned", batch_id)
        failed = _abandon(batch_id, type(exc).__name__, str(exc)[:2000])
        return {"steps": steps, "abandoned": failed}
    # Finish before the review wait can start: the wait moves the batch from "settled"
    # to "done" once its tasks exist, so "settled" must already be recorded by then.
    _finish(batch_id, bool(parked))
    if parked:
        # Enqueued, not started directly: an async run started from a sync workflow is
        # recorded as failed when the process shuts down, a queued one stays pending.
        with SetWorkflowID(review_workflow_id(batch_id)):
            DBOS.enqueue_workflow(REVIEW_QUEUE, review_wait, pipeline_name, batch_id)
    return {"steps": steps, "parked": len(parked)}


@DBOS.step(name="sluice.review.open", **_INFRA_RETRY)
async def _open_tasks(pipeline_name: str, batch_id: str) -> dict[str, Any]:
    return await asyncio.to_thread(_open_tasks_sync, pipeline_name, batch_id)


def _open_tasks_sync(pipeline_name: str, batch_id: str) -> dict[str, Any]:
    engine = current_engine()
    ctx = engine.context(pipeline_name)
    review = ctx.pipeline.review
    sla = review.sla_s or engine.settings.review_sla_seconds
    due = utcnow() + timedelta(seconds=sla)
    with engine.store.begin() as conn:
        views = load_views(conn, batch_id=batch_id, status="waiting_review")
        opened = get_review_desk().open_tasks(
            conn,
            [(v, review_from_gate(v)) for v in views],
            workflow_id=review_workflow_id(batch_id),
            due_at=due,
        )
    tasks = {task_id: item_id for item_id, task_id in opened.items()}
    batch_store.reviews_opened(engine.store, batch_id)
    return {
        "tasks": tasks,
        "due": due.timestamp(),
        "escalation_s": review.escalation_s or engine.settings.review_escalation_seconds,
        "escalation_queue": review.escalation_queue,
    }


@DBOS.step(name="sluice.review.clock")
async def _clock() -> float:
    # A step, so that a replayed wait computes the same remaining time as the original.
    return time.time()


@DBOS.step(name="sluice.review.escalate", **_INFRA_RETRY)
async def _escalate(task_ids: list[str], queue: str, escalation_s: float) -> float:
    def work() -> float:
        due = utcnow() + timedelta(seconds=escalation_s)
        with current_engine().store.begin() as conn:
            for task_id in task_ids:
                get_review_desk().escalate(conn, task_id, queue=queue, due_at=due)
        return due.timestamp()

    return await asyncio.to_thread(work)


@DBOS.step(name="sluice.review.expire", **_INFRA_RETRY)
async def _expire(task_ids: list[str]) -> None:
    def work() -> None:
        with current_engine().store.begin() as conn:
            for task_id in task_ids:
                get_review_desk().expire(conn, task_id)

    await asyncio.to_thread(work)


@DBOS.step(name="sluice.review.apply", **_INFRA_RETRY)
async def _apply_decision(pipeline_name: str, item_id: str, task_id: str) -> str | None:
    return await asyncio.to_thread(_apply_decision_sync, pipeline_name, item_id, task_id)


def _apply_decision_sync(pipeline_name: str, item_id: str, task_id: str) -> str | None:
    engine = current_engine()
    ctx = engine.context(pipeline_name)
    desk = get_review_desk()
    with engine.store.begin() as conn:
        resolution = desk.resolution(conn, task_id)
        if resolution is None:  # a stray message: nothing decided on this task yet
            log.warning("review task %s woken without a decision", task_id)
            return None
        views = load_views(conn, item_ids=[item_id], status="waiting_review")
        if views:  # not applied yet (a re-run after a crash finds the item settled)
            apply_resolution(
                engine.store, conn, ctx, views[0], resolution, executor_id=engine.executor_id
            )
        desk.mark_applied(conn, task_id)
    return resolution.outcome


@DBOS.workflow(name="sluice.review")
async def review_wait(pipeline_name: str, batch_id: str) -> dict[str, Any]:
    """Wait for the review decisions of a batch's parked items (see module docs).

    One wait per batch, not per item: each waiting run costs the engine a poll on
    SQLite, and a batch's parked items share their deadlines anyway.
    """
    opened = await _open_tasks(pipeline_name, batch_id)
    tasks: dict[str, str] = opened["tasks"]
    pending = set(tasks)
    due, phase, applied = opened["due"], "open", 0
    while pending:
        timeout = _DAY_S if phase == "expired" else max(0.01, due - await _clock())
        message = await DBOS.recv_async(DECISION_TOPIC, timeout_seconds=timeout)
        if message is not None:
            task_id = message.get("task_id")
            if task_id in pending and await _apply_decision(pipeline_name, tasks[task_id], task_id):
                pending.discard(task_id)
                applied += 1
        elif phase == "open":
            due = await _escalate(
                sorted(pending), opened["escalation_queue"], opened["escalation_s"]
            )
            phase = "escalated"
        elif phase == "escalated":
            await _expire(sorted(pending))
            phase = "expired"  # an expired task still accepts a decision
    return {"decided": applied}
