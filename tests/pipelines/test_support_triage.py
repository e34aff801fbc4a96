"""The support-triage reference pipeline on its shipped sample."""

from __future__ import annotations

import csv
import json
from typing import Any

import pytest

from sluice.errors import ConfigError
from sluice.execution import get_item, parse_jsonl, submit_lines
from sluice.pipelines.support_triage import sample_path, triage
from sluice.pipelines.support_triage.demo import run_demo, sample_events
from sluice.pipelines.support_triage.priority import Prioritizer
from sluice.review import list_tasks

INTENTS = json.loads(sample_path("intents.json").read_text())


def test_the_sample_has_at_least_15_intents_with_train_and_test_messages() -> None:
    def labels(name: str) -> list[str]:
        with sample_path(name).open(newline="", encoding="utf-8") as fh:
            return [row["category"] for row in csv.DictReader(fh)]

    train, test = labels("train.csv"), labels("test.csv")
    assert len(set(train)) >= 15
    assert set(train) == set(test) == set(INTENTS)
    assert min(train.count(i) for i in INTENTS) >= 20


@pytest.mark.parametrize(
    ("intent", "text", "priority", "fired"),
    [
        ("product_question", "Is the jacket waterproof?", "low", []),
        ("refund_status", "Where is my refund? I need it ASAP", "high", ["keyword:asap"]),
        ("double_charge", "YOU CHARGED ME TWICE FOR THE SAME ORDER", "urgent", ["shouting"]),
        ("complaint_escalation", "I will call my LAWYER", "urgent", ["keyword:lawyer"]),
        ("unknown_intent", "hello", "normal", []),
    ],
)
def test_priority_rules(intent: str, text: str, priority: str, fired: list[str]) -> None:
    assessed = Prioritizer(INTENTS).assess(intent, text)
    assert assessed.priority == priority
    assert list(assessed.rules[1:]) == fired


def test_messages_must_carry_text(runtime: Any) -> None:
    lines = [
        json.dumps({"specversion": "1.0", "id": str(i), "source": "s", "type": "t", "data": data})
        for i, data in enumerate(
            [
                {"text": "ok"},
                {"text": ""},
                {"subject": "no text"},
                {"text": "x", "channel": "pigeon"},
                {"text": "x", "extra": 1},
            ]
        )
    ]
    report = submit_lines(runtime.store, triage, parse_jsonl(lines, max_bytes=10_000), origin="t")
    assert [line for line, _ in report.accepted] == [1, 5]
    fields = [error["field"] for _, _, error in report.rejected]
    assert fields == ["data.text", "data.text", "data.channel"]


def test_the_worker_refuses_to_start_without_a_trained_model(runtime: Any) -> None:
    with pytest.raises(ConfigError, match="needs a trained 'support-intent' classifier"):
        runtime.worker(["support-triage"]).run(drain=True)


def test_demo_triages_the_sample_with_calibrated_precision(runtime: Any, intent_model: Any) -> None:
    result = run_demo(runtime, limit=120)
    report = result.report
    assert report.items == report.processed == 120
    assert report.auto_handled + report.waiting_review == 120
    assert report.failed == 0
    assert 0.4 < report.automation_rate < 1.0
    assert report.auto_precision is not None and report.auto_precision >= 0.95
    assert set(report.latency_ms) == {"classify", "prioritize", "draft_reply", "gate", "action"}

    (task, *_) = list_tasks(runtime.store)
    assert task.proposal["confidence"] < task.proposal["threshold"]
    assert set(task.proposal["labels"]) == set(INTENTS)
    assert "below the threshold" in task.reason

    item = get_item(runtime.store, task.item_id)
    classify = next(s for s in item["steps"] if s["step"] == "classify")
    assert (classify["model_name"], classify["model_version"]) == (
        "support-intent",
        intent_model.version,
    )
    assert classify["output"]["encoder"] == intent_model.card["encoder"]
    (call,) = classify["model_calls"]
    assert (call["endpoint"], call["version"], call["tier"]) == ("support-intent", "1", 0)
    draft = next(s for s in item["steps"] if s["step"] == "draft_reply")
    assert draft["output"] == {"draft": None, "skipped": "no 'support-reply' route is configured"}


def test_sample_events_are_valid_cloudevents_and_labels_stay_aside() -> None:
    lines, truth = sample_events("r1", limit=5)
    events = [json.loads(line) for line in lines]
    assert [e["id"] for e in events] == list(truth)
    assert all("category" not in e["data"] and e["source"] == "sluice-demo/r1" for e in events)
