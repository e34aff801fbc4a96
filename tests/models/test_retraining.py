"""Retraining from reviewers' decisions: a candidate with its evaluation, never promoted."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from sluice.errors import PromotionError, TrainingError
from sluice.execution import get_item
from sluice.models import Correction, read_labelled_csv, retrain_with_corrections
from sluice.pipelines.support_triage import MODEL_NAME, message_text, sample_path
from sluice.pipelines.support_triage.demo import run_demo
from sluice.review import decide, labelled_decisions, list_tasks


def _corrections(runtime: Any) -> list[Correction]:
    return [
        Correction(
            message_text(get_item(runtime.store, d["item_id"])["event"]["data"]), d["label"], d
        )
        for d in labelled_decisions(runtime.store, "support-triage")
    ]


def test_a_candidate_learns_from_corrections_and_carries_its_evaluation(
    runtime: Any, intent_model: Any, tmp_path: Path
) -> None:
    run_demo(runtime, limit=40)
    tasks = list_tasks(runtime.store)[:5]
    assert len(tasks) >= 3
    for task in tasks:
        other = next(lab for lab in task.proposal["labels"] if lab != task.proposal["label"])
        decide(runtime.store, task.id, reviewer="ana", outcome="correct", label=other)
    decide_reject = list_tasks(runtime.store)[0]
    decide(runtime.store, decide_reject.id, reviewer="bo", outcome="reject")  # no label: not used

    corrections = _corrections(runtime)
    assert len(corrections) == len(tasks)
    assert {c.provenance["reviewer"] for c in corrections} == {"ana"}

    # Hold out rows the demo did not submit, so no correction is in the held-out set.
    with sample_path("test.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    texts = {c.text for c in corrections}
    holdout_rows = [r for r in rows if r["text"] not in texts][-120:]
    holdout = tmp_path / "holdout.csv"
    with holdout.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "category"])
        writer.writeheader()
        writer.writerows({"text": r["text"], "category": r["category"]} for r in holdout_rows)

    result = retrain_with_corrections(
        runtime.settings,
        runtime.models,
        MODEL_NAME,
        read_labelled_csv(sample_path("train.csv")),
        corrections,
        read_labelled_csv(holdout),
        created_by="cli:ana",
    )
    candidate = result.candidate
    assert candidate.stage == "candidate", "retraining never promotes"
    assert runtime.models.production(MODEL_NAME).version == intent_model.version
    assert result.corrections_used == len(tasks) and result.corrections_left_out == 0
    card = candidate.card
    assert card["corrections"]["count"] == len(tasks)
    assert sorted(card["corrections"]["decisions"]) == sorted(
        c.provenance["decision_id"] for c in corrections
    )
    assert card["training_rows"] == len(read_labelled_csv(sample_path("train.csv")).texts) + len(
        tasks
    )
    evaluation = card["evaluation"]
    assert evaluation["candidate"]["holdout_rows"] == 120
    assert evaluation["production"]["holdout_rows"] == 120
    for figure in ("accuracy", "macro_f1", "automation"):
        assert 0 <= evaluation["candidate"][figure] <= 1
    assert evaluation["candidate"] == dict(result.candidate_evaluation)

    # The same comparison is recorded as its promotion evaluation: promote may follow.
    gate = result.evaluation
    assert gate is not None and gate.baseline_version == intent_model.version
    assert gate.metrics["candidate"] == dict(result.candidate_evaluation)
    assert runtime.models.evaluations(MODEL_NAME, candidate.version) == [gate]
    if gate.passed:
        promoted = runtime.models.promote(
            MODEL_NAME, candidate.version, to="canary", actor="cli:ana"
        )
        assert promoted.stage == "canary"
    else:
        with pytest.raises(PromotionError, match="did not pass the gate"):
            runtime.models.promote(MODEL_NAME, candidate.version, to="canary", actor="cli:ana")


def test_corrections_in_the_held_out_set_are_left_out(runtime: Any, intent_model: Any) -> None:
    run_demo(runtime, limit=20)
    task = list_tasks(runtime.store)[0]
    decide(runtime.store, task.id, reviewer="ana", outcome="approve")
    with pytest.raises(TrainingError, match="in the held-out set"):
        retrain_with_corrections(
            runtime.settings,
            runtime.models,
            MODEL_NAME,
            read_labelled_csv(sample_path("train.csv")),
            _corrections(runtime),
            read_labelled_csv(sample_path("test.csv")),  # the demo's messages come from here
        )
