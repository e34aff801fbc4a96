"""Durable runs end to end in one process: batches, the gate, the outbox, review waits."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from sluice.errors import TaskStateError
from sluice.execution import (
    get_item,
    get_pipeline,
    parse_jsonl,
    queue_counts,
    retry_items,
    submit_lines,
)
from sluice.execution.tables import outbox, step_runs
from sluice.review import decide, list_tasks


@pytest.fixture(autouse=True)
def _toys() -> None:
    import toy_pipelines  # noqa: F401


def submit(runtime: Any, texts: list[str], pipeline: str = "toy-echo") -> list[str]:
    lines = [
        json.dumps(
            {"specversion": "1.0", "id": f"e{i}", "source": "w", "type": "t", "data": {"text": t}}
        )
        for i, t in enumerate(texts)
    ]
    report = submit_lines(
        runtime.store, get_pipeline(pipeline), parse_jsonl(lines, max_bytes=10_000), origin="t"
    )
    return [item_id for _, item_id in report.accepted]


def run_until(
    runtime: Any,
    done: Callable[[], bool],
    timeout: float = 30.0,
    pipelines: list[str] | None = None,
) -> None:
    """Run a worker until ``done()`` holds, then stop it."""
    stop = threading.Event()
    worker = runtime.worker(pipelines or ["toy-echo"])
    thread = threading.Thread(target=worker.run, kwargs={"stop": stop})
    thread.start()
    deadline = time.monotonic() + timeout
    try:
        while not done():
            assert time.monotonic() < deadline, "timed out waiting for the worker"
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(30)


def outbox_count(runtime: Any) -> int:
    with runtime.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(outbox)).scalar_one())


def test_items_are_settled_or_parked_and_each_action_is_written_once(runtime: Any) -> None:
    texts = [f"msg {i}" + (" review" if i % 4 == 0 else "") for i in range(40)]
    ids = submit(runtime, texts)
    runtime.worker(["toy-echo"]).run(drain=True)
    assert queue_counts(runtime.store) == {"completed": 30, "waiting_review": 10}
    assert outbox_count(runtime) == 30
    item = get_item(runtime.store, ids[1])
    assert [s["step"] for s in item["steps"]] == ["shout", "gate", "action"]
    assert item["outbox"]["payload"] == {"label": "MSG 1", "by": "auto"}
    assert item["result"]["decided_by"] == "auto"
    with runtime.store.read() as conn:
        batch_sizes = set(
            conn.execute(
                select(step_runs.c.batch_size).where(step_runs.c.step == "shout")
            ).scalars()
        )
    assert max(batch_sizes) > 1, "items ran in batches"
    tasks = list_tasks(runtime.store)
    assert len(tasks) == 10 and {t.queue for t in tasks} == {"toy"}


def test_a_decision_resumes_the_waiting_item(runtime: Any) -> None:
    ids = submit(runtime, ["please review", "no need"])
    runtime.worker(["toy-echo"]).run(drain=True)
    (task,) = list_tasks(runtime.store)
    assert task.item_id == ids[0] and task.state == "open"

    decide(
        runtime.store,
        task.id,
        reviewer="ana",
        outcome="correct",
        label="OTHER",
        reason="not what the model thought",
    )
    run_until(runtime, lambda: get_item(runtime.store, ids[0])["status"] == "completed")

    item = get_item(runtime.store, ids[0])
    assert item["outbox"]["payload"] == {"label": "OTHER", "by": "reviewer:ana"}
    review = next(s for s in item["steps"] if s["step"] == "review")
    assert review["output"]["outcome"] == "correct"
    assert review["output"]["reason"] == "not what the model thought"
    assert review["output"]["decision"]["task_id"] == task.id
    assert list_tasks(runtime.store) == []
    assert outbox_count(runtime) == 2


def test_a_rejected_proposal_settles_the_item_without_an_action(runtime: Any) -> None:
    (item_id,) = submit(runtime, ["review me"])
    runtime.worker(["toy-echo"]).run(drain=True)
    (task,) = list_tasks(runtime.store)
    decide(runtime.store, task.id, reviewer="ana", outcome="reject")
    run_until(runtime, lambda: get_item(runtime.store, item_id)["status"] == "rejected")
    assert get_item(runtime.store, item_id)["outbox"] is None


def test_a_decision_made_while_no_worker_runs_is_applied_after_restart(runtime: Any) -> None:
    (item_id,) = submit(runtime, ["review while down"])
    runtime.worker(["toy-echo"]).run(drain=True)  # parks the item, then the worker exits
    (task,) = list_tasks(runtime.store)
    decide(runtime.store, task.id, reviewer="bo", outcome="approve")
    assert get_item(runtime.store, item_id)["status"] == "waiting_review"
    run_until(runtime, lambda: get_item(runtime.store, item_id)["status"] == "completed")
    assert get_item(runtime.store, item_id)["outbox"]["decided_by"] == "reviewer:bo"


def test_overdue_tasks_escalate_then_expire_and_still_take_a_decision(
    tmp_path: Any, database_url: str | None, model_cache: Any
) -> None:
    from helpers import make_settings
    from sluice.runtime import Runtime

    settings = make_settings(
        tmp_path / "h",
        database_url,
        model_cache,
        review_sla_seconds=0.5,
        review_escalation_seconds=0.5,
    )
    with Runtime(settings) as rt:
        (item_id,) = submit(rt, ["review slowly"])

        def state() -> str:
            tasks = list_tasks(rt.store, state=None)
            return tasks[0].state if tasks else "none"

        run_until(rt, lambda: state() == "expired", timeout=30)
        (task,) = list_tasks(rt.store, state="expired")
        assert task.queue == "escalations" and task.escalated_at is not None
        decide(rt.store, task.id, reviewer="lead", outcome="approve")
        run_until(rt, lambda: get_item(rt.store, item_id)["status"] == "completed")


@pytest.fixture
def broken_action() -> Any:
    import toy_pipelines

    toy_pipelines.BROKEN_ACTIONS.add("fragile")
    yield toy_pipelines.BROKEN_ACTIONS
    toy_pipelines.BROKEN_ACTIONS.discard("fragile")


def completed_runs(item: dict[str, Any], step: str) -> list[dict[str, Any]]:
    return [s for s in item["steps"] if s["step"] == step and s["status"] == "completed"]


def test_a_retried_item_settles_again_without_rerunning_its_steps(
    runtime: Any, broken_action: set[str]
) -> None:
    (item_id, other) = submit(runtime, ["fragile one", "sturdy one"])
    runtime.worker(["toy-echo"]).run(drain=True)
    item = get_item(runtime.store, item_id)
    assert item["status"] == "failed" and item["error_type"] == "ActionBroken"
    assert get_item(runtime.store, other)["status"] == "completed"
    with pytest.raises(TaskStateError):
        retry_items(runtime.store, [other])  # only failed items go back

    broken_action.discard("fragile")
    retry_items(runtime.store, [item_id])
    runtime.worker(["toy-echo"]).run(drain=True)

    item = get_item(runtime.store, item_id)
    assert item["status"] == "completed" and item["round"] == 1
    assert item["outbox"]["payload"] == {"label": "FRAGILE ONE", "by": "auto"}
    assert len(completed_runs(item, "shout")) == 1, "a completed step never runs again"
    assert [r["round"] for r in completed_runs(item, "gate")] == [0, 1]
    assert [r["round"] for r in completed_runs(item, "action")] == [1]
    assert outbox_count(runtime) == 2


def test_a_decision_whose_action_failed_is_applied_again_on_retry(
    runtime: Any, broken_action: set[str]
) -> None:
    (item_id,) = submit(runtime, ["fragile, please review"])
    runtime.worker(["toy-echo"]).run(drain=True)
    (task,) = list_tasks(runtime.store)
    decide(runtime.store, task.id, reviewer="ana", outcome="correct", label="OTHER")
    run_until(runtime, lambda: get_item(runtime.store, item_id)["status"] == "failed")
    assert get_item(runtime.store, item_id)["error_type"] == "ActionBroken"

    broken_action.discard("fragile")
    retry_items(runtime.store, [item_id])
    # The decision stands: the new round applies it without asking a human again.
    run_until(runtime, lambda: get_item(runtime.store, item_id)["status"] == "completed")
    item = get_item(runtime.store, item_id)
    assert item["outbox"]["payload"] == {"label": "OTHER", "by": "reviewer:ana"}
    assert list_tasks(runtime.store, state=None)[0].id == task.id, "no second task"


def test_every_state_change_is_audited_and_the_lineage_is_intact(runtime: Any) -> None:
    from sluice.execution import item_lineage
    from sluice.governance import iter_entries, load_signing_key, verify

    ids = submit(runtime, ["route me", "please review"])
    runtime.worker(["toy-echo"]).run(drain=True)
    (task,) = list_tasks(runtime.store)
    decide(runtime.store, task.id, reviewer="ana", outcome="correct", label="OTHER", reason="r")
    run_until(runtime, lambda: get_item(runtime.store, ids[1])["status"] == "completed")

    key = load_signing_key(runtime.settings.audit_key, create=False)  # made by the worker
    report = verify(runtime.store, [key.public_key()])
    assert report.ok and report.checkpoints >= 1, report
    with runtime.store.read() as conn:
        actions = {e.action for e in iter_entries(conn)}
    assert {
        "item.created",
        "step.completed",
        "items.settled",
        "review.opened",
        "review.decided",
        "audit.checkpoint",
    } <= actions

    lineage = item_lineage(runtime.store, ids[1])
    assert lineage["intact"]
    assert [s["step"] for s in lineage["steps"]] == ["shout", "gate", "review", "action"]
    assert all(s["audit"] and s["intact"] for s in lineage["steps"])
    decided = next(r for r in lineage["reviews"] if "decided" in r)
    assert decided["reviewer"] == "ana" and decided["label"] == "OTHER"
    assert lineage["action"]["payload"] == {"label": "OTHER", "by": "reviewer:ana"}


def test_an_altered_lineage_row_is_reported_as_not_intact(runtime: Any) -> None:
    from sqlalchemy import update

    from sluice.execution import item_lineage

    (item_id,) = submit(runtime, ["route me"])
    runtime.worker(["toy-echo"]).run(drain=True)
    assert item_lineage(runtime.store, item_id)["intact"]
    with runtime.store.begin() as conn:  # step runs are not append-only; their digests are
        conn.execute(
            update(step_runs)
            .where(step_runs.c.item_id == item_id, step_runs.c.step == "shout")
            .values(output={"label": "SOMETHING ELSE"})
        )
    lineage = item_lineage(runtime.store, item_id)
    assert not lineage["intact"]
    assert [s["intact"] for s in lineage["steps"]] == [False, True, True]


def test_a_worker_start_is_audited_and_a_changed_setting_is_named(
    tmp_path: Any, database_url: str | None, model_cache: Any
) -> None:
    from helpers import make_settings
    from sluice.governance import iter_entries
    from sluice.runtime import Runtime

    home = tmp_path / "h"
    url = database_url or None
    with Runtime(make_settings(home, url, model_cache)) as rt:
        rt.worker(["toy-echo"]).run(drain=True)
    with Runtime(make_settings(home, url, model_cache, batch_size=8)) as rt:
        rt.worker(["toy-echo"]).run(drain=True)
        with rt.store.read() as conn:
            starts = [e for e in iter_entries(conn) if e.target == "test-worker"]
    assert [e.action for e in starts] == ["worker.started", "config.changed"]
    assert starts[1].details_dict()["changed"] == ["batch_size"]
    if url:
        assert "postgres@" in starts[0].details_dict()["config"]["database_url"]
