r"""Grounded replies: passages from the knowledge base, and replies that must cite them.

Support triage drafts a first reply from what the knowledge base says, never from a
model's memory alone:

* :func:`retrieve_passages` asks the knowledge base about the message, filtered to the
  predicted intent's product area (a knowledge document's ``product`` is a team queue);
  when nothing in that area matches, it asks again without the filter and says so.
* Without an LLM, :func:`canned_reply` selects the best matching canned answer (the
  best-ranked passage written for the predicted intent, else an FAQ entry: its answer,
  or an article's first paragraph) and fills the reply template with it; it cites that
  passage. It is grounded only if the passage came from the intent's product area.
* With an LLM, :func:`reply_prompt` renders the versioned prompt
  (``prompts/draft_reply.prompt``, or the active version in ``sluice prompts``): the
  passages numbered as sources and the message, each delimited as data, and a request
  for ``[n]`` citations; :func:`check_reply` accepts a reply only if it cites at
  least one source, only sources that were retrieved, in no other bracket form, was not
  cut off, and states no link, e-mail address, phone number or amount that its cited
  sources do not. A reply that fails is sent to review with the reason, never sent on
  its own. These checks catch a reply that is unmoored from its sources; they cannot
  prove that every sentence follows from them (a person's review can).

Example:
    >>> passages = [Passage("c1", "faq.csv", "Refunds", "Q: When?\nA: In 5 days.", 0.9)]
    >>> canned_reply(passages, "refund_status").text.splitlines()[2]
    'In 5 days. [1]'
    >>> check_reply("It takes 5 days [1].", passages).cited
    ('c1',)
    >>> check_reply("It takes 5 days [3].", passages).problem
    'the reply cites source [3], which was not retrieved (1 sources)'
    >>> check_reply("Pay $20 at http://x.example [1].", passages).problem
    'the reply states $20, which none of its cited sources says'
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources as package_files
from pathlib import Path
from typing import Any

from sluice.errors import (
    EncoderMismatchError,
    IndexNotReadyError,
    ModelCallError,
    PromptNotFoundError,
)
from sluice.governance.prompts import (
    PromptFile,
    PromptRegistry,
    RenderedPrompt,
    load_prompt,
    render_prompt,
)
from sluice.knowledge import (
    Filter,
    KnowledgeBase,
    RetrievalMode,
    SearchResult,
    split_faq_text,
)
from sluice.models import ChatMessage

__all__ = [
    "REPLY_PROMPT_NAME",
    "CitationCheck",
    "Drafted",
    "Passage",
    "RetrievedPassages",
    "canned_reply",
    "chat_messages",
    "check_reply",
    "reply_prompt",
    "retrieve_passages",
    "shipped_reply_prompt",
]

#: How many passages a reply may draw on.
PASSAGES = 4
_CITATION = re.compile(r"\[(\d{1,3})\]")
#: Anything a reader could take for a citation: ``[S3]``, ``[7 ]``, ``[source 2]``.
_BRACKETED = re.compile(r"\[[^\[\]\n]{0,24}\]")
#: Facts a reply may only state if a cited source states them too.
_FACTS = re.compile(
    r"(?P<url>(?:https?://|www\.)[^\s<>()\[\]]+[^\s<>()\[\].,;:!?])"
    r"|(?P<email>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)"
    r"|(?P<amount>[$€£]\s?\d[\d,]*(?:\.\d+)?)"
    r"|(?P<phone>\+?\d[\d ().-]{6,}\d)"
)

#: The versioned prompt drafts are rendered from (``sluice prompts``). Until a version of
#: it is active in the prompt registry, the file shipped with this package serves
#: (recorded in lineage as version 0 with its sha256).
REPLY_PROMPT_NAME = "support-triage.draft-reply"


@functools.cache
def shipped_reply_prompt() -> PromptFile:
    """The reply prompt shipped with Sluice (``prompts/draft_reply.prompt``)."""
    folder = package_files.files("sluice.pipelines.support_triage") / "prompts"
    return load_prompt(Path(str(folder / "draft_reply.prompt")))


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk as a reply may use it (``[n]`` in a reply is passage n)."""

    chunk_id: str
    source: str
    title: str
    text: str
    score: float
    #: The intents its document declares it answers (``intents`` metadata); () if none.
    intents: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as it is kept in the step's output."""
        return {
            "chunk_id": self.chunk_id,
            "source": self.source,
            "title": self.title,
            "text": self.text,
            "score": self.score,
            "intents": list(self.intents),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Passage:
        """Back from :meth:`to_dict`."""
        return cls(
            str(data["chunk_id"]),
            str(data["source"]),
            str(data["title"]),
            str(data["text"]),
            float(data["score"]),
            tuple(data.get("intents") or ()),
        )


@dataclass(frozen=True)
class RetrievedPassages:
    """What the knowledge base gave for one message, and how it was asked."""

    passages: tuple[Passage, ...]
    result: SearchResult
    filtered_by: dict[str, str] | None


def retrieve_passages(
    kb: KnowledgeBase, message: str, product: str | None, *, tenant: str | None = None
) -> RetrievedPassages | None:
    """The best passages for ``message``, from ``product``'s area where it has any.

    Hybrid search; if the query cannot be embedded (the encoder changed since the index
    was built, or the encoder failed), keyword search alone, and the result says so
    (``mode``). Returns None when the knowledge base holds nothing yet.
    """
    mode: RetrievalMode = "hybrid"
    while True:
        try:
            result, filtered = None, None
            if product:
                result = kb.search(
                    message,
                    k=PASSAGES,
                    mode=mode,
                    filters=[Filter.eq("product", product)],
                    tenant=tenant,
                )
                filtered = {"product": product} if result.hits else None
            if result is None or not result.hits:
                result = kb.search(message, k=PASSAGES, mode=mode, tenant=tenant)
            break
        except IndexNotReadyError:
            return None
        except (EncoderMismatchError, ModelCallError):
            if mode == "bm25":
                raise
            mode = "bm25"
    passages = tuple(
        Passage(
            h.chunk_id,
            h.citation.source,
            h.citation.title,
            h.text,
            round(h.score, 6),
            _declared_intents(h.metadata.get("intents")),
        )
        for h in result.hits
    )
    return RetrievedPassages(passages, result, filtered)


def _declared_intents(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return (str(value),) if isinstance(value, str) else tuple(str(v) for v in value)


@dataclass(frozen=True)
class CitationCheck:
    """Whether a reply is grounded: it cites retrieved passages, and only those.

    Attributes:
        cited: The chunk ids the reply cites, in order of first citation.
        problem: Why it is not grounded; None when it is.
    """

    cited: tuple[str, ...]
    problem: str | None

    @property
    def grounded(self) -> bool:
        """True when the reply may go out without a person reading it first."""
        return self.problem is None


def check_reply(
    text: str, passages: Sequence[Passage], *, finish_reason: str | None = "stop"
) -> CitationCheck:
    """Whether ``text``, an LLM's reply drafted from ``passages``, is grounded (module docs).

    Args:
        text: The reply.
        passages: The sources it was given, in the order they were numbered.
        finish_reason: Why generation stopped; anything but ``stop`` means cut off.
    """
    if finish_reason not in (None, "stop"):
        return CitationCheck((), f"the reply was cut off (finish reason {finish_reason!r})")
    numbers = [int(n) for n in _CITATION.findall(text)]
    if not numbers:
        return CitationCheck((), "the reply cites no source")
    unknown = sorted({n for n in numbers if not 1 <= n <= len(passages)})
    if unknown:
        listed = ", ".join(f"[{n}]" for n in unknown)
        return CitationCheck(
            (),
            f"the reply cites source {listed}, which was not retrieved ({len(passages)} sources)",
        )
    malformed = [b for b in _BRACKETED.findall(text) if not _CITATION.fullmatch(b)]
    if malformed:
        return CitationCheck((), f"the reply has a citation it cannot be held to: {malformed[0]}")
    cited = tuple(dict.fromkeys(passages[n - 1].chunk_id for n in numbers))
    said = _plain(" ".join(p.text for p in passages if p.chunk_id in cited))
    for found in _FACTS.finditer(text):
        if _plain(found.group()) not in said:
            return CitationCheck(
                (), f"the reply states {found.group()}, which none of its cited sources says"
            )
    return CitationCheck(cited, None)


def _plain(text: str) -> str:
    """Lower case, no spaces, so ``$ 20`` matches ``$20`` and ``WWW.X`` ``www.x``."""
    return "".join(text.lower().split())


def reply_prompt(
    intent: str,
    message: str,
    passages: Sequence[Passage],
    *,
    registry: PromptRegistry | None = None,
) -> RenderedPrompt:
    """The prompt that asks an LLM for a cited reply, rendered from its active version.

    The active version of :data:`REPLY_PROMPT_NAME` in ``registry``; the shipped file
    when none is active (or no registry is given). The message and the passages are
    untrusted: each sits inside its own delimiter, which nothing inside can close.
    ``RenderedPrompt.lineage()`` names the version and hash for the step's output.
    """
    variables = {
        "intent": intent,
        "message": message,
        "sources": [{"title": p.title, "text": p.text} for p in passages],
    }
    if registry is not None:
        try:
            return registry.render(REPLY_PROMPT_NAME, variables)
        except PromptNotFoundError:
            pass  # nothing approved and activated yet: the shipped file
    return render_prompt(shipped_reply_prompt(), variables)


def chat_messages(rendered: RenderedPrompt) -> list[ChatMessage]:
    """A rendered prompt as the gateway's chat messages."""
    return [ChatMessage(m.role, m.content) for m in rendered.messages]


@dataclass(frozen=True)
class Drafted:
    """A drafted reply and the chunk ids it cites."""

    text: str
    cited: tuple[str, ...]


_GREETING = "Hello,"
_CLOSING = (
    "If this does not answer your question, just reply to this message and a colleague "
    "will pick it up."
)


def _answer_of(passage: Passage) -> str:
    faq = split_faq_text(passage.text)
    if faq is not None:
        return faq[1]
    paragraphs = [p.strip() for p in passage.text.split("\n\n") if p.strip()]
    body = [p for p in paragraphs if not p.startswith("#")]
    return " ".join((body or paragraphs or [passage.text])[0].split())


def canned_reply(passages: Sequence[Passage], intent: str) -> Drafted | None:
    """The reply template filled with the best matching canned answer, citing it.

    The canned answer comes from the best-ranked passage written for ``intent`` (its
    document declares it) or, failing that, the best-ranked one that declares no
    intents (an FAQ row): an FAQ entry's answer, or an article's first paragraph. A
    passage written for other intents is never used. None when no passage qualifies.
    """
    chosen = next((p for p in passages if intent in p.intents), None)
    chosen = chosen or next((p for p in passages if not p.intents), None)
    if chosen is None:
        return None
    number = passages.index(chosen) + 1
    text = f"{_GREETING}\n\n{_answer_of(chosen)} [{number}]\n\n{_CLOSING}"
    return Drafted(text, (chosen.chunk_id,))
