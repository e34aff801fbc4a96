"""Providers: what runs a model behind a gateway endpoint.

The contract is in :mod:`sluice.models.providers.base`. Optional runtimes load lazily:
``llama_cpp`` only when a :class:`LlamaCppProvider` is made, and ``httpx`` only when
:class:`OpenAICompatibleProvider` is first used (importing the model plane stays fast).

Example:
    >>> from sluice.models.providers import ChatProvider, OpenAICompatibleProvider
    >>> provider = OpenAICompatibleProvider("local", "http://127.0.0.1:8000/v1", "smollm2")
    >>> isinstance(provider, ChatProvider)
    True
    >>> provider.close()
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sluice.models.providers.base import ChatProvider, EmbeddingProvider, Floats
from sluice.models.providers.gguf import file_sha256, packaged_gguf
from sluice.models.providers.llama_local import LlamaCppProvider

if TYPE_CHECKING:
    from sluice.models.providers.openai_http import OpenAICompatibleProvider

__all__ = [
    "ChatProvider",
    "EmbeddingProvider",
    "Floats",
    "LlamaCppProvider",
    "OpenAICompatibleProvider",
    "file_sha256",
    "packaged_gguf",
]


def __getattr__(name: str) -> Any:
    # httpx takes ~0.1 s to import; only processes with an HTTP endpoint pay for it.
    if name == "OpenAICompatibleProvider":
        module = importlib.import_module("sluice.models.providers.openai_http")
        value = module.OpenAICompatibleProvider
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
