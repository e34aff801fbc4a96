"""The gateway's configuration: endpoints, routes, prices and budgets, validated at start-up.

Declared in a TOML file named by ``SLUICE_MODELS_CONFIG`` and merged over the built-in
defaults (the packaged encoder and the ``support-intent`` classifier). Every reference is
checked when the gateway starts, and a mistake is reported with its path in the file::

    [endpoints.smollm]
    provider = "llama-cpp"               # the packaged SmolLM2 GGUF (sluice[llm])

    [endpoints.vllm]
    provider = "openai"                  # any OpenAI-compatible server
    base_url = "http://10.0.0.5:8000/v1"
    model = "Qwen2.5-7B-Instruct"
    api_key_env = "VLLM_API_KEY"         # read from the environment or SLUICE_SECRETS_FILE
    price = { input_per_1k = 0.0005, output_per_1k = 0.0015 }
    max_concurrency = 4
    rate_per_second = 10
    circuit = { failures = 5, cooldown_s = 30 }
    data_classes = ["public", "internal"]  # never personal data: found PII is redacted
    location = "eu-west-1"               # where it runs (recorded with every decision)
    on_pii = "redact"                    # or "refuse"

    [routes.support-reply]
    kind = "chat"
    tiers = ["smollm", "vllm"]           # cheap first
    escalate_below = 0.6                 # next tier when the reply's confidence is lower
    fallbacks = ["vllm"]                 # on error, timeout or an open circuit
    timeout_s = 20

    [budgets.tasks.support-reply]
    daily_soft = 5.0                     # an alert, once a day
    daily_hard = 10.0                    # then paid calls are refused

Example:
    >>> config = load_gateway_config(None)
    >>> config.routes["support-intent"].tiers
    ['support-intent']
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sluice.errors import ConfigError

__all__ = [
    "LOCAL_DATA_CLASSES",
    "PII_CLASS",
    "REMOTE_DATA_CLASSES",
    "BudgetSpec",
    "CacheSpec",
    "CanarySpec",
    "CircuitSpec",
    "EndpointSpec",
    "GatewayConfig",
    "MicroBatchSpec",
    "Price",
    "RouteSpec",
    "load_gateway_config",
]

ProviderName = Literal["local-encoder", "local-classifier", "openai", "llama-cpp"]

#: The data class of personal data (what :mod:`sluice.governance.pii` finds).
PII_CLASS = "pii"
#: What an endpoint on this host may receive unless it declares otherwise.
LOCAL_DATA_CLASSES = ("public", "internal", PII_CLASS)
#: What an endpoint off this host may receive unless it declares otherwise.
REMOTE_DATA_CLASSES = ("public", "internal")
RouteKind = Literal["embed", "classify", "chat"]

#: Which providers can serve which kind of route.
SERVES: dict[RouteKind, frozenset[str]] = {
    "embed": frozenset({"local-encoder", "openai"}),
    "classify": frozenset({"local-classifier"}),
    "chat": frozenset({"openai", "llama-cpp"}),
}


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Price(_Spec):
    """What a call costs, in the configuration's currency.

    Attributes:
        input_per_1k: Per 1,000 input tokens (LLMs).
        output_per_1k: Per 1,000 output tokens (LLMs).
        per_call: Per call (per input of a batch).
        per_cpu_second: Per second of the call's wall time (local models).
    """

    input_per_1k: float = Field(default=0.0, ge=0)
    output_per_1k: float = Field(default=0.0, ge=0)
    per_call: float = Field(default=0.0, ge=0)
    per_cpu_second: float = Field(default=0.0, ge=0)

    @property
    def is_paid(self) -> bool:
        """True when any price is set: such calls count against budgets."""
        return any((self.input_per_1k, self.output_per_1k, self.per_call, self.per_cpu_second))

    def cost(self, *, input_tokens: int, output_tokens: int, seconds: float, calls: int) -> float:
        """The cost of a call with these figures."""
        return (
            input_tokens / 1000 * self.input_per_1k
            + output_tokens / 1000 * self.output_per_1k
            + calls * self.per_call
            + seconds * self.per_cpu_second
        )


class CircuitSpec(_Spec):
    """Circuit breaker: open after ``failures`` consecutive failures, for ``cooldown_s``."""

    failures: int = Field(default=5, ge=1)
    cooldown_s: float = Field(default=30.0, gt=0)


class MicroBatchSpec(_Spec):
    """Dynamic micro-batching of concurrent calls to a local encoder.

    A request goes at once while the encoder is idle; requests that arrive while it is
    busy are sent together when it is free (see :mod:`sluice.models.micro_batching`).

    Attributes:
        max_batch: Most texts dispatched together.
        max_wait_ms: Kept so that older configurations load: 0 still turns batching
            off; any other value is ignored, since no request waits for a window.
    """

    max_batch: int = Field(default=32, ge=1, le=4096)
    max_wait_ms: float = Field(default=2.0, ge=0, le=1000)


class EndpointSpec(_Spec):
    """One model endpoint.

    Attributes:
        provider: ``local-encoder`` (the packaged int8 MiniLM), ``local-classifier`` (a
            classifier head from the registry over an encoder endpoint), ``openai`` (an
            OpenAI-compatible HTTP server: vLLM, llama.cpp, Ollama, hosted) or
            ``llama-cpp`` (a GGUF file in-process; ``sluice[llm]``).
        model: Registry name (``local-classifier``) or the served model's name
            (``openai``).
        version: Declared version of an HTTP endpoint's model (recorded in lineage).
        base_url: ``openai``: the API's base URL, ending in ``/v1``.
        api_key_env: ``openai``: environment variable (or secrets-file key) of the key.
        encoder: ``local-classifier``: the encoder endpoint its head reads.
        model_path: ``llama-cpp``: the GGUF file (default: the packaged SmolLM2).
        timeout_s: Default per-call timeout, in seconds.
        max_concurrency: Calls in flight at once, per process (None: no limit).
        rate_per_second: Calls started per second, per process (None: no limit).
        circuit: Circuit-breaker settings.
        price: Price table entry.
        micro_batch: ``local-encoder``: micro-batching (None turns it off).
        data_classes: What it may receive (:mod:`sluice.models.data_policy`). None: all
            of :data:`LOCAL_DATA_CLASSES` for in-process models (``local-encoder``,
            ``local-classifier``, ``llama-cpp``) and for an ``openai`` endpoint declared
            ``location = "local"``; :data:`REMOTE_DATA_CLASSES` for any other ``openai``
            endpoint, even on loopback (a proxy or tunnel there may forward anywhere).
        location: Where it runs: ``local``, ``vendor:<name>`` or a region. None:
            ``local`` for in-process models, ``vendor:<host name>`` for HTTP.
        on_pii: Personal data found in text for an endpoint not cleared for ``pii``:
            ``redact`` (type tags, put back in the reply) or ``refuse`` the call.
    """

    provider: ProviderName
    model: str | None = None
    version: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    encoder: str = "minilm"
    model_path: Path | None = None
    timeout_s: float = Field(default=30.0, gt=0)
    max_concurrency: int | None = Field(default=None, ge=1)
    rate_per_second: float | None = Field(default=None, gt=0)
    circuit: CircuitSpec = Field(default_factory=CircuitSpec)
    price: Price = Field(default_factory=Price)
    micro_batch: MicroBatchSpec | None = Field(default_factory=MicroBatchSpec)
    data_classes: list[str] | None = Field(default=None, min_length=1)
    location: str | None = Field(default=None, min_length=1)
    on_pii: Literal["redact", "refuse"] = "redact"

    def on_this_host(self) -> bool:
        """Whether the model runs in this process, or is declared ``location = "local"``."""
        return self.provider != "openai" or self.location == "local"

    def allowed_data(self) -> tuple[str, ...]:
        """The data classes it may receive (declared, or the default for where it runs)."""
        if self.data_classes is not None:
            return tuple(dict.fromkeys(self.data_classes))
        return LOCAL_DATA_CLASSES if self.on_this_host() else REMOTE_DATA_CLASSES

    def where(self) -> str:
        """Where it runs (declared, or ``local`` / ``vendor:<host name>``)."""
        if self.location is not None:
            return self.location
        if self.on_this_host():
            return "local"
        return f"vendor:{urlsplit(self.base_url or '').hostname}"

    @model_validator(mode="after")
    def _provider_fields(self) -> EndpointSpec:
        if self.provider == "openai" and not (self.base_url and self.model):
            raise ValueError("an 'openai' endpoint needs base_url and model")
        if self.provider == "local-classifier" and not self.model:
            raise ValueError("a 'local-classifier' endpoint needs model (its registry name)")
        return self


class CanarySpec(_Spec):
    """A canary split, sticky by item id.

    Attributes:
        percent: Share of keys (items) sent to the canary, 0-100.
        endpoint: The canary endpoint. None: the registry's ``canary`` version of the
            first tier's model (``local-classifier``).
    """

    percent: float = Field(default=10.0, ge=0, le=100)
    endpoint: str | None = None


class CacheSpec(_Spec):
    """Caching of a route's results.

    Attributes:
        exact: Exact-match cache (chat replies at temperature 0; embeddings).
        ttl_s: Time to live of a cached result, in seconds.
        semantic: Semantic cache of chat replies (off by default).
        semantic_threshold: Cosine similarity a cached question must reach to answer.
    """

    exact: bool = True
    ttl_s: float = Field(default=7 * 24 * 3600.0, gt=0)
    semantic: bool = False
    semantic_threshold: float = Field(default=0.97, gt=0, le=1)


class RouteSpec(_Spec):
    """How a task's calls are served.

    Attributes:
        kind: ``embed``, ``classify`` or ``chat``.
        tiers: Endpoints, cheapest first.
        escalate_below: Confidence under which the next tier is asked. None: for
            ``classify``, each tier's own calibrated gate threshold; for ``chat``, never.
        fallbacks: Endpoints tried in order when a tier's endpoint fails.
        canary: Canary split (None: no canary traffic).
        timeout_s: Per-call timeout (None: each endpoint's own).
        cache: Caching.
    """

    kind: RouteKind
    tiers: list[str] = Field(min_length=1)
    escalate_below: float | None = Field(default=None, ge=0, le=1)
    fallbacks: list[str] = Field(default_factory=list)
    canary: CanarySpec | None = None
    timeout_s: float | None = Field(default=None, gt=0)
    cache: CacheSpec = Field(default_factory=CacheSpec)


class BudgetSpec(_Spec):
    """A daily budget. Soft: an alert once a day. Hard: paid calls are refused."""

    daily_soft: float | None = Field(default=None, ge=0)
    daily_hard: float | None = Field(default=None, ge=0)


class Budgets(_Spec):
    """Budgets per task and per tenant (``default`` applies to tenants not listed)."""

    tasks: dict[str, BudgetSpec] = Field(default_factory=dict)
    tenants: dict[str, BudgetSpec] = Field(default_factory=dict)


class CacheLimits(_Spec):
    """Bounds of the persistent cache."""

    max_entries: int = Field(default=200_000, ge=1)
    memory_entries: int = Field(default=20_000, ge=0)


class GatewayConfig(_Spec):
    """Endpoints, routes, budgets and cache bounds (module docs)."""

    currency: str = "USD"
    endpoints: dict[str, EndpointSpec] = Field(default_factory=dict)
    routes: dict[str, RouteSpec] = Field(default_factory=dict)
    budgets: Budgets = Field(default_factory=Budgets)
    cache: CacheLimits = Field(default_factory=CacheLimits)

    def semantic_encoder(self) -> str:
        """The endpoint that embeds questions for the semantic cache: the first local encoder.

        Raises:
            ConfigError: No local-encoder endpoint is declared.
        """
        for name, spec in self.endpoints.items():
            if spec.provider == "local-encoder":
                return name
        raise ConfigError(
            "the semantic cache needs a local-encoder endpoint to embed questions",
            hint='declare one, e.g. [endpoints.minilm] provider = "local-encoder"',
        )

    @model_validator(mode="after")
    def _references(self) -> GatewayConfig:
        problems: list[str] = []
        for name, spec in self.endpoints.items():
            if spec.provider == "local-classifier":
                enc = self.endpoints.get(spec.encoder)
                if enc is None or enc.provider != "local-encoder":
                    problems.append(
                        f"endpoints.{name}.encoder: {spec.encoder!r} is not a local-encoder "
                        "endpoint"
                    )
        for name, route in self.routes.items():
            allowed = SERVES[route.kind]
            named = [("tiers", e) for e in route.tiers] + [
                ("fallbacks", e) for e in route.fallbacks
            ]
            if route.canary and route.canary.endpoint:
                named.append(("canary.endpoint", route.canary.endpoint))
            for where, endpoint in named:
                found = self.endpoints.get(endpoint)
                if found is None:
                    problems.append(f"routes.{name}.{where}: unknown endpoint {endpoint!r}")
                elif found.provider not in allowed:
                    problems.append(
                        f"routes.{name}.{where}: endpoint {endpoint!r} ({found.provider}) "
                        f"cannot serve a {route.kind!r} route"
                    )
        for task in self.budgets.tasks:
            if task not in self.routes:
                problems.append(f"budgets.tasks.{task}: no route of that name")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _defaults() -> dict[str, Any]:
    return {
        "endpoints": {
            "minilm": {"provider": "local-encoder"},
            "support-intent": {"provider": "local-classifier", "model": "support-intent"},
        },
        "routes": {
            "embed": {"kind": "embed", "tiers": ["minilm"]},
            # A canary version, once promoted to the canary stage, takes 10% of items.
            "support-intent": {
                "kind": "classify",
                "tiers": ["support-intent"],
                "canary": {"percent": 10.0},
            },
        },
    }


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if key in ("endpoints", "routes") and isinstance(value, dict):
            out[key] = {**out.get(key, {}), **value}  # a named entry is replaced whole
        else:
            out[key] = value
    return out


def load_gateway_config(
    path: Path | None, *, overrides: dict[str, Any] | None = None
) -> GatewayConfig:
    """The defaults, merged with the TOML file at ``path`` and then ``overrides``.

    Raises:
        ConfigError: The file is missing or not TOML, or a value or reference is wrong
            (the message names each problem by its path in the file).
    """
    raw = _defaults()
    if path is not None:
        try:
            raw = _merge(raw, tomllib.loads(Path(path).read_text()))
        except FileNotFoundError:
            raise ConfigError(
                f"models config {path} does not exist", hint="check SLUICE_MODELS_CONFIG"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"models config {path} is not valid TOML: {exc}") from None
    if overrides:
        raw = _merge(raw, overrides)
    try:
        return GatewayConfig.model_validate(raw)
    except ValidationError as exc:
        where = str(path) if path else "the models config"
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{loc}: {msg}" if loc else msg)
        raise ConfigError(
            f"{where} is invalid: {'; '.join(problems)}",
            hint="see docs/models.md, 'Configuring the gateway'",
        ) from None
