"""Running one declared step over a batch: retries, timeouts, poison-item isolation.

Called inside a durable (checkpointed) step of the batch's run. The steps of this module
are what make the per-item guarantees hold whatever the engine does around them:

* items that already have a completed run of the step are skipped, so a step re-run
  after a crash (the engine's at-least-once) never repeats completed work;
* every attempt is recorded per item, failed ones with their error type and message;
* after the retry policy is exhausted on the whole batch, each item is tried alone once,
  so one bad item fails by itself instead of failing its 63 neighbours.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from sqlalchemy import func, select, update

from sluice.errors import NonRetryableError, StepTimeoutError
from sluice.execution import traces
from sluice.execution.pipeline import StepContext, StepSpec
from sluice.execution.records import (
    StepRecord,
    canonical_json,
    input_hash,
    load_views,
    write_step_runs,
)
from sluice.execution.tables import step_runs, work_items
from sluice.execution.types import ItemView, StepOutput
from sluice.governance import AuditEvent, append
from sluice.store import Store, utcnow

__all__ = ["StepSummary", "call_with_timeout", "run_step"]

log = logging.getLogger("sluice.execution")
T = TypeVar("T")


@dataclass(frozen=True)
class StepSummary:
    """What happened to a batch in one step (small: it is checkpointed by the engine)."""

    step: str
    completed: int
    skipped: int
    failed: int
    attempts: int


def call_with_timeout(fn: Callable[[], T], timeout_s: float | None, what: str) -> T:
    """Run ``fn``; raise :class:`StepTimeoutError` if it takes longer than ``timeout_s``.

    Python cannot stop a running thread: on timeout the call is abandoned and finishes
    in the background, which is one more reason steps must be idempotent.
    """
    if timeout_s is None:
        return fn()
    box: concurrent.futures.Future[T] = concurrent.futures.Future()
    # The caller's context (its trace spans among others) goes with the call's thread.
    context = contextvars.copy_context()

    def target() -> None:
        try:
            box.set_result(fn())
        except BaseException as exc:
            box.set_exception(exc)

    threading.Thread(
        target=context.run, args=(target,), name=f"sluice-step-{what}", daemon=True
    ).start()
    try:
        return box.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        raise StepTimeoutError(
            f"{what} did not finish within {timeout_s:g} s",
            hint="raise the step's timeout_s or make the batch smaller (SLUICE_BATCH_SIZE)",
        ) from None


def _check_outputs(
    outputs: Sequence[Any], items: Sequence[ItemView], step: str
) -> list[StepOutput]:
    if len(outputs) != len(items):
        raise NonRetryableError(
            f"step {step!r} returned {len(outputs)} outputs for {len(items)} items",
            hint="a step must return exactly one StepOutput per item, in order",
        )
    checked = []
    for out in outputs:
        if not isinstance(out, StepOutput):
            raise NonRetryableError(f"step {step!r} returned {type(out).__name__}, not StepOutput")
        try:
            canonical_json(out.value)
        except (TypeError, ValueError) as exc:
            raise NonRetryableError(
                f"step {step!r} output is not JSON-serializable: {exc}"
            ) from exc
        checked.append(out)
    return checked


def _previous_attempts(store: Store, item_ids: Sequence[str], step: str) -> int:
    with store.read() as conn:
        found = conn.execute(
            select(func.max(step_runs.c.attempt)).where(
                step_runs.c.item_id.in_(list(item_ids)), step_runs.c.step == step
            )
        ).scalar_one()
    return int(found or 0)


def run_step(
    store: Store,
    ctx: StepContext[Any],
    spec: StepSpec,
    batch_id: str,
    *,
    executor_id: str,
    rng: random.Random | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> StepSummary:
    """Run ``spec`` for the batch's items that have not completed it yet (module docs)."""
    with store.read() as conn:
        items = load_views(conn, batch_id=batch_id)
    pending = [i for i in items if spec.name not in i.outputs]
    skipped = len(items) - len(pending)
    if not pending:
        return StepSummary(spec.name, 0, skipped, 0, 0)
    attempt = _previous_attempts(store, [i.id for i in pending], spec.name)
    for _ in range(spec.retry.max_attempts):
        attempt += 1
        error = _attempt(store, ctx, spec, pending, batch_id, attempt, executor_id)
        if error is None:
            return StepSummary(spec.name, len(pending), skipped, 0, attempt)
        if not spec.retry.is_retryable(error) or _ == spec.retry.max_attempts - 1:
            break
        delay = spec.retry.delay(attempt, rng)
        log.warning(
            "step %s attempt %d failed (%s); retrying in %.2fs",
            spec.name,
            attempt,
            type(error).__name__,
            delay,
        )
        sleep(delay)
    if len(pending) == 1:
        _fail_items(store, pending, spec.name)
        return StepSummary(spec.name, 0, skipped, 1, attempt)
    # Isolate: one attempt per item alone, so only the items that really fail, fail.
    attempt += 1
    failed = []
    for item in pending:
        if _attempt(store, ctx, spec, [item], batch_id, attempt, executor_id) is not None:
            failed.append(item)
    _fail_items(store, failed, spec.name)
    return StepSummary(spec.name, len(pending) - len(failed), skipped, len(failed), attempt)


