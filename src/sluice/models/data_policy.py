"""Residency-aware routing: what an endpoint may receive, checked on the text itself.

Every endpoint declares the data classes it may receive (``data_classes``) and where it
runs (``location``: ``local``, ``vendor:<name>``, or a region such as ``eu-west-1``); see
:class:`~sluice.models.gateway_config.EndpointSpec` for the defaults (local models may
receive everything; an HTTP endpoint off this host ``public`` and ``internal`` only). A
step declares what it sends (``Gateway.chat(..., sends=("internal",))``).

Before each attempt at an endpoint, the fallbacks' attempts included, :func:`guard_messages`
decides (:func:`guard_texts` does the same for texts to embed, without restoring):

1. a declared class the endpoint may not receive (``pii`` or ``confidential`` to a
   vendor cleared for ``public`` and ``internal``) is refused: the step knows more than
   any scan, and no redaction can be trusted to remove all of it;
2. unless the endpoint may receive ``pii``, the messages are scanned for personal data
   (:func:`sluice.governance.pii.scan`) whatever the step declared, because a step that
   says ``internal`` may still carry a customer's e-mail address. Found data is replaced
   by type tags (``<EMAIL_1>``; the same value the same tag across the messages) when the
   endpoint's ``on_pii`` is ``redact`` (the default), or the call is refused
   (:class:`~sluice.errors.DataPolicyError`) when it is ``refuse``;
3. the tags in the model's reply are put back (:func:`restore_reply`): the answer goes
   back to the same item, which held those values. Text in the input that merely looks
   like a tag (``<EMAIL_1>`` typed by a customer) is quoted first (U+2039 and U+203A in
   place of its angle brackets), so nobody can make the reply reveal a value by typing
   its tag.

The semantic cache answers only conversations that hold no personal data
(:func:`holds_pii`): a near-duplicate question about someone else must not get their
answer.

The decision (:class:`DataDecision`: classes declared and found, entity counts, never
the values, and the action) is kept in the call's record, so the step's lineage says
what the model was allowed to see. A refusal is not an endpoint failure: it is never
retried on a fallback endpoint (the error is not retryable).

Example:
    >>> from sluice.models.gateway_config import EndpointSpec
    >>> spec = EndpointSpec(provider="openai", base_url="https://api.example.com/v1",
    ...                     model="m")
    >>> guarded = guard_messages("vendor-llm", spec,
    ...                          [ChatMessage("user", "Mail me at jo@example.com")])
    >>> guarded.messages[0].content, guarded.decision.action
    ('Mail me at <EMAIL_1>', 'redacted')
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sluice.errors import DataPolicyError
from sluice.governance.pii import Tagger, redact, restore, scan
from sluice.models.calls import ChatMessage, ChatReply
from sluice.models.gateway_config import PII_CLASS, EndpointSpec

__all__ = [
    "DataDecision",
    "GuardedMessages",
    "guard_messages",
    "guard_texts",
    "holds_pii",
    "restore_reply",
]

# Text that looks like one of the tags redaction writes (``<EMAIL_1>``). A customer who
# types one must not get back the value the tag stands for: such text is quoted first.
_TAG_LIKE = re.compile(r"<(\s*[A-Za-z][A-Za-z_]*_\d+\s*)>")

Action = Literal["allowed", "redacted"]


@dataclass(frozen=True)
class DataDecision:
    """What the data policy decided for one call at one endpoint (kept in lineage).

    Attributes:
        endpoint: The endpoint.
        location: Where it runs.
        allowed: The data classes it may receive.
        declared: What the step declared it sends.
        scanned: Whether the text was scanned (not needed when ``pii`` is allowed).
        found: Data classes found in the text (``("pii",)`` or empty).
        entities: Counts of the entity types found (never the values).
        action: ``allowed`` (sent as is) or ``redacted`` (found data replaced by tags).
    """

    endpoint: str
    location: str
    allowed: tuple[str, ...]
    declared: tuple[str, ...]
    scanned: bool
    found: tuple[str, ...] = ()
    entities: Mapping[str, int] = field(default_factory=dict)
    action: Action = "allowed"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the call record."""
        return {
            "endpoint": self.endpoint,
            "location": self.location,
            "allowed": list(self.allowed),
            "declared": list(self.declared),
            "scanned": self.scanned,
            "found": list(self.found),
            "entities": dict(self.entities),
            "action": self.action,
        }


