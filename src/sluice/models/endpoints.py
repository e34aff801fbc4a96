"""An endpoint at run time: its provider, circuit breaker, limits, and how failures are named.

The gateway holds one :class:`Endpoint` per configured endpoint. The provider is
created on first use (so a configured but unused LLM endpoint costs nothing and needs no
optional extra); every call to it runs under the endpoint's breaker and limits.

Example:
    >>> ep = Endpoint("minilm", EndpointSpec(provider="local-encoder"))
    >>> ep.breaker.state
    'closed'
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sluice.config import Settings
from sluice.errors import (
    BudgetExceededError,
    CircuitOpenError,
    ConfigError,
    DataPolicyError,
    ModelTimeoutError,
)
from sluice.models.call_limits import CallLimits
from sluice.models.calls import ErrorKind
from sluice.models.circuit_breaker import CircuitBreaker
from sluice.models.gateway_config import EndpointSpec
from sluice.models.providers.base import public_url

__all__ = ["CatalogueEntry", "Endpoint", "catalogue_entry", "error_kind", "make_provider"]

T = TypeVar("T")


def error_kind(exc: BaseException) -> ErrorKind:
    """How a failed call is named in metrics and lineage."""
    if isinstance(exc, CircuitOpenError):
        return "circuit_open"
    if isinstance(exc, ModelTimeoutError):
        return "timeout"
    if isinstance(exc, BudgetExceededError | DataPolicyError):
        return "refused_by_policy"
    return "exception"


def make_provider(settings: Settings, name: str, spec: EndpointSpec) -> Any:
    """The provider that runs ``spec`` (heavy imports happen here, on first use).

    Raises:
        ConfigError: ``local-classifier`` endpoints have no provider of their own (the
            gateway applies their head to their encoder endpoint's embeddings).
        MissingDependencyError: An optional extra is missing (``sluice[llm]``).
    """
    if spec.provider == "local-encoder":
        from sluice.models.encoder import load_encoder
        from sluice.models.providers.local_encoder import LocalEncoderProvider

        return LocalEncoderProvider(
            load_encoder(settings), micro_batch=spec.micro_batch, endpoint=name
        )
    if spec.provider == "openai":
        from sluice.config import read_secret
        from sluice.models.providers.openai_http import OpenAICompatibleProvider

        assert spec.base_url is not None
        assert spec.model is not None
        api_key = read_secret(settings, spec.api_key_env) if spec.api_key_env else None
        return OpenAICompatibleProvider(
            name,
            spec.base_url,
            spec.model,
            version=spec.version or "served",
            api_key=api_key,
            timeout_s=spec.timeout_s,
            max_connections=spec.max_concurrency or 8,
        )
    if spec.provider == "llama-cpp":
        from sluice.models.providers.llama_local import LlamaCppProvider

        return LlamaCppProvider(
            spec.model_path, version=spec.version, endpoint=name, timeout_s=spec.timeout_s
        )
    raise ConfigError(f"endpoint {name!r}: a {spec.provider!r} endpoint has no provider")


@dataclass(frozen=True)
class CatalogueEntry:
    """How a configured endpoint's model is recorded in the registry."""

    name: str
    version: str
    kind: str
    endpoint: str
    sha256: str
    card: dict[str, Any] = field(default_factory=dict)


def catalogue_entry(name: str, spec: EndpointSpec, provider: Any) -> CatalogueEntry:
    """The registry entry of the model an endpoint serves (its bytes or its declaration).

    Local models are identified by the sha256 of their file; a model behind an HTTP API,
    whose bytes Sluice cannot see, by the sha256 of its declaration (URL, served name,
    declared version): declare a new ``version`` when the server's model changes.
    """
    card: dict[str, Any] = {"provider": spec.provider, "endpoint_name": name}
    if spec.provider == "local-encoder":
        encoder = provider.encoder
        return CatalogueEntry(
            encoder.name,
            encoder.version,
            "encoder",
            f"local:{encoder.model_path}",
            encoder.model_sha256,
            card,
        )
    if spec.provider == "llama-cpp":
        from sluice.models.providers.gguf import file_sha256

        return CatalogueEntry(
            provider.model,
            provider.version,
            "llm",
            f"local:{provider.path}",
            file_sha256(provider.path),
            card,
        )
    base_url = public_url(spec.base_url or "")
    declared = {"base_url": base_url, "model": spec.model, "version": spec.version}
    digest = hashlib.sha256(json.dumps(declared, sort_keys=True).encode()).hexdigest()
    return CatalogueEntry(
        provider.model,
        provider.version,
        "llm",
        f"{base_url}#{spec.model}",
        digest,
        card | {"sha256_of": "the endpoint's declaration (base_url, model, version)"},
    )


class Endpoint:
    """One endpoint's provider (made on first use), breaker and limits."""

    def __init__(self, name: str, spec: EndpointSpec) -> None:
        self.name = name
        self.spec = spec
        self.breaker = CircuitBreaker(
            name, failures=spec.circuit.failures, cooldown_s=spec.circuit.cooldown_s
        )
        self.limits = CallLimits(
            name, max_concurrency=spec.max_concurrency, rate_per_second=spec.rate_per_second
        )
        self._provider: Any = None
        self._lock = threading.Lock()

    def provider(self, settings: Settings) -> Any:
        """The endpoint's provider, created on first use."""
        with self._lock:
            if self._provider is None:
                self._provider = make_provider(settings, self.name, self.spec)
            return self._provider

    @property
    def started(self) -> Any:
        """The provider if it was created, else None."""
        return self._provider

    def invoke(self, fn: Callable[[float | None], T], timeout_s: float | None) -> T:
        """Call ``fn(remaining)`` under the breaker and the limits.

        ``timeout_s`` is one deadline for the whole attempt: ``fn`` gets what the wait
        for a slot and a rate token left of it, not the whole timeout again.

        Raises:
            CircuitOpenError: The breaker is open (the call is not made).
            ModelTimeoutError: The deadline passed while waiting, or ``fn`` timed out.
        """
        if not self.breaker.allow():
            raise CircuitOpenError(
                f"endpoint {self.name!r} is failing; its circuit is open for another "
                f"{self.breaker.retry_in():.1f} s",
                endpoint=self.name,
                hint="the route's fallbacks are tried; check the endpoint",
            )
        try:
            with self.limits.slot(timeout_s=timeout_s) as remaining:
                result = fn(remaining)
        except BaseException:
            self.breaker.record_failure()
            raise
        self.breaker.record_success()
        return result

    def close(self) -> None:
        """Release the provider (a later call creates it again)."""
        with self._lock:
            provider, self._provider = self._provider, None
        if provider is not None:
            provider.close()