def _attempt(
    store: Store,
    ctx: StepContext[Any],
    spec: StepSpec,
    items: Sequence[ItemView],
    batch_id: str,
    attempt: int,
    executor_id: str,
) -> BaseException | None:
    """One attempt over ``items``; records its step runs; returns the error or None."""
    if traces.enabled():
        with traces.step_spans(items, spec.name, batch_id=batch_id, attempt=attempt) as spans:
            records, error = _call(ctx, spec, items, batch_id, attempt, executor_id)
            for record in records:
                if record.item_id in spans:
                    traces.finish_step_span(spans[record.item_id], record)
    else:
        records, error = _call(ctx, spec, items, batch_id, attempt, executor_id)
    with store.begin() as conn:
        write_step_runs(store, conn, records)
    return error


def _call(
    ctx: StepContext[Any],
    spec: StepSpec,
    items: Sequence[ItemView],
    batch_id: str,
    attempt: int,
    executor_id: str,
) -> tuple[list[StepRecord], BaseException | None]:
    """Run the step's function over ``items``; its lineage rows and its error, if any."""
    started = utcnow()
    t0 = time.perf_counter()
    error: BaseException | None = None
    outputs: list[StepOutput] = []
    try:
        outputs = _check_outputs(
            call_with_timeout(
                lambda: spec.fn(ctx, list(items)), spec.timeout_s, f"step {spec.name!r}"
            ),
            items,
            spec.name,
        )
    except Exception as exc:
        error = exc
    latency_ms = (time.perf_counter() - t0) * 1000
    finished = utcnow()
    base = StepRecord(
        item_id="",
        step=spec.name,
        attempt=attempt,
        status="completed" if error is None else "failed",
        started_at=started,
        finished_at=finished,
        latency_ms=latency_ms,
        input_hash="",
        batch_id=batch_id,
        batch_size=len(items),
        executor_id=executor_id,
    )
    if error is None:
        records = [
            replace(
                base,
                item_id=item.id,
                input_hash=input_hash(item),
                round=item.round,
                output=dict(out.value),
                model_name=out.model_name,
                model_version=out.model_version,
                cost=out.cost,
                model_calls=[dict(c) for c in out.model_calls] or None,
                retrieval=[dict(r) for r in out.retrieval] or None,
            )
            for item, out in zip(items, outputs, strict=True)
        ]
    else:
        records = [
            replace(
                base,
                item_id=item.id,
                input_hash=input_hash(item),
                round=item.round,
                error_type=type(error).__name__,
                error=str(error)[:4000],
            )
            for item in items
        ]
    return records, error


def _fail_items(store: Store, items: Sequence[ItemView], step: str) -> None:
    if not items:
        return
    ids = [i.id for i in items]
    with store.begin() as conn:
        last = {
            r.item_id: r
            for r in conn.execute(
                select(step_runs.c.item_id, step_runs.c.error_type, step_runs.c.error)
                .where(
                    step_runs.c.item_id.in_(ids),
                    step_runs.c.step == step,
                    step_runs.c.status == "failed",
                )
                .order_by(step_runs.c.attempt)
            )
        }
        now = utcnow()
        for item_id in ids:
            run = last.get(item_id)
            conn.execute(
                update(work_items)
                .where(work_items.c.id == item_id, work_items.c.status == "running")
                .values(
                    status="failed",
                    error_type=run.error_type if run else "StepFailedError",
                    error=f"step {step!r}: {run.error if run else 'failed'}",
                    completed_at=now,
                    updated_at=now,
                )
            )
        append(
            conn,
            [
                AuditEvent(
                    "worker",
                    "item.failed",
                    item_id,
                    {
                        "step": step,
                        "error_type": last[item_id].error_type if item_id in last else None,
                    },
                )
                for item_id in ids
            ],
        )
