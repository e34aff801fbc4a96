"""One typed settings object for the whole runtime.

Every key is read from the environment with the ``SLUICE_`` prefix (``SLUICE_HOME``,
``SLUICE_DATABASE_URL`` ...) or passed to :class:`Settings` directly (tests do that).
Nothing else in Sluice reads ``os.environ``.

Example:
    >>> s = Settings(home=Path("/tmp/sluice-doc"))
    >>> s.resolved_database_url().startswith("sqlite:///")
    True
"""

from __future__ import annotations

import os
import socket
import tomllib
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sluice.errors import ConfigError

__all__ = ["Settings", "get_settings", "read_secret"]


class Settings(BaseSettings):
    """Runtime configuration. Each field documents its default and unit."""

    model_config = SettingsConfigDict(env_prefix="SLUICE_", extra="ignore", frozen=True)

    home: Path = Field(
        default=Path(".sluice"),
        description="Directory for local state: the SQLite store and the built models.",
    )
    database_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the store. Default: a SQLite file `sluice.db` under `home`. "
            "A `postgresql://` URL switches the store and the durable engine to PostgreSQL."
        ),
    )
    data_dir: Path = Field(
        default=Path("../shared/data"),
        description="Folder with the public benchmark datasets read by `bench/` (never copied).",
    )
    executor_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-0",
        description=(
            "Stable name of this worker. Recovery of interrupted runs happens for the "
            "worker's own executor id, so restart a crashed worker with the same id."
        ),
    )
    app_version: str = Field(
        default="sluice-3",
        description=(
            "Pinned application version given to the durable engine. Runs are only "
            "recovered by workers with the same version; change it deliberately on "
            "incompatible pipeline changes."
        ),
    )
    max_event_bytes: int = Field(
        default=256 * 1024,
        gt=0,
        description="Largest accepted CloudEvent, in bytes of its JSON encoding.",
    )
    max_queued_items: int = Field(
        default=200_000,
        gt=0,
        description=(
            "Backpressure: intake refuses new items for a pipeline while this many of its "
            "items are still queued (the refusal is retryable)."
        ),
    )
    batch_size: int = Field(
        default=64, gt=0, le=4096, description="Items per durable batch run (one workflow)."
    )
    poll_interval_seconds: float = Field(
        default=0.25,
        gt=0,
        description=(
            "How often, in seconds, a worker looks for new items, and the engine checks for "
            "review decisions (on SQLite) and review runs to start. Batch runs are picked "
            "up every 20 ms at most."
        ),
    )
    review_sla_seconds: float = Field(
        default=24 * 3600.0,
        gt=0,
        description="Default time a review task may wait before it escalates, in seconds.",
    )
    review_escalation_seconds: float = Field(
        default=48 * 3600.0,
        gt=0,
        description="Time an escalated task may wait before it is marked expired, in seconds.",
    )
    audit_sample_rate: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description=(
            "Share of auto-handled items sampled into the audit queue for a blind second "
            "look, per intent (systematic: the first of each intent, then every 1/rate-th). "
            "0 turns sampling off."
        ),
    )
    reviewer_hourly_rate: float = Field(
        default=40.0,
        ge=0,
        description="What an hour of a reviewer's time costs (the currency of all costs).",
    )
    target_precision: float = Field(
        default=0.99,
        gt=0.5,
        lt=1.0,
        description="Precision the confidence gate must reach on auto-handled items.",
    )
    promotion_precision_tolerance: float = Field(
        default=0.0,
        ge=0,
        lt=1.0,
        description=(
            "How much lower (as a fraction, 0.005 = half a point) a candidate's precision "
            "may be than production's, at production's automation rate on the held-out "
            "set, and still pass the promotion gate. 0: not worse at all."
        ),
    )
    model_cache: Path | None = Field(
        default=None,
        description="Cache of built model artifacts. Default: `models/` under `home`.",
    )
    pipeline_modules: list[str] = Field(
        default_factory=list,
        description=(
            "Extra Python modules that declare pipelines, imported by every process "
            "(JSON list in the environment, e.g. '[\"acme.pipelines\"]'). Packages can "
            "also declare them with the `sluice.pipelines` entry-point group."
        ),
    )
    model_pins: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Model versions to use instead of the production ones, by model name (JSON "
            'object in the environment, e.g. \'{"support-intent": "3"}\'). '
            "`sluice replay --model` sets it for a replay."
        ),
    )
    models_config: Path | None = Field(
        default=None,
        description=(
            "TOML file declaring the model gateway's endpoints, routes, prices and budgets, "
            "merged over the built-in defaults (see docs/models.md). Validated at start-up."
        ),
    )
    model_refresh_seconds: float = Field(
        default=1.0,
        ge=0,
        description=(
            "How often, in seconds, a gateway checks the registry for stage changes "
            "(promotion, rollback) made by other processes; 0 checks on every call."
        ),
    )
    encoder_processes: int | None = Field(
        default=None,
        ge=0,
        description=(
            "Processes the sentence encoder runs in, one thread each; 0 runs it in the "
            "calling thread. Default: the number of CPU cores, at most 4."
        ),
    )
    otlp_endpoint: str | None = Field(
        default=None,
        description=(
            "OTLP/HTTP traces endpoint (e.g. `http://127.0.0.1:4318/v1/traces`). Set, the "
            "worker and the API record one OpenTelemetry trace per item and export it "
            "there; unset (the default), tracing is off and costs nothing."
        ),
    )
    audit_key_path: Path | None = Field(
        default=None,
        description=(
            "Ed25519 private key (PEM) that signs audit checkpoints; made on first use. "
            "Default: `keys/audit-ed25519.pem` under `home`."
        ),
    )
    audit_public_keys: list[Path] = Field(
        default_factory=list,
        description=(
            "PEM public keys of other hosts' checkpoints, used by the API's audit verify "
            "(JSON list in the environment)."
        ),
    )
    audit_checkpoint_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How often a worker seals the audit chain with a signed checkpoint (s).",
    )
    secrets_file: Path | None = Field(
        default=None,
        description=(
            "File of secrets (API keys of model endpoints), read when the environment "
            "variable named by an endpoint's `api_key_env` is not set: a TOML file "
            '(`.toml`, `VLLM_API_KEY = "..."`) or `KEY=value` lines as in a `.env` file. '
            "Keep it readable by the service's user only. Default: none."
        ),
    )
    max_request_bytes: int = Field(
        default=10 * 1024 * 1024,
        gt=0,
        description="Largest HTTP request body the API accepts, in bytes (413 above it).",
    )
    local_actor: str = Field(
        default="",
        description=(
            "Who the CLI acts as on this machine (a local admin; audited as `cli:<name>`). "
            "Default: the operating-system user name."
        ),
    )
    pii_vault_key: str | None = Field(
        default=None,
        repr=False,
        description=(
            "Fernet key(s) sealing reversible PII pseudonyms in the store (url-safe base64 "
            "of 32 bytes; several comma-separated: the first seals, any opens, to rotate). "
            "Default: none; a SQLite store then makes a local key `keys/pii-vault.key` "
            "under `home` on first use, a PostgreSQL store refuses to pseudonymize."
        ),
    )

    # -- drift monitors and alerts (docs/observability.md, "Drift and alerts") ---------
    drift_step: str = Field(
        default="classify",
        description=(
            "The pipeline step whose output (`label`, `confidence`, `threshold`, "
            "`model_version`) the drift monitors read."
        ),
    )
    drift_window_items: int = Field(
        default=200,
        ge=10,
        description="Items in the window the monitors evaluate (the latest N of a pipeline).",
    )
    drift_min_items: int = Field(
        default=50,
        ge=1,
        description="Fewest items a window needs before the drift monitors are evaluated.",
    )
    drift_alpha: float = Field(
        default=0.001,
        gt=0,
        lt=0.5,
        description=(
            "False-alarm probability per window and monitor when nothing changed: a "
            "distribution monitor fires only when its PSI is over the (1 - alpha) quantile "
            "of same-sized windows drawn from the reference, a rate monitor only when a "
            "one-sided binomial test against the reference rate gives p < alpha."
        ),
    )
    drift_length_psi: float = Field(
        default=0.1,
        ge=0,
        description="PSI floor of the input-length monitor (text-length buckets, in words).",
    )
    drift_embedding_psi: float = Field(
        default=0.2,
        ge=0,
        description="PSI floor of the input-embedding monitor (k-means clusters).",
    )
    drift_prediction_psi: float = Field(
        default=0.2,
        ge=0,
        description="PSI floor of the prediction monitor (predicted-class distribution).",
    )
    drift_confidence_increase: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description=(
            "Rise (absolute share, 0.1 = ten points) of items under the auto threshold "
            "over the reference's share before the confidence monitor fires."
        ),
    )
    drift_fallback_increase: float = Field(
        default=0.05,
        gt=0,
        le=1,
        description="Rise (absolute share) of answers that needed a fallback endpoint.",
    )
    drift_escalation_increase: float = Field(
        default=0.05,
        gt=0,
        le=1,
        description="Rise (absolute share) of answers escalated to a higher tier.",
    )
    drift_precision_min_audited: int = Field(
        default=30,
        ge=1,
        description=(
            "Fewest graded sampling audits before the precision monitor is evaluated; it "
            "fires when the audited precision's 95% upper bound is under the target."
        ),
    )
    drift_length_buckets: int = Field(
        default=10,
        ge=2,
        description="Quantile buckets of the text length in a drift reference.",
    )
    drift_embedding_clusters: int = Field(
        default=16,
        ge=2,
        description="k of the k-means fitted on the training embeddings in a drift reference.",
    )
    alert_webhook_url: str | None = Field(
        default=None,
        description=(
            "Where alerts are POSTed as JSON (drift monitors, soft budget limits). "
            "Default: none; alerts are then stored and audited only."
        ),
    )
    alert_webhook_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Timeout of one webhook POST, in seconds.",
    )
    alert_webhook_retries: int = Field(
        default=3,
        ge=0,
        description=(
            "Further attempts after a failed webhook POST (backoff 0.5 s, doubling); "
            "then the alert is marked `failed`."
        ),
    )
    alert_cooldown_seconds: float = Field(
        default=3600.0,
        ge=0,
        description=(
            "A repeat of an alert (same kind, name and subject) within this time, in "
            "seconds, is not raised again. 0 raises every time."
        ),
    )

    @field_validator("database_url")
    @classmethod
    def _empty_url_is_default(cls, value: str | None) -> str | None:
        return value or None

    def resolved_database_url(self) -> str:
        """The store URL, with the SQLite default filled in."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'sluice.db').resolve()}"

    @property
    def is_postgres(self) -> bool:
        """True when the store is PostgreSQL."""
        return self.resolved_database_url().startswith(("postgresql", "postgres://"))

    @property
    def audit_key(self) -> Path:
        """The audit signing key's path, with the default filled in."""
        return self.audit_key_path or self.home / "keys" / "audit-ed25519.pem"

    @property
    def models_dir(self) -> Path:
        """Where built model artifacts (e.g. the quantized encoder) are cached."""
        return self.model_cache or self.home / "models"


