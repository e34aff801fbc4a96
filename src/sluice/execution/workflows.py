"""The durable workflows: one per batch, one review wait per batch with parked items.

* ``sluice.batch`` (on the pipeline's queue): records its plan (the pipeline's step
  names), runs one checkpointed step per pipeline step, settles the batch (gate, action,
  outbox), records the batch as finished, and, if the gate parked items, enqueues the
  batch's review wait.
* ``sluice.review`` (async, on the pipeline's review queue, id ``sluice-review-<batch>``):
  opens a review task per parked item, applies decisions already made, then waits for
  decisions with ``DBOS.recv`` (durable: the wait and its deadline survive restarts),
  applies each as it arrives, escalates the undecided tasks after the SLA, marks them
  expired after the escalation deadline, and keeps waiting until every task is decided.

Workflows and steps are registered at import under fixed names, the same in every
process. Their database work is retried by DBOS on connection errors for about a
quarter of an hour (a restarting database); errors of the pipeline's own code are
handled inside the steps (retry policy, per-item failure) and never reach DBOS.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any

from dbos import DBOS, SetWorkflowID
from sqlalchemy.exc import DBAPIError, OperationalError

from sluice.errors import ExecutionError, StoreError
from sluice.execution import batches as batch_store
from sluice.execution.desk import get_review_desk
from sluice.execution.engine import (
    DECISION_TOPIC,
    current_engine,
    review_queue_name,
    review_workflow_id,
)
from sluice.execution.pipeline import get_pipeline
from sluice.execution.records import load_views
from sluice.execution.settle import (
    apply_resolution,
    fail_items,
    parked_items,
    review_from_gate,
    settle_batch,
)
from sluice.execution.steps import run_step
from sluice.store import utcnow

__all__ = ["review_wait", "run_batch"]

log = logging.getLogger("sluice.execution")
_DAY_S = 24 * 3600.0


def _infrastructure_error(error: BaseException) -> bool:
    """Worth retrying: the database went away, not the pipeline's code failing."""
    if isinstance(error, OperationalError | StoreError):
        return True
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


# 15 attempts, waits growing by 1.5x from 1 s: about 14 minutes before giving up.
_INFRA_RETRY: dict[str, Any] = {
    "retries_allowed": True,
    "max_attempts": 15,
    "interval_seconds": 1.0,
    "backoff_rate": 1.5,
    "should_retry": _infrastructure_error,
}


# -- the batch -------------------------------------------------------------------------
@DBOS.step(name="sluice.batch.plan")
def _plan(pipeline_name: str) -> list[str]:
    # Checkpointed, so a run recovered after a deploy that changed the pipeline keeps
    # the steps it started with (a step that no longer exists fails the batch clearly).
    return [spec.name for spec in get_pipeline(pipeline_name).steps]


