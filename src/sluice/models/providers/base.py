"""The provider contract: what the gateway needs from anything that runs a model.

A *provider* runs one model at one endpoint: the packaged ONNX encoder, a classifier
head from the registry, an LLM over the OpenAI-compatible HTTP API, a local GGUF file.
The gateway owns everything around the call (routing, limits, caching, budgets,
metering); a provider only answers. Three capabilities, each a small protocol:

* :class:`EmbeddingProvider` - texts to L2-normalized vectors;
* :class:`ChatProvider` - chat messages to a reply, with token usage;
* classifier heads are not providers of their own: a head is loaded by version from the
  registry and applied to the embeddings of its encoder endpoint (see ``gateway``).

Providers raise :class:`~sluice.errors.ModelCallError` for a failed call and
:class:`~sluice.errors.ModelTimeoutError` when ``timeout_s`` passed; anything else is
treated as an exception of the endpoint too. A provider must be safe to call from
several threads at once, and must never log or repr an API key.

Example:
    >>> class Echo:
    ...     model = "echo"
    ...     version = "1"
    ...     def chat(self, messages, params, *, timeout_s=None):
    ...         return ChatReply(messages[-1].content)
    ...     def close(self):
    ...         pass
    >>> isinstance(Echo(), ChatProvider)
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt

from sluice.models.calls import ChatMessage, ChatParams, ChatReply, Usage

__all__ = ["ChatProvider", "EmbeddingProvider", "Floats", "public_url"]

Floats = npt.NDArray[np.float32]


@runtime_checkable
class EmbeddingProvider(Protocol):
    """Turns texts into vectors; row ``i`` belongs to ``texts[i]``.

    Attributes:
        model: Model name, as recorded in lineage.
        version: Model version.
    """

    model: str
    version: str

    def embed(
        self, texts: Sequence[str], *, timeout_s: float | None = None
    ) -> tuple[Floats, Usage]:
        """Embeddings of ``texts`` and the tokens they consumed."""
        ...

    def close(self) -> None:
        """Release processes, sessions and connections."""
        ...


@runtime_checkable
class ChatProvider(Protocol):
    """Answers chat messages.

    Attributes:
        model: Model name, as recorded in lineage.
        version: Model version.
    """

    model: str
    version: str

    def chat(
        self,
        messages: Sequence[ChatMessage],
        params: ChatParams,
        *,
        timeout_s: float | None = None,
    ) -> ChatReply:
        """One completion of ``messages``."""
        ...

    def close(self) -> None:
        """Release processes, sessions and connections."""
        ...


def public_url(url: str) -> str:
    """``url`` without what must never reach the registry or the audit log.

    A base URL may carry credentials (``https://user:key@host``) or a key in its query
    (``?api-key=...``); both are dropped, as is the fragment.

    Example:
        >>> public_url("https://bob:s3cret@llm.example.com:8443/v1?api-key=k#x")
        'https://llm.example.com:8443/v1'
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal goes back in brackets
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
