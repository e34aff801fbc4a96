"""Support triage v1: classify intent, set priority, gate on calibrated confidence, route.

Events carry the message in ``data.text`` (required) and optionally ``data.subject``,
``data.customer`` and ``data.channel`` (see ``docs/pipelines/support-triage.md``).

* ``classify``: through the model gateway, the int8 MiniLM encoder and the
  ``support-intent`` classifier (production, or the canary for a sticky share of items)
  give an intent, its probability, the runners-up and that version's threshold.
* ``prioritize``: the intent's base priority and team queue, raised by urgency signals.
* ``retrieve``: passages from the knowledge base (``sluice kb``), from the product area
  of the intent's team where it has any; the index version and passages go to lineage.
* ``screen``: the prompt-injection detector (heuristics, plus the ``prompt-injection``
  classifier when one is trained) reads the message and the passages.
* ``draft_reply``: a first reply grounded in those passages: the best canned answer, or,
  when the models config declares a ``support-reply`` chat route, an LLM's reply that
  must cite them (:mod:`~sluice.pipelines.support_triage.grounded_reply`), rendered
  from the versioned prompt ``support-triage.draft-reply`` and checked for personal data
  the message and passages did not hold. No LLM reads a flagged message or passage.
* gate: auto-handle when the probability reaches the threshold calibrated for the
  configured target precision (``SLUICE_TARGET_PRECISION``), nothing was flagged as a
  possible prompt injection and any drafted reply is grounded; otherwise a reviewer of
  the team's queue decides, told why.
* action: ``route_ticket`` to the team queue with intent and priority, and the grounded
  reply to send, once per item. It is the pipeline's only allowed action
  (``Pipeline(actions=...)``): nothing a message or a model says can cause another.
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
from sluice.errors import (
    BudgetExceededError,
    ConfigError,
    DataPolicyError,
    GuardError,
    ModelCallError,
    ModelNotFoundError,
)
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
from sluice.governance import PromptRegistry, require_no_pii_leak
from sluice.knowledge import KnowledgeBase
from sluice.models import ChatParams, Gateway, InjectionDetector
from sluice.pipelines.support_triage.grounded_reply import (
    Passage,
    canned_reply,
    chat_messages,
    check_reply,
    reply_prompt,
    retrieve_passages,
)
from sluice.pipelines.support_triage.priority import Prioritizer
from sluice.store import Store

__all__ = [
    "MODEL_NAME",
    "SupportMessage",
    "TriageResources",
    "local_llm_models_config",
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
    tenant: str | None = Field(
        default=None,
        max_length=200,
        description="Whose daily model budget pays for paid calls (LLM drafts).",
    )
    channel: Literal["email", "chat", "web", "phone", "social"] | None = Field(
        default=None, description="Where the message came in."
    )


def local_llm_models_config() -> Path:
    """A models config that drafts replies with the local SmolLM2 (``sluice[llm]``)."""
    return Path(
        str(package_files.files("sluice.pipelines.support_triage") / "models-local-llm.toml")
    )


def sample_path(name: str) -> Path:
    """A file of the shipped sample (``train.csv``, ``test.csv``, ``intents.json``)."""
    return Path(str(package_files.files("sluice.pipelines.support_triage") / "sample" / name))


@dataclass
class TriageResources:
    """Loaded once per worker process: gateway, knowledge base, intents' routing rules."""

    gateway: Gateway
    prioritizer: Prioritizer
    knowledge: KnowledgeBase
    injection: InjectionDetector
    prompts: PromptRegistry

    def close(self) -> None:
        """Flush the gateway's call records and release its models."""
        self.gateway.close()


triage = Pipeline(
    "support-triage",
    data_model=SupportMessage,
    queue=QueueSpec(worker_concurrency=2, max_pending_batches=4),
    # 128 messages per durable run: per-run costs (checkpoints, bookkeeping) shrink per
    # item while a run still takes well under a second (bench/triage_banking77.py).
    batch_size=128,
    description="Classify support messages, set priority, route or send to review.",
    actions=("route_ticket",),
)