@dataclass(frozen=True)
class GuardedMessages:
    """Messages as they may be sent, the decision, and the tags to put back in the reply."""

    messages: list[ChatMessage]
    decision: DataDecision
    mapping: Mapping[str, str] = field(default_factory=dict)


def guard_messages(
    endpoint: str,
    spec: EndpointSpec,
    messages: Sequence[ChatMessage],
    sends: Sequence[str] = ("internal",),
) -> GuardedMessages:
    """Apply ``spec``'s data policy to ``messages`` before a call (module docs).

    Raises:
        DataPolicyError: A declared class the endpoint may not receive, or personal data
            found for an endpoint whose ``on_pii`` is ``refuse``.
    """
    allowed = spec.allowed_data()
    location = spec.where()
    declared = tuple(dict.fromkeys(sends))
    decision = DataDecision(endpoint, location, allowed, declared, scanned=False)
    barred = [c for c in declared if c not in allowed]
    if barred:
        raise DataPolicyError(
            f"endpoint {endpoint!r} ({location}) may receive {', '.join(allowed)}; the step "
            f"declares it sends {', '.join(barred)}: the call was refused before anything "
            "was sent",
            endpoint=endpoint,
            found=tuple(barred),
            hint="route this task to an endpoint cleared for that data (data_classes in "
            "the models config), or send less",
        )
    if PII_CLASS in allowed:
        return GuardedMessages(list(messages), decision)
    entities: Counter[str] = Counter()
    for message in messages:
        entities.update(f.entity_type for f in scan(message.content).findings)
    if not entities:
        return GuardedMessages(list(messages), replace(decision, scanned=True))
    if spec.on_pii == "refuse":
        what = ", ".join(f"{n} {t}" for t, n in sorted(entities.items()))
        raise DataPolicyError(
            f"endpoint {endpoint!r} ({location}) may not receive personal data, and the "
            f"messages hold {what}: the call was refused before anything was sent",
            endpoint=endpoint,
            found=(PII_CLASS,),
            hint="set on_pii = 'redact' on the endpoint to send type tags instead, or "
            "route the task to an endpoint cleared for pii",
        )
    tagger = Tagger()
    sent: list[ChatMessage] = []
    mapping: dict[str, str] = {}
    for message in messages:
        quoted = _TAG_LIKE.sub(lambda m: f"\u2039{m.group(1)}\u203a", message.content)
        redacted = redact(quoted, "tag", tagger=tagger)
        mapping.update(redacted.mapping or {})
        sent.append(replace(message, content=redacted.text))
    return GuardedMessages(
        sent,
        replace(
            decision, scanned=True, found=(PII_CLASS,), entities=dict(entities), action="redacted"
        ),
        mapping,
    )


def guard_texts(endpoint: str, spec: EndpointSpec, texts: list[str]) -> list[str]:
    """The data policy for texts to embed (each text on its own; module docs).

    An endpoint cleared for ``pii`` (every in-process encoder) gets the texts unscanned.
    Otherwise personal data is replaced by type tags, or the call refused when the
    endpoint's ``on_pii`` is ``refuse``. Embeddings are not restored: tags stay tags.

    Raises:
        DataPolicyError: Personal data found for an endpoint that refuses it.
    """
    if PII_CLASS in spec.allowed_data():
        return texts
    out = []
    for text in texts:
        redacted = redact(_TAG_LIKE.sub(lambda m: f"\u2039{m.group(1)}\u203a", text), "tag")
        if redacted.findings and spec.on_pii == "refuse":
            kinds = ", ".join(sorted({f.entity_type for f in redacted.findings}))
            raise DataPolicyError(
                f"endpoint {endpoint!r} ({spec.where()}) may not receive personal data, and "
                f"a text to embed holds {kinds}: the call was refused before anything was sent",
                endpoint=endpoint,
                found=(PII_CLASS,),
                hint="set on_pii = 'redact' on the endpoint, or embed with a local encoder",
            )
        out.append(redacted.text if redacted.findings else text)
    return out


def holds_pii(messages: Sequence[ChatMessage], decision: DataDecision) -> bool:
    """Whether the conversation holds personal data (scanning it unless already done)."""
    if decision.scanned:
        return bool(decision.found)
    return any(scan(m.content).findings for m in messages)


def restore_reply(reply: ChatReply, mapping: Mapping[str, str]) -> ChatReply:
    """The reply with the tags sent in place of personal data put back."""
    if not mapping:
        return reply
    return replace(reply, text=restore(reply.text, mapping))
