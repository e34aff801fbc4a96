"""The day-one demo: train on the shipped sample, triage its test messages, report.

``sluice demo support-triage`` calls :func:`run_demo`. Each run submits the sample's
test messages under a new event source (``sluice-demo/<run id>``), so runs never mix and
the report covers exactly one run. The labels of the sample are kept aside and only used
to measure the precision of the automated decisions.
"""

from __future__ import annotations

import csv
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sluice.execution import parse_jsonl, queue_counts, submit_lines
from sluice.knowledge import IngestReport, KnowledgeBase
from sluice.models import (
    Gateway,
    LabelledData,
    ModelRecord,
    read_labelled_csv,
    train_classifier,
    train_injection_detector,
)
from sluice.models.injection_training import (
    injection_sample_path,
    read_injection_jsonl,
    with_benign,
)
from sluice.observability import RunReport, build_run_report
from sluice.pipelines.support_triage.pipeline import MODEL_NAME, sample_path, triage
from sluice.runtime import Runtime
from sluice.store import new_id

__all__ = ["DemoResult", "run_demo", "sample_events"]

Progress = Callable[[str, int, int], Any]
_CHANNELS = ("email", "chat", "web")


@dataclass(frozen=True)
class DemoResult:
    """The demo's report plus what it trained or reused."""

    report: RunReport
    model: ModelRecord
    train_seconds: float
    run_id: str
    knowledge: IngestReport | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``--json``)."""
        gate = dict(self.model.card.get("gate", {}))
        return {
            "run_id": self.run_id,
            "model": {
                "name": self.model.name,
                "version": self.model.version,
                "encoder": self.model.card.get("encoder"),
                "cv_accuracy": self.model.card["metrics"]["cv_accuracy"],
                "gate": gate,
            },
            "train_seconds": round(self.train_seconds, 2),
            "knowledge": (
                {
                    k: v
                    for k, v in self.knowledge.to_dict().items()
                    if k in ("index", "new", "changed", "unchanged", "chunks", "versions")
                }
                | {"failures": len(self.knowledge.failures)}
                if self.knowledge is not None
                else None
            ),
            **self.report.to_dict(),
        }


def sample_events(run_id: str, limit: int | None = None) -> tuple[list[str], dict[str, str]]:
    """The sample's test messages as CloudEvent JSON lines, and their labels by event id."""
    with sample_path("test.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    lines, truth = [], {}
    for number, (row, channel) in enumerate(zip(rows, itertools.cycle(_CHANNELS), strict=False)):
        if limit is not None and number >= limit:
            break
        event_id = f"msg-{number:04d}"
        truth[event_id] = row["category"]
        lines.append(
            json.dumps(
                {
                    "specversion": "1.0",
                    "id": event_id,
                    "source": f"sluice-demo/{run_id}",
                    "type": "com.example.support.message",
                    "datacontenttype": "application/json",
                    "data": {
                        "text": row["text"],
                        "channel": channel,
                        "customer": f"cust-{number % 97:03d}",
                    },
                }
            )
        )
    return lines, truth


def injection_training_data() -> LabelledData:
    """What the demo trains the injection screen on.

    The sample of attacks and look-alikes shipped with the detector, plus the support
    sample's training messages as ordinary traffic (its test messages stay unseen).
    """
    tickets = read_labelled_csv(sample_path("train.csv")).texts
    return with_benign(
        read_injection_jsonl(injection_sample_path()), tickets, "support-triage train.csv"
    )


def run_demo(
    runtime: Runtime, *, limit: int | None = None, progress: Progress | None = None
) -> DemoResult:
    """Train (or reuse) the classifiers, submit the sample, run a worker to drain, report."""
    started = time.monotonic()
    model = train_classifier(
        runtime.settings,
        runtime.models,
        MODEL_NAME,
        read_labelled_csv(sample_path("train.csv")),
        progress=progress,
    )
    # The injection screen's classifier (reused when unchanged): the sample of attacks
    # and look-alikes shipped for it, plus the support sample's training messages as
    # ordinary traffic. Without it the screen would run its heuristics only.
    tickets = read_labelled_csv(sample_path("train.csv")).texts
    injection_data = with_benign(
        read_injection_jsonl(injection_sample_path()), tickets, "support-triage train.csv"
    )
    train_injection_detector(runtime.settings, runtime.models, injection_data, created_by="demo")
    train_seconds = time.monotonic() - started
    if model.stage != "production":
        model = runtime.models.production(MODEL_NAME)
    knowledge = ingest_sample_knowledge(runtime, progress=progress)

    run_id = new_id("run")[4:]
    source = f"sluice-demo/{run_id}"
    lines, truth = sample_events(run_id, limit)
    run_started = time.monotonic()
    submitted = submit_lines(
        runtime.store,
        triage,
        parse_jsonl(lines, max_bytes=runtime.settings.max_event_bytes),
        origin="demo",
    )
    total = len(submitted.accepted)

    def tick(_: dict[str, int]) -> None:
        if progress:
            counts = queue_counts(runtime.store, triage.name, source=source)
            pending = counts.get("queued", 0) + counts.get("running", 0)
            progress("triage", total - pending, total)

    runtime.worker([triage.name]).run(drain=True, on_tick=tick)
    wall = time.monotonic() - run_started
    report = build_run_report(
        runtime.store,
        pipeline=triage.name,
        source=source,
        wall_seconds=wall,
        truth=truth,
        step_order=[*(s.name for s in triage.steps), "gate", "review", "action"],
    )
    return DemoResult(
        report=report,
        model=model,
        train_seconds=train_seconds,
        run_id=run_id,
        knowledge=knowledge,
    )


def ingest_sample_knowledge(runtime: Runtime, *, progress: Progress | None = None) -> IngestReport:
    """Ingest the shipped knowledge base (unchanged files are skipped by content hash)."""
    folder = sample_path("kb")
    gateway = Gateway(runtime.settings, runtime.store)
    try:
        return KnowledgeBase(runtime.store, gateway).ingest(
            [folder], root=folder, actor="demo", exclude=["README.md"], progress=progress
        )
    finally:
        gateway.close()