@triage.resources
def load(settings: Settings, store: Store) -> TriageResources:
    """The model gateway (checked: the classifier it routes to exists) and the intents."""
    gateway = Gateway(settings, store)
    try:
        gateway.check_route(MODEL_NAME)
    except ModelNotFoundError as exc:
        gateway.close()
        if MODEL_NAME in settings.model_pins:
            raise  # the pinned version is missing: say that, not "train one"
        raise ConfigError(
            f"support-triage needs a trained {MODEL_NAME!r} classifier",
            hint="train one with `sluice models train` (uses the shipped sample by default)",
        ) from exc
    intents = json.loads(sample_path("intents.json").read_text())
    return TriageResources(
        gateway=gateway,
        prioritizer=Prioritizer(intents),
        knowledge=KnowledgeBase(store, gateway),
        injection=InjectionDetector.from_registry(gateway),
        prompts=PromptRegistry(store),
    )


def message_text(data: Mapping[str, Any]) -> str:
    """What the classifier reads of an event's data: the subject line and the message."""
    subject = data.get("subject")
    return f"{subject}\n{data['text']}" if subject else str(data["text"])


def _message(item: ItemView) -> str:
    return message_text(item.data)


@triage.step(retry=RetryPolicy(max_attempts=3, initial_backoff_s=0.2), timeout_s=120)
def classify(ctx: StepContext[TriageResources], items: Sequence[ItemView]) -> list[StepOutput]:
    """Intent, confidence and alternatives for every message, through the model gateway.

    The gateway picks the classifier version (production, or the canary for a sticky
    share of items) and reports the threshold calibrated for that version.
    """
    results = ctx.resources.gateway.classify(
        MODEL_NAME, [_message(i) for i in items], keys=[i.id for i in items]
    )
    outputs = []
    for result in results:
        prediction, record = result.prediction, result.record
        outputs.append(
            StepOutput(
                {
                    "label": prediction.label,
                    "confidence": prediction.confidence,
                    "alternatives": [list(a) for a in prediction.alternatives],
                    "threshold": result.threshold,
                    "model_version": record.version,
                    "encoder": result.encoder,
                },
                model_name=record.model,
                model_version=record.version,
                cost=record.cost,
                model_calls=(record.to_dict(),),
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


REPLY_TASK = "support-reply"


def _intent_and_queue(item: ItemView) -> tuple[str, str]:
    return item.outputs["classify"]["label"], item.outputs["prioritize"]["queue"]


@triage.step(retry=RetryPolicy(max_attempts=3, initial_backoff_s=0.2), timeout_s=120)
def retrieve(ctx: StepContext[TriageResources], items: Sequence[ItemView]) -> list[StepOutput]:
    """Passages from the knowledge base for each message, from its team's product area.

    The passages (with their text) and the index version that answered are kept in the
    step's output and lineage. With an empty knowledge base nothing is retrieved and the
    output says how to fill it.
    """
    kb = ctx.resources.knowledge
    outputs = []
    for item in items:
        queue = item.outputs["prioritize"]["queue"]
        found = retrieve_passages(kb, _message(item), queue, tenant=item.data.get("tenant"))
        if found is None:
            outputs.append(
                StepOutput(
                    {
                        "passages": [],
                        "skipped": "the knowledge base is empty: run `sluice kb ingest PATH`",
                    }
                )
            )
            continue
        record = found.result.embedding
        outputs.append(
            StepOutput(
                {
                    "passages": [p.to_dict() for p in found.passages],
                    "index_version": found.result.version.ref,
                    "filtered_by": found.filtered_by,
                },
                cost=record.cost if record is not None else 0.0,
                model_calls=(record.to_dict(),) if record is not None else (),
                retrieval=(found.result.lineage(),),
            )
        )
    return outputs


def _passages(item: ItemView) -> list[Passage]:
    return [Passage.from_dict(p) for p in item.outputs["retrieve"].get("passages") or []]


@triage.step(retry=RetryPolicy(max_attempts=3, initial_backoff_s=0.2), timeout_s=120)
def screen(ctx: StepContext[TriageResources], items: Sequence[ItemView]) -> list[StepOutput]:
    """Prompt-injection screening of each message and of the passages retrieved for it.

    Everything an LLM could read is untrusted: the customer's text and the knowledge
    base's passages alike. A flagged message sends the ticket to review with the
    detector's reasons; a flagged passage is left out of the draft.
    """
    detector = ctx.resources.injection
    texts: list[str] = []
    for item in items:
        texts.append(_message(item))
        texts.extend(p.text for p in _passages(item))
    verdicts = iter(detector.check_many(texts))
    outputs = []
    for item in items:
        message = next(verdicts)
        passages = [(p, next(verdicts)) for p in _passages(item)]
        calls = [c for v in (message, *(v for _, v in passages)) for c in v.calls]
        outputs.append(
            StepOutput(
                {
                    "flagged": message.flagged,
                    "message": message.to_dict(),
                    "flagged_passages": [
                        {"chunk_id": p.chunk_id, "reasons": list(v.reasons)}
                        for p, v in passages
                        if v.flagged
                    ],
                    "mode": detector.mode,
                },
                model_name=message.model_ref.split("@")[0] if message.model_ref else None,
                model_version=message.model_ref.split("@")[1] if message.model_ref else None,
                cost=sum(c.cost for c in calls),
                model_calls=tuple(c.to_dict() for c in calls),
            )
        )
    return outputs


def _screened_passages(item: ItemView) -> list[Passage]:
    """The item's passages without those the screen flagged."""
    flagged = {p["chunk_id"] for p in item.outputs["screen"]["flagged_passages"]}
    return [p for p in _passages(item) if p.chunk_id not in flagged]


@triage.step(retry=RetryPolicy(max_attempts=2, initial_backoff_s=1.0), timeout_s=1800)
def draft_reply(ctx: StepContext[TriageResources], items: Sequence[ItemView]) -> list[StepOutput]:
    """A first reply grounded in the retrieved passages, and whether it may go out unread.

    With a ``support-reply`` chat route, an LLM writes it and must cite the passages
    (``[n]``); a reply that cites none, or a source that was not retrieved, is not
    grounded and the gate sends the ticket to review. Without the route, the best
    matching canned answer among the passages fills the reply template. With no
    passages and no LLM, nothing is drafted. In a replay, LLM drafts are not regenerated
    (decisions are compared on classification; the canned reply is free and is). A draft
    that cannot be had (every endpoint failed, or a budget refused it) is not worth
    failing the ticket for: the output carries the error and the ticket goes on without.
    """
    gateway = ctx.resources.gateway
    use_llm = gateway.has_route(REPLY_TASK)
    outputs = []
    for item in items:
        passages = _screened_passages(item)
        if use_llm and ctx.replaying:
            outputs.append(
                StepOutput({"draft": None, "skipped": "replay: LLM drafts are not regenerated"})
            )
            continue
        if not use_llm:
            outputs.append(StepOutput(_canned(item, passages)))
            continue
        if item.outputs["screen"]["flagged"]:
            outputs.append(
                StepOutput(
                    {
                        "draft": None,
                        "mode": "llm",
                        "skipped": "the message was flagged as a possible prompt injection: "
                        "no model reads it",
                    }
                )
            )
            continue
        outputs.append(_llm_draft(ctx, item, passages))
    return outputs


def _canned(item: ItemView, passages: Sequence[Passage]) -> dict[str, Any]:
    """The best canned answer among the passages (no model reads anything)."""
    if not passages:
        return {"draft": None, "skipped": f"no passages retrieved and no {REPLY_TASK!r} route"}
    intent, _queue = _intent_and_queue(item)
    drafted = canned_reply(passages, intent)
    # An answer from another product area than the intent's team is a guess.
    in_area = item.outputs["retrieve"].get("filtered_by") is not None
    problem = None
    if drafted is None:
        problem = f"no retrieved passage answers {intent!r}"
    elif not in_area:
        problem = "no passage of the intent's product area matched the message"
    return {
        "draft": drafted.text if drafted else None,
        "mode": "canned",
        "citations": list(drafted.cited) if drafted else [],
        "grounded": problem is None,
        "problem": problem,
    }


def _llm_draft(
    ctx: StepContext[TriageResources], item: ItemView, passages: Sequence[Passage]
) -> StepOutput:
    """An LLM's reply from the versioned prompt, checked for citations and leaked data."""
    intent, _queue = _intent_and_queue(item)
    message = _message(item)
    rendered = reply_prompt(intent, message, passages, registry=ctx.resources.prompts)
    try:
        chatted = ctx.resources.gateway.chat(
            REPLY_TASK,
            chat_messages(rendered),
            params=ChatParams(max_tokens=96, temperature=0.0),
            key=item.id,
            tenant=item.data.get("tenant"),
        )
    except (ModelCallError, BudgetExceededError, DataPolicyError) as exc:
        return StepOutput(
            {
                "draft": None,
                "mode": "llm",
                "error": str(exc),
                "error_code": exc.code,
                "prompt": rendered.lineage(),
            }
        )
    text = chatted.reply.text.strip()
    checked = check_reply(text, passages, finish_reason=chatted.reply.finish_reason)
    problem, guard = checked.problem, None
    try:
        require_no_pii_leak(text, [message, *(f"{p.title}\n{p.text}" for p in passages)])
    except GuardError as exc:
        problem, guard = exc.message, exc.reason
    record = chatted.record
    return StepOutput(
        {
            "draft": text,
            "mode": "llm",
            "citations": list(checked.cited),
            "grounded": problem is None,
            "problem": problem,
            "guard": guard,
            "finish_reason": chatted.reply.finish_reason,
            "prompt": rendered.lineage(),
        },
        model_name=record.model,
        model_version=record.version,
        cost=record.cost,
        model_calls=(record.to_dict(),),
    )


@triage.gate
def confidence_gate(ctx: StepContext[TriageResources], item: ItemView) -> Verdict:
    """Auto when the intent is sure, nothing looks like an injection, the draft is grounded.

    Sure enough: the probability reaches the threshold calibrated for the target
    precision. A message the screen flagged, or a drafted reply that cites nothing
    retrieved (or cites what was not, or holds personal data its inputs did not), is
    never acted on unread: the ticket goes to review with the reason.
    """
    predicted, routing = item.outputs["classify"], item.outputs["prioritize"]
    threshold = predicted["threshold"]
    proposal: dict[str, Any] = {
        "label": predicted["label"],
        "confidence": predicted["confidence"],
        "alternatives": predicted["alternatives"],
        "threshold": threshold,
        "target_precision": ctx.settings.target_precision,
        "priority": routing["priority"],
        "queue": routing["queue"],
        # What a reviewer or auditor may pick from: the labels of the version that answered.
        "labels": ctx.resources.gateway.labels(MODEL_NAME, predicted["model_version"]),
    }
    drafted = item.outputs.get("draft_reply") or {}
    if drafted.get("draft"):
        proposal["draft_reply"] = drafted["draft"]
        proposal["reply"] = {
            "text": drafted["draft"],
            "mode": drafted.get("mode"),
            "citations": drafted.get("citations") or [],
            "grounded": bool(drafted.get("grounded")),
        }
    screened = item.outputs.get("screen") or {}
    if screened.get("flagged"):
        reasons = "; ".join(screened["message"]["reasons"])
        reason = f"possible prompt injection in the message: {reasons}"
        proposal["injection"] = screened["message"]
    elif predicted["confidence"] < threshold:
        reason = (
            f"confidence {predicted['confidence']:.2f} is below the threshold {threshold:.2f} "
            f"calibrated for {ctx.settings.target_precision:.0%} precision"
        )
    elif drafted.get("draft") and not drafted.get("grounded"):
        reason = f"the drafted reply is not grounded: {drafted.get('problem')}"
    else:
        return Auto(proposal)
    return Review(reason=reason, proposal=proposal, queue=routing["queue"])


@triage.action
def route_ticket(
    ctx: StepContext[TriageResources], item: ItemView, resolution: Resolution
) -> Action | None:
    """Route the ticket to its team queue, with the first reply to send if it is grounded.

    A rejected proposal routes nothing. The reply goes with the ticket only when it
    cites retrieved passages and the intent it answers stands; after a correction, the
    team writes the reply.
    """
    if resolution.outcome == "reject" or resolution.label is None:
        return None
    label = resolution.label
    proposal = resolution.proposal
    payload: dict[str, Any] = {}
    if label == proposal.get("label"):
        priority, queue = proposal["priority"], proposal["queue"]
        reply = proposal.get("reply")
        if isinstance(reply, Mapping) and reply.get("grounded"):
            payload["reply"] = {"text": reply["text"], "citations": reply["citations"]}
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
            **payload,
        },
    )
