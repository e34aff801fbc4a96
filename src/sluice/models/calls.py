"""What crosses the model gateway's boundary: requests, replies and call records.

A :class:`CallRecord` is the metering record of one input's trip through the gateway:
which endpoint and model version answered, how the route decided (tier, canary,
fallback), what it cost, whether the cache answered, and how it failed if it did. Steps
attach the records to their outputs, so they land in the item's lineage.

Example:
    >>> ChatMessage("user", "hello").to_dict()
    {'role': 'user', 'content': 'hello'}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from sluice.models.classifier import Prediction

__all__ = [
    "CacheOutcome",
    "CallKind",
    "CallRecord",
    "ChatMessage",
    "ChatParams",
    "ChatReply",
    "Chatted",
    "Classified",
    "Embedded",
    "ErrorKind",
    "Usage",
]

CallKind = Literal["embed", "classify", "chat"]
CacheOutcome = Literal["miss", "exact", "semantic", "off"]
#: How a call failed, in the words of metrics and lineage.
ErrorKind = Literal["exception", "timeout", "refused_by_policy", "low_confidence", "circuit_open"]


@dataclass(frozen=True)
class ChatMessage:
    """One chat message (OpenAI's roles)."""

    role: Literal["system", "user", "assistant"]
    content: str

    def to_dict(self) -> dict[str, str]:
        """The OpenAI wire form."""
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class ChatParams:
    """Generation parameters. Part of the cache key: other parameters, other answers.

    Attributes:
        max_tokens: Most tokens to generate.
        temperature: Sampling temperature; 0 is greedy (and what caching assumes).
        seed: Sampling seed, for providers that take one.
        stop: Stop sequences.
    """

    max_tokens: int = 256
    temperature: float = 0.0
    seed: int | None = 0
    stop: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for cache keys and lineage)."""
        return {**asdict(self), "stop": list(self.stop)}


@dataclass(frozen=True)
class Usage:
    """Tokens a call consumed (0 when the provider does not count them)."""

    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class ChatReply:
    """A chat completion.

    Attributes:
        text: The reply.
        usage: Tokens in and out.
        finish_reason: ``stop``, ``length`` ... as the provider said.
        confidence: Mean token probability of the reply, when the provider returns
            log-probabilities; None otherwise. Tier escalation reads it.
    """

    text: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    confidence: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (cached as is)."""
        return {
            "text": self.text,
            "usage": asdict(self.usage),
            "finish_reason": self.finish_reason,
            "confidence": self.confidence,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChatReply:
        """Inverse of :meth:`to_dict`."""
        return cls(
            text=data["text"],
            usage=Usage(**data.get("usage", {})),
            finish_reason=data.get("finish_reason"),
            confidence=data.get("confidence"),
        )


@dataclass(frozen=True)
class CallRecord:
    """The metering record of one input's call through the gateway.

    Attributes:
        call_id: Id of the gateway call (one call may serve a batch of inputs).
        task: The task (route) the call was made for.
        kind: ``embed``, ``classify`` or ``chat``.
        endpoint: The endpoint that answered (or failed last).
        model: Model name at that endpoint.
        version: Model version (registry version, or the endpoint's declared version).
        latency_ms: Wall time of the call, per input share for batched calls.
        input_tokens: Tokens sent (LLMs).
        output_tokens: Tokens received (LLMs).
        cost: What this input's share of the call cost, in the price table's currency,
            including the answers of lower tiers it was escalated from.
        cache: ``miss``, ``exact`` or ``semantic`` hit, or ``off``.
        tier: 0-based tier of the route that gave the answer.
        canary: True when the canary version answered.
        fallbacks: Endpoints that failed (error, timeout, open circuit) before this one.
        escalated_from: Endpoints whose answers were below the confidence threshold.
        error_kind: Set when the call failed: ``exception``, ``timeout``,
            ``refused_by_policy``, ``low_confidence`` or ``circuit_open``.
        error: The error message, for a failed call.
        data_policy: What the endpoint's data policy decided (chat calls:
            :class:`~sluice.models.data_policy.DataDecision` as a dict).
    """

    call_id: str
    task: str
    kind: CallKind
    endpoint: str
    model: str
    version: str
    latency_ms: float
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    cache: CacheOutcome = "miss"
    tier: int = 0
    canary: bool = False
    fallbacks: tuple[str, ...] = ()
    escalated_from: tuple[str, ...] = ()
    error_kind: ErrorKind | None = None
    error: str | None = None
    data_policy: dict[str, Any] | None = None

    @property
    def model_ref(self) -> str:
        """``name@version``."""
        return f"{self.model}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored in a step run's lineage."""
        out = asdict(self)
        out["fallbacks"] = list(self.fallbacks)
        out["escalated_from"] = list(self.escalated_from)
        out["latency_ms"] = round(self.latency_ms, 3)
        out["cost"] = round(self.cost, 8)
        return out


@dataclass(frozen=True)
class Classified:
    """One input's classification.

    Attributes:
        prediction: Label, confidence and runners-up.
        threshold: The answering version's calibrated gate threshold.
        labels: Every label that version knows (what a reviewer may pick from).
        record: The call record for the lineage.
        encoder: The encoder the head read, as ``name@version``.
    """

    prediction: Prediction
    threshold: float
    labels: tuple[str, ...]
    record: CallRecord
    encoder: str = ""


@dataclass(frozen=True)
class Embedded:
    """Embeddings (row ``i`` for input ``i``) and one call record per input."""

    vectors: npt.NDArray[np.float32]
    records: list[CallRecord]


@dataclass(frozen=True)
class Chatted:
    """A chat reply and its call record."""

    reply: ChatReply
    record: CallRecord
