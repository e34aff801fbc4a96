"""Support triage v1: classify intent, set priority, gate on calibrated confidence, route.

Events carry the message in ``data.text`` (required) and optionally ``data.subject``,
``data.customer`` and ``data.channel`` (see ``docs/pipelines/support-triage.md``).

* ``classify``: the int8 MiniLM encoder and the production ``support-intent`` classifier
  give an intent, its probability and the runners-up.
* ``prioritize``: the intent's base priority and team queue, raised by urgency signals.
* gate: auto-handle when the probability reaches the threshold calibrated for the
  configured target precision (``SLUICE_TARGET_PRECISION``); otherwise a reviewer of the
  team's queue decides.
* action: ``route_ticket`` to the team queue with intent and priority, once per item.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources as package_files
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sluice.config import Settings
from sluice.errors import ConfigError, ModelNotFoundError
from sluice.execution import (
    Action,
    Auto,
    ItemView,
    Pipeline,
    QueueSpec,
    Resolution,
    RetryPolicy,
    Review,
    StepContext,
    StepOutput,
    Verdict,
)
from sluice.models import (
    Encoder,
    LinearHead,
    ModelRecord,
    ModelRegistry,
    load_classifier,
    load_encoder,
)
from sluice.pipelines.support_triage.priority import Prioritizer
from sluice.store import Store

__all__ = [
    "MODEL_NAME",
    "SupportMessage",
    "TriageResources",
    "message_text",
    "sample_path",
    "triage",
]

MODEL_NAME = "support-intent"


class SupportMessage(BaseModel):
    """``data`` of a support-triage event. Unknown extra fields are kept."""

    model_config = ConfigDict(strict=True, extra="allow")

    text: str = Field(min_length=1, max_length=20_000, description="The customer's message.")
    subject: str | None = Field(default=None, max_length=500, description="Subject line.")
    customer: str | None = Field(default=None, max_length=200, description="Customer id.")
    channel: Literal["email", "chat", "web", "phone", "social"] | None = Field(
        default=None, description="Where the message came in."
    )


def sample_path(name: str) -> Path:
    """A file of the shipped sample (``train.csv``, ``test.csv``, ``intents.json``)."""
    return Path(str(package_files.files("sluice.pipelines.support_triage") / "sample" / name))


@dataclass
class TriageResources:
    """Loaded once per worker process."""

    encoder: Encoder
    classifier: ModelRecord
    head: LinearHead
    threshold: float
    prioritizer: Prioritizer


triage = Pipeline(
    "support-triage",
    data_model=SupportMessage,
    queue=QueueSpec(worker_concurrency=2, max_pending_batches=4),
    # 128 messages per durable run: per-run costs (checkpoints, bookkeeping) shrink per
    # item while a run still takes well under a second (bench/triage_banking77.py).
    batch_size=128,
    description="Classify support messages, set priority, route or send to review.",
)


@triage.resources
def load(settings: Settings, store: Store) -> TriageResources:
    """Encoder, classifier (production, or the pinned version) and its threshold, intents."""
    try:
        record, head, calibration = load_classifier(
            ModelRegistry(store), MODEL_NAME, settings.model_pins.get(MODEL_NAME)
        )
    except ModelNotFoundError as exc:
        if MODEL_NAME in settings.model_pins:
            raise  # the pinned version is missing: say that, not "train one"
        raise ConfigError(
            f"support-triage needs a trained {MODEL_NAME!r} classifier",
            hint="train one with `sluice models train` (uses the shipped sample by default)",
        ) from exc
    intents = json.loads(sample_path("intents.json").read_text())
    return TriageResources(
        encoder=load_encoder(settings),
        classifier=record,
        head=head,
        threshold=calibration.threshold(settings.target_precision),
        prioritizer=Prioritizer(intents),
    )


def message_text(data: Mapping[str, Any]) -> str:
    """What the classifier reads of an event's data: the subject line and the message."""
    subject = data.get("subject")
    return f"{subject}\n{data['text']}" if subject else str(data["text"])


def _message(item: ItemView) -> str:
    return message_text(item.data)


@triage.step(retry=RetryPolicy(max_attempts=3, initial_backoff_s=0.2), timeout_s=120)
def classify(ctx: StepContext[TriageResources], items: Sequence[ItemView]) -> list[StepOutput]:
    """Intent, confidence and alternatives for every message of the batch."""
    res = ctx.resources
    embeddings = res.encoder.encode([_message(i) for i in items])
    outputs = []
    for prediction in res.head.predict(embeddings, top=3):
        outputs.append(
            StepOutput(
                {
                    "label": prediction.label,
                    "confidence": prediction.confidence,
                    "alternatives": [list(a) for a in prediction.alternatives],
                    "encoder": str(res.encoder.ref),
                },
                model_name=res.classifier.name,
                model_version=res.classifier.version,
            )
        )
    return outputs


@triage.step(retry=RetryPolicy(max_attempts=2), timeout_s=30)
def prioritize(ctx: StepContext[TriageResources], items: Sequence[ItemView]) -> list[StepOutput]:
    """Priority and team queue from the intent and urgency signals."""
    outputs = []
    for item in items:
        assessed = ctx.resources.prioritizer.assess(
            item.outputs["classify"]["label"], _message(item)
        )
        outputs.append(
            StepOutput(
                {
                    "priority": assessed.priority,
                    "queue": assessed.queue,
                    "rules": list(assessed.rules),
                }
            )
        )
    return outputs


@triage.gate
def confidence_gate(ctx: StepContext[TriageResources], item: ItemView) -> Verdict:
    """Auto when the intent's probability reaches the calibrated threshold."""
    predicted, routing = item.outputs["classify"], item.outputs["prioritize"]
    threshold = ctx.resources.threshold
    proposal: dict[str, Any] = {
        "label": predicted["label"],
        "confidence": predicted["confidence"],
        "alternatives": predicted["alternatives"],
        "threshold": threshold,
        "target_precision": ctx.settings.target_precision,
        "priority": routing["priority"],
        "queue": routing["queue"],
        "labels": ctx.resources.head.labels,  # what a reviewer or auditor may pick from
    }
    if predicted["confidence"] >= threshold:
        return Auto(proposal)
    return Review(
        reason=(
            f"confidence {predicted['confidence']:.2f} is below the threshold {threshold:.2f} "
            f"calibrated for {ctx.settings.target_precision:.0%} precision"
        ),
        proposal=proposal,
        queue=routing["queue"],
    )


@triage.action
def route_ticket(
    ctx: StepContext[TriageResources], item: ItemView, resolution: Resolution
) -> Action | None:
    """Route the ticket to its team queue; a rejected proposal routes nothing."""
    if resolution.outcome == "reject" or resolution.label is None:
        return None
    label = resolution.label
    if label == resolution.proposal.get("label"):
        priority, queue = resolution.proposal["priority"], resolution.proposal["queue"]
    else:  # corrected by a reviewer: the new intent decides priority and queue
        assessed = ctx.resources.prioritizer.assess(label, _message(item))
        priority, queue = assessed.priority, assessed.queue
    return Action(
        "route_ticket",
        {
            "intent": label,
            "queue": queue,
            "priority": priority,
            "ticket": {"source": item.source, "id": item.event_id, "subject": item.subject},
        },
    )
