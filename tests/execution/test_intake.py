import json
from typing import Any

import pytest
from sqlalchemy import func, select

from sluice.config import Settings
from sluice.errors import BackpressureError
from sluice.execution import (
    get_pipeline,
    list_rejections,
    parse_jsonl,
    retry_rejection,
    submit_lines,
)
from sluice.execution.tables import work_items


def _event(i: int, **data: Any) -> str:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": f"e{i}",
            "source": "test",
            "type": "t",
            "data": {"text": f"hello {i}", **data},
        }
    )


def _submit(runtime: Any, lines: list[str], pipeline: str = "toy-echo") -> Any:
    return submit_lines(
        runtime.store,
        get_pipeline(pipeline),
        parse_jsonl(lines, max_bytes=runtime.settings.max_event_bytes),
        origin="test.jsonl",
    )


def _count(runtime: Any) -> int:
    with runtime.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(work_items)).scalar_one())


@pytest.fixture(autouse=True)
def _toys() -> None:
    import toy_pipelines  # noqa: F401


def test_bad_lines_are_rejected_with_their_line_and_good_lines_are_kept(runtime: Any) -> None:
    lines = [
        _event(1),
        "{broken json",
        json.dumps({"specversion": "1.0", "id": "x", "source": "test", "type": "t"}),
        json.dumps(
            {"specversion": "1.0", "id": "y", "source": "test", "type": "t", "data": {"text": 42}}
        ),
        _event(5),
    ]
    report = _submit(runtime, lines)
    assert [line for line, _ in report.accepted] == [1, 5]
    errors = {line: err for line, _, err in report.rejected}
    assert set(errors) == {2, 3, 4}
    assert "invalid JSON" in errors[2]["message"]
    assert errors[3]["message"] == "missing required field 'data'"
    assert errors[4]["field"] == "data.text"
    assert _count(runtime) == 2
    kept = {r.line: r for r in list_rejections(runtime.store)}
    assert set(kept) == {2, 3, 4}, "rejected input is kept, never dropped"
    assert kept[2].raw == "{broken json" and kept[2].origin == "test.jsonl"


def test_submitting_the_same_file_twice_creates_no_new_items(runtime: Any) -> None:
    lines = [_event(i) for i in range(30)]
    first = _submit(runtime, lines)
    second = _submit(runtime, lines)
    assert len(first.accepted) == 30 and not first.duplicates
    assert not second.accepted and len(second.duplicates) == 30
    assert dict(second.duplicates) == dict(first.accepted), "duplicates name the existing item"
    assert _count(runtime) == 30


def test_the_same_event_twice_in_one_file_is_one_item(runtime: Any) -> None:
    report = _submit(runtime, [_event(1), _event(2), _event(1)])
    assert [line for line, _ in report.accepted] == [1, 2]
    assert report.duplicates == [(3, report.accepted[0][1])]
    assert _count(runtime) == 2


def test_a_full_queue_defers_lines_and_says_it_is_retryable(
    tmp_path: Any, database_url: str | None, model_cache: Any
) -> None:
    from helpers import make_settings
    from sluice.runtime import Runtime

    settings = make_settings(tmp_path / "h", database_url, model_cache, max_queued_items=3)
    with Runtime(settings) as rt:
        report = _submit(rt, [_event(i) for i in range(5)])
        assert len(report.accepted) == 3 and report.deferred == [4, 5]
        with pytest.raises(BackpressureError) as info:
            _submit(rt, [_event(9)])
        assert info.value.retryable and info.value.status == 503


def test_a_rejected_event_can_be_fixed_and_retried(runtime: Any) -> None:
    report = _submit(
        runtime,
        [
            json.dumps(
                {
                    "specversion": "1.0",
                    "id": "z",
                    "source": "test",
                    "type": "t",
                    "data": {"txt": "typo"},
                }
            )
        ],
    )
    ((_, rejection_id, error),) = report.rejected
    assert error["message"] == "missing required field 'data.text'"
    again = retry_rejection(runtime.store, rejection_id)
    assert again.rejected and not again.accepted, "unchanged input is still rejected"
    fixed = _event(77)
    ok = retry_rejection(runtime.store, rejection_id, raw=fixed)
    assert len(ok.accepted) == 1
    (kept,) = list_rejections(runtime.store, status=None)
    assert kept.status == "accepted" and kept.item_id == ok.accepted[0][1]
    assert list_rejections(runtime.store) == []


def test_priority_extension_orders_the_queue(sqlite_settings: Settings) -> None:
    from sluice.execution.batches import claim_batch
    from sluice.runtime import Runtime

    with Runtime(sqlite_settings) as rt:
        lines = [
            json.dumps(
                {
                    "specversion": "1.0",
                    "id": f"p{i}",
                    "source": "s",
                    "type": "t",
                    "priority": prio,
                    "data": {"text": prio},
                }
            )
            for i, prio in enumerate(["low", "normal", "urgent", "high"])
        ]
        _submit(rt, lines)
        batch = claim_batch(rt.store, "toy-echo", 2, "w", lambda conn, batch: None)
        assert batch is not None and batch.priority == 0
        with rt.store.read() as conn:
            claimed = set(
                conn.execute(
                    select(work_items.c.data["text"].as_string()).where(
                        work_items.c.batch_id == batch.id
                    )
                ).scalars()
            )
        assert claimed == {"urgent", "high"}