def get_settings() -> Settings:
    """Settings from the environment (the CLI's entry point; library code takes Settings)."""
    return Settings()


def read_secret(settings: Settings, env_name: str, secrets_file: Path | None = None) -> str:
    """A secret such as an API key: from the environment, else from the secrets file.

    The environment variable ``env_name`` wins when it is set and not empty. Otherwise
    the key ``env_name`` is read from ``secrets_file`` (default:
    ``settings.secrets_file``, i.e. ``SLUICE_SECRETS_FILE``), which is either a TOML file
    (name ending in ``.toml``; top-level string keys) or ``KEY=value`` lines as in a
    ``.env`` file (blank lines and ``#`` comments skipped, an ``export`` prefix and
    surrounding quotes removed, the last assignment wins). The value never appears in an
    error message.

    Args:
        settings: Runtime settings (for the default secrets file).
        env_name: Name of the environment variable, and of the key in the file.
        secrets_file: Secrets file to read instead of ``settings.secrets_file``.

    Returns:
        The secret.

    Raises:
        ConfigError: The secret is set nowhere, or the secrets file cannot be read.

    Example:
        >>> read_secret(Settings(), "VLLM_API_KEY")  # doctest: +SKIP
        'sk-...'
    """
    value = os.environ.get(env_name)
    if value:
        return value
    path = secrets_file or settings.secrets_file
    if path is not None:
        value = _secret_from_file(Path(path), env_name)
        if value:
            return value
    where = f"the environment or the secrets file {path}" if path else "the environment"
    raise ConfigError(
        f"secret {env_name!r} is not set in {where}",
        hint=(
            f"export {env_name}=..., or add it to the file named by SLUICE_SECRETS_FILE"
            if path is None
            else f"export {env_name}=..., or add {env_name}=... to {path}"
        ),
    )


def _secret_from_file(path: Path, key: str) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"secrets file {path} cannot be read: {exc.strerror or type(exc).__name__}",
            hint="check SLUICE_SECRETS_FILE",
        ) from None
    if path.suffix.lower() == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:  # its message has positions, not values
            raise ConfigError(f"secrets file {path} is not valid TOML: {exc}") from None
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"secrets file {path}: {key} must be a string")
        return value
    found: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        name, sep, value = line.partition("=")
        if not sep:  # never echo the line: it may hold a secret
            raise ConfigError(f"secrets file {path}, line {number}: expected KEY=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if name.strip() == key:
            found = value
    return found
