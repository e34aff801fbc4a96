"""Replay with another model version: the changes are exactly the ones that model makes.

The candidate is the production classifier with the names of two intents swapped, so its
probabilities (and its calibrated threshold) are identical: every decision whose label is
one of the two must change to the other, and no other decision may change.
"""

from __future__ import annotations

import io
import threading
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from sluice.execution import get_item, queue_counts, replay_items, replay_since
from sluice.pipelines.support_triage import MODEL_NAME
from sluice.pipelines.support_triage.demo import run_demo
from sluice.review import decide, list_tasks


def _swapped(blob: bytes, a: str, b: str) -> bytes:
    with np.load(io.BytesIO(blob), allow_pickle=False) as packed:
        arrays = {k: packed[k] for k in packed.files}
    names = {a: b, b: a}
    arrays["labels"] = np.array([names.get(str(x), str(x)) for x in arrays["labels"]])
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


@pytest.fixture
def settled(runtime: Any, intent_model: Any) -> dict[str, Any]:
    run_demo(runtime, limit=60)
    counts = queue_counts(runtime.store)
    assert counts.get("completed", 0) > 10 and counts.get("waiting_review", 0) > 0
    return {i["id"]: i for i in (get_item(runtime.store, r) for r in _all_ids(runtime))}


def _all_ids(runtime: Any) -> list[str]:
    from sluice.execution import list_items

    return [r["id"] for r in list_items(runtime.store, limit=1000)]


def _labels(item: dict[str, Any]) -> tuple[str, str | None]:
    gate = next(s for s in item["steps"] if s["step"] == "gate")["output"]
    return gate["verdict"], (item["result"] or {}).get("label") or gate["proposal"]["label"]


def test_replay_with_a_candidate_reports_exactly_the_changed_decisions(
    runtime: Any, intent_model: Any, settled: dict[str, Any]
) -> None:
    # Swap the two labels the production model predicted most among auto-handled items.
    auto = [lab for v, lab in map(_labels, settled.values()) if v == "auto"]
    a, b = sorted(set(auto), key=auto.count, reverse=True)[:2]
    blob = runtime.models.artifact_path(MODEL_NAME, intent_model.version).read_bytes()
    candidate = runtime.models.register(
        MODEL_NAME, "classifier", _swapped(blob, a, b), intent_model.card, promote=False
    )
    assert candidate.stage == "candidate"

    report = replay_items(
        runtime.settings, runtime.store, list(settled), model_pins={MODEL_NAME: candidate.version}
    )
    expected_changes = 0
    for row in report.items:
        verdict, label = _labels(settled[row["item_id"]])
        assert row["replay"]["verdict"] == verdict, "same probabilities, same gate"
        if label in (a, b) and verdict == "auto":
            expected_changes += 1
            assert row["change"] == "label"
            assert row["replay"]["label"] == {a: b, b: a}[label]
        elif label in (a, b):
            assert row["change"] == "proposal"
        else:
            assert row["change"] == "unchanged", row
    assert expected_changes >= 2
    assert report.summary["transitions"].get("label") == expected_changes
    # Side effects go to the dry-run outbox only: the real outbox and items are unchanged.
    assert len(report.dry_run_outbox) == sum(
        1 for v, _ in map(_labels, settled.values()) if v == "auto"
    )
    for item_id, before in settled.items():
        after = get_item(runtime.store, item_id)
        assert (after["status"], after["outbox"]) == (before["status"], before["outbox"])


def test_replay_of_production_changes_nothing_and_counts_reviewer_agreement(
    runtime: Any, intent_model: Any, settled: dict[str, Any]
) -> None:
    task = list_tasks(runtime.store)[0]
    decide(runtime.store, task.id, reviewer="ana", outcome="approve")
    _run_until(runtime, lambda: get_item(runtime.store, task.item_id)["status"] == "completed")

    report = replay_since(
        runtime.settings, runtime.store, "support-triage", datetime(2000, 1, 1, tzinfo=UTC)
    )
    assert report.summary["items"] == len(settled)
    assert report.summary["changed"] == 0, report.summary
    assert report.summary["reviewed_items"] == 1
    assert report.summary["reviewed_agreement_original"] == 1  # approved: it was right
    assert report.summary["reviewed_agreement_replay"] == 1


def _run_until(runtime: Any, done: Any, timeout: float = 60) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=runtime.worker(["support-triage"]).run, kwargs={"stop": stop})
    thread.start()
    deadline = time.monotonic() + timeout
    try:
        while not done():
            assert time.monotonic() < deadline, "timed out waiting for the worker"
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(60)