@DBOS.step(name="sluice.batch.step", **_INFRA_RETRY)
def _run_step(pipeline_name: str, batch_id: str, step_name: str) -> dict[str, int]:
    engine = current_engine()
    ctx = engine.context(pipeline_name)
    spec = next((s for s in ctx.pipeline.steps if s.name == step_name), None)
    if spec is None:
        raise ExecutionError(
            f"pipeline {pipeline_name!r} has no step {step_name!r} any more, but batch "
            f"{batch_id} started with it",
            hint="the pipeline changed while the batch ran; retry its items",
        )
    summary = run_step(
        engine.store, ctx, spec, batch_id, executor_id=engine.executor_id, rng=engine.rng
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
    steps: dict[str, Any] = {}
    try:
        for step_name in _plan(pipeline_name):
            steps[step_name] = _run_step(pipeline_name, batch_id, step_name)
        parked = _settle(pipeline_name, batch_id)
    except Exception as exc:
        # Past its retries: fail the batch's unsettled items with the error (each can be
        # retried with `sluice items retry`) instead of leaving them running forever.
        cause = exc.__cause__ or exc
        log.exception("batch %s abandoned", batch_id)
        failed = _abandon(batch_id, type(cause).__name__, str(cause)[:2000])
        return {"steps": steps, "abandoned": failed}
    # Finish before the review wait can start: the wait moves the batch from "settled"
    # to "done" once its tasks exist, so "settled" must already be recorded by then.
    _finish(batch_id, bool(parked))
    if parked:
        # Enqueued, not started directly: an async run started from a sync workflow is
        # recorded as failed when the process shuts down, a queued one stays pending.
        with SetWorkflowID(review_workflow_id(batch_id)):
            DBOS.enqueue_workflow(
                review_queue_name(pipeline_name), review_wait, pipeline_name, batch_id
            )
    return {"steps": steps, "parked": len(parked)}


# -- the review wait --------------------------------------------------------------------
@DBOS.step(name="sluice.review.open", **_INFRA_RETRY)
async def _open_tasks(pipeline_name: str, batch_id: str) -> dict[str, Any]:
    return await asyncio.to_thread(_open_tasks_sync, pipeline_name, batch_id)


def _open_tasks_sync(pipeline_name: str, batch_id: str) -> dict[str, Any]:
    engine = current_engine()
    review = engine.context(pipeline_name).pipeline.review
    sla = review.sla_s or engine.settings.review_sla_seconds
    due = utcnow() + timedelta(seconds=sla)
    desk = get_review_desk()
    with engine.store.begin() as conn:
        views = load_views(conn, batch_id=batch_id, status="waiting_review")
        opened = desk.open_tasks(
            conn,
            [(v, review_from_gate(v)) for v in views],
            workflow_id=review_workflow_id(batch_id),
            due_at=due,
        )
        # A task decided before this wait ran (an item retried after its decision's
        # action failed) is applied at once rather than waited for.
        decided = [t for t in opened.values() if desk.resolution(conn, t) is not None]
    batch_store.reviews_opened(engine.store, batch_id)
    return {
        "tasks": {task_id: item_id for item_id, task_id in opened.items()},
        "decided": decided,
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
        engine = current_engine()
        due = utcnow() + timedelta(seconds=escalation_s)
        with engine.store.begin() as conn:
            get_review_desk().escalate(conn, task_ids, queue=queue, due_at=due)
        return due.timestamp()

    return await asyncio.to_thread(work)


@DBOS.step(name="sluice.review.expire", **_INFRA_RETRY)
async def _expire(task_ids: list[str]) -> None:
    def work() -> None:
        with current_engine().store.begin() as conn:
            get_review_desk().expire(conn, task_ids)

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
            applied = apply_resolution(
                engine.store,
                conn,
                ctx,
                views[0],
                resolution,
                executor_id=engine.executor_id,
                on_applied=lambda c: desk.mark_applied(c, task_id),
            )
        else:
            applied = True
            desk.mark_applied(conn, task_id)
    return resolution.outcome if applied else "failed"


@DBOS.step(name="sluice.review.fail", **_INFRA_RETRY)
async def _fail_item(item_id: str, error: str) -> None:
    def work() -> None:
        with current_engine().store.begin() as conn:
            fail_items(conn, [item_id], "ReviewApplyError", error, status="waiting_review")

    await asyncio.to_thread(work)


@DBOS.workflow(name="sluice.review")
async def review_wait(pipeline_name: str, batch_id: str) -> dict[str, Any]:
    """Wait for the review decisions of a batch's parked items (see module docs).

    One wait per batch, not per item: each waiting run costs the engine a poll on
    SQLite, and a batch's parked items share their deadlines anyway.
    """
    opened = await _open_tasks(pipeline_name, batch_id)
    tasks: dict[str, str] = opened["tasks"]
    pending = set(tasks)
    applied = 0

    async def apply(task_id: str) -> bool:
        try:
            outcome = await _apply_decision(pipeline_name, tasks[task_id], task_id)
        except Exception as exc:  # past its retries: fail this item, keep serving the rest
            log.exception("applying the decision on task %s failed", task_id)
            await _fail_item(tasks[task_id], str(exc.__cause__ or exc)[:2000])
            return True
        return outcome is not None

    for task_id in opened["decided"]:
        if await apply(task_id):
            pending.discard(task_id)
            applied += 1
    due, phase = opened["due"], "open"
    while pending:
        timeout = _DAY_S if phase == "expired" else max(0.01, due - await _clock())
        message = await DBOS.recv_async(DECISION_TOPIC, timeout_seconds=timeout)
        if message is not None:
            task_id = message.get("task_id")
            if task_id in pending and await apply(task_id):
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
