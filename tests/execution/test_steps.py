"""The step runner's guarantees, without the durable engine around it."""

import json
from typing import Any

import pytest
from sqlalchemy import select

from sluice.errors import StepTimeoutError
from sluice.execution import get_item, get_pipeline, parse_jsonl, submit_lines
from sluice.execution.batches import claim_batch
from sluice.execution.steps import call_with_timeout, run_step
from sluice.execution.tables import step_runs


@pytest.fixture
def toys() -> Any:
    import toy_pipelines

    toy_pipelines.ATTEMPTS.clear()
    return toy_pipelines


def _batch(runtime: Any, pipeline: str, texts: list[str]) -> Any:
    lines = [
        json.dumps(
            {
                "specversion": "1.0",
                "id": f"e{i}",
                "source": "steps",
                "type": "t",
                "data": {"text": t},
            }
        )
        for i, t in enumerate(texts)
    ]
    submit_lines(
        runtime.store, get_pipeline(pipeline), parse_jsonl(lines, max_bytes=10_000), origin="t"
    )
    # No engine here: the steps are called directly, so the batch is claimed, not run.
    batch = claim_batch(runtime.store, pipeline, 100, "w", lambda conn, batch: None)
    assert batch is not None
    return batch


def _runs(runtime: Any) -> list[Any]:
    with runtime.store.read() as conn:
        return list(conn.execute(select(step_runs).order_by(step_runs.c.attempt)))


def _run(runtime: Any, pipeline: str, batch: Any) -> Any:
    p = get_pipeline(pipeline)
    ctx = p.load_resources(runtime.settings, runtime.store)
    return run_step(runtime.store, ctx, p.steps[0], batch.id, executor_id="w", sleep=lambda s: None)


def test_transient_failures_are_retried_and_every_attempt_is_recorded(
    runtime: Any, toys: Any
) -> None:
    batch = _batch(runtime, "toy-flaky", ["flaky one", "fine"])
    summary = _run(runtime, "toy-flaky", batch)
    assert (summary.completed, summary.failed, summary.attempts) == (2, 0, 3)
    runs = _runs(runtime)
    assert [(r.attempt, r.status) for r in runs if r.item_id == runs[0].item_id] == [
        (1, "failed"),
        (2, "failed"),
        (3, "completed"),
    ]
    assert {r.error_type for r in runs if r.status == "failed"} == {"ConnectionError"}


def test_a_poison_item_fails_alone_and_its_neighbours_complete(runtime: Any, toys: Any) -> None:
    batch = _batch(runtime, "toy-flaky", ["good a", "poison", "good b"])
    summary = _run(runtime, "toy-flaky", batch)
    assert (summary.completed, summary.failed) == (2, 1)
    with runtime.store.read() as conn:
        statuses = dict(
            conn.execute(
                select(step_runs.c.item_id, step_runs.c.status).where(
                    step_runs.c.attempt == summary.attempts
                )
            ).all()
        )
    assert sorted(statuses.values()) == ["completed", "completed", "failed"]
    poisoned = next(i for i, s in statuses.items() if s == "failed")
    item = get_item(runtime.store, poisoned)
    assert item["status"] == "failed" and item["error_type"] == "Poison"
    assert "this item always fails" in item["error"]


def test_a_step_that_runs_past_its_timeout_fails_as_a_timeout(runtime: Any, toys: Any) -> None:
    batch = _batch(runtime, "toy-flaky", ["slow"])
    summary = _run(runtime, "toy-flaky", batch)
    assert summary.failed == 1
    assert {r.error_type for r in _runs(runtime)} == {"StepTimeoutError"}


def test_rerunning_a_step_skips_items_that_completed_it(runtime: Any, toys: Any) -> None:
    batch = _batch(runtime, "toy-flaky", ["a", "b"])
    _run(runtime, "toy-flaky", batch)
    before = dict(toys.ATTEMPTS)
    again = _run(runtime, "toy-flaky", batch)  # what the engine does after a crash
    assert (again.completed, again.skipped) == (0, 2)
    assert before == toys.ATTEMPTS, "completed work was not executed again"
    assert len(_runs(runtime)) == 2


def test_call_with_timeout_returns_fast_results_and_stops_waiting_for_slow_ones() -> None:
    assert call_with_timeout(lambda: 41 + 1, 1.0, "quick") == 42
    import time

    with pytest.raises(StepTimeoutError, match=r"within 0\.05 s"):
        call_with_timeout(lambda: time.sleep(1), 0.05, "sleepy")


def test_a_repeated_completion_is_kept_as_a_duplicate_not_a_second_result(
    runtime: Any, toys: Any
) -> None:
    from datetime import UTC, datetime

    from sluice.execution.records import StepRecord, write_step_runs
    from sluice.execution.tables import work_items

    batch = _batch(runtime, "toy-flaky", ["x"])
    with runtime.store.read() as conn:
        item_id = conn.execute(
            select(work_items.c.id).where(work_items.c.batch_id == batch.id)
        ).scalar_one()
    now = datetime.now(UTC)

    def record(value: str) -> StepRecord:
        return StepRecord(
            item_id=item_id,
            step="wobble",
            attempt=1,
            status="completed",
            started_at=now,
            finished_at=now,
            latency_ms=1.0,
            input_hash="h",
            output={"v": value},
        )

    with runtime.store.begin() as conn:
        assert write_step_runs(runtime.store, conn, [record("first")]) == 0
    with runtime.store.begin() as conn:
        assert write_step_runs(runtime.store, conn, [record("second")]) == 1
    rows = {r.status: r.output["v"] for r in _runs(runtime)}
    assert rows == {"completed": "first", "duplicate": "second"}
