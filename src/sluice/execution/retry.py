"""Retry policies for steps: exponential backoff with jitter and non-retryable errors."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from sluice.errors import ConfigError, NonRetryableError, SluiceError

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failing step is tried again.

    The delay before attempt ``n + 1`` is ``initial_backoff_s * multiplier ** (n - 1)``,
    capped at ``max_backoff_s``, then spread by ``±jitter`` (a fraction) so that many
    workers failing together do not retry in lock-step.

    Not retried: instances of ``non_retryable`` or of
    :class:`~sluice.errors.NonRetryableError`, and any :class:`~sluice.errors.SluiceError`
    whose ``retryable`` is false (a bad configuration does not heal by waiting). Any
    other ``Exception`` is retried.

    Example:
        >>> policy = RetryPolicy(max_attempts=4, initial_backoff_s=0.1, jitter=0)
        >>> [policy.delay(n) for n in (1, 2, 3)]
        [0.1, 0.2, 0.4]
    """

    max_attempts: int = 3
    initial_backoff_s: float = 0.2
    multiplier: float = 2.0
    max_backoff_s: float = 30.0
    jitter: float = 0.2
    non_retryable: tuple[type[BaseException], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.initial_backoff_s < 0 or self.max_backoff_s < 0:
            raise ConfigError("backoff times must be >= 0 seconds")
        if self.multiplier < 1:
            raise ConfigError(f"multiplier must be >= 1, got {self.multiplier}")
        if not 0 <= self.jitter < 1:
            raise ConfigError(f"jitter must be in [0, 1), got {self.jitter}")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.initial_backoff_s * self.multiplier ** (attempt - 1), self.max_backoff_s)
        if not self.jitter:
            return base
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, base * (1 + spread))

    def is_retryable(self, error: BaseException) -> bool:
        """Whether another attempt may succeed after ``error``."""
        if isinstance(error, (NonRetryableError, *self.non_retryable)):
            return False
        if isinstance(error, SluiceError):
            return error.retryable
        return isinstance(error, Exception)
