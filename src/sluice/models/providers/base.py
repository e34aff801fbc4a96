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

import numpy as np
import numpy.typing as npt

from sluice.models.calls import ChatMessage, ChatParams, ChatReply, Usage

__all__ = ["ChatProvider", "EmbeddingProvider", "Floats"]

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
