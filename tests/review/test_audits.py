"""Sampling audits: which items are sampled, graded blind, and the precision estimate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from helpers import make_settings
from sluice.execution import get_item, get_pipeline, parse_jsonl, submit_lines
from sluice.review import audit_precision, decide, get_task, list_tasks
from sluice.runtime import Runtime


@pytest.fixture(autouse=True)
def _toys() -> None:
    import toy_pipelines  # noqa: F401


@pytest.fixture
def sampling(tmp_path: Path, database_url: str | None, model_cache: Path) -> Any:
    settings = make_settings(tmp_path / "h", database_url, model_cache, audit_sample_rate=0.5)
    with Runtime(settings) as rt:
        yield rt


def _run(rt: Any, texts: list[str], batch: str = "a") -> list[str]:
    lines = [
        json.dumps(
            {
                "specversion": "1.0",
                "id": f"{batch}{i}",
                "source": "s",
                "type": "t",
                "data": {"text": t},
            }
        )
        for i, t in enumerate(texts)
    ]
    report = submit_lines(
        rt.store, get_pipeline("toy-echo"), parse_jsonl(lines, max_bytes=10_000), origin="t"
    )
    rt.worker(["toy-echo"]).run(drain=True)
    return [item_id for _, item_id in report.accepted]


def test_the_sample_is_systematic_per_intent_and_covers_rare_ones(sampling: Any) -> None:
    # toy-echo's label is the upper-cased text: four items of "a", one of "b".
    ids = _run(sampling, ["a", "a", "a", "a", "b"])
    audits = list_tasks(sampling.store, queue="audit")
    assert all(t.kind == "audit" and t.priority == 3 for t in audits)
    by_stratum = {s: sum(t.stratum == s for t in audits) for s in ("A", "B")}
    assert by_stratum == {"A": 2, "B": 1}  # 1 in 2 of "A", and the rare "B" too
    _run(
        sampling, ["a"], batch="second"
    )  # the count carries over between batches: the 5th "a" is sampled
    assert sum(t.stratum == "A" for t in list_tasks(sampling.store, queue="audit")) == 3
    assert all(get_item(sampling.store, i)["status"] == "completed" for i in ids)


def test_audits_are_blind_and_the_precision_estimate_follows_the_grades(sampling: Any) -> None:
    _run(sampling, ["a", "a", "a", "a", "b"])
    audits = sorted(list_tasks(sampling.store, queue="audit"), key=lambda t: t.stratum or "")
    assert all(t.blind for t in audits)
    hidden = audits[0].public_dict()["proposal"]
    assert "label" not in hidden and set(hidden["labels"]) == {"A", "OTHER"}

    a1, a2, b = audits
    decide(sampling.store, a1.id, reviewer="ana", outcome="correct", label="A")  # right
    decide(sampling.store, a2.id, reviewer="ana", outcome="correct", label="OTHER")  # wrong
    decide(sampling.store, b.id, reviewer="ana", outcome="correct", label="B")  # right
    assert not get_task(sampling.store, a1.id).blind
    before = {t.item_id: get_item(sampling.store, t.item_id)["outbox"] for t in audits}

    estimate = audit_precision(sampling.store, "toy-echo")
    strata = {s.stratum: s for s in estimate.strata}
    assert (strata["A"].audited, strata["A"].correct, strata["A"].precision) == (2, 1, 0.5)
    assert (strata["B"].audited, strata["B"].correct, strata["B"].precision) == (1, 1, 1.0)
    assert strata["A"].auto_handled == 4 and strata["B"].auto_handled == 1
    assert 0 < strata["B"].low < 1.0 == strata["B"].high  # one right answer proves little
    overall = estimate.overall
    assert overall.precision == pytest.approx(0.8 * 0.5 + 0.2 * 1.0)
    assert overall.low < overall.precision < overall.high
    # Grading an audit never touches the item: its action stands.
    for task in audits:
        assert get_item(sampling.store, task.item_id)["outbox"] == before[task.item_id]


def test_no_sampling_at_rate_zero(runtime: Any) -> None:
    _run(runtime, ["a", "b", "c"])
    assert list_tasks(runtime.store, queue="audit") == []


def test_batches_settling_at_once_share_the_stratum_counts(sampling: Any) -> None:
    """Two transactions sampling a new stratum at the same time: no unique violation,
    and the counter sees every item (PostgreSQL row locks; SQLite's write lock)."""
    import threading
    from datetime import UTC, datetime, timedelta

    from sluice.execution import ItemView
    from sluice.review import TaskDesk
    from sluice.review.tables import audit_strata

    desk, start = TaskDesk(), threading.Barrier(2)
    errors: list[BaseException] = []

    def settle(prefix: str) -> None:
        views = [
            ItemView(
                f"itm_{prefix}{i}",
                "toy-echo",
                "s",
                f"{prefix}{i}",
                "t",
                None,
                {},
                2,
                datetime.now(UTC),
            )
            for i in range(10)
        ]
        try:
            start.wait()
            with sampling.store.begin() as conn:
                desk.sample_audits(
                    conn,
                    [(v, {"label": "NEW"}) for v in views],
                    rate=0.5,
                    stratum="label",
                    queue="audit",
                    due_at=datetime.now(UTC) + timedelta(days=1),
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=settle, args=(p,)) for p in ("x", "y")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with sampling.store.read() as conn:
        row = conn.execute(audit_strata.select()).one()
    assert (row.seen, row.sampled) == (20, 10)
