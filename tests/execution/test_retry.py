import random

import pytest

from sluice.errors import ConfigError, NonRetryableError, StepTimeoutError, TrainingError
from sluice.execution import RetryPolicy


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(initial_backoff_s=1, multiplier=3, max_backoff_s=5, jitter=0)
    assert [policy.delay(n) for n in range(1, 5)] == [1, 3, 5, 5]


def test_jitter_spreads_delays_within_bounds() -> None:
    policy = RetryPolicy(initial_backoff_s=1, jitter=0.25)
    rng = random.Random(7)
    delays = [policy.delay(1, rng) for _ in range(500)]
    assert min(delays) >= 0.75 and max(delays) <= 1.25
    assert len({round(d, 3) for d in delays}) > 100, "jitter must actually vary"


class Fatal(Exception):
    pass


def test_retryability_follows_the_error() -> None:
    policy = RetryPolicy(non_retryable=(Fatal,))
    assert policy.is_retryable(ConnectionError("flaky network"))
    assert policy.is_retryable(StepTimeoutError("slow"))
    assert not policy.is_retryable(Fatal("declared fatal"))
    assert not policy.is_retryable(NonRetryableError("raised to stop"))
    assert not policy.is_retryable(TrainingError("bad data"))


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"multiplier": 0.5}, {"jitter": 1.0}, {"initial_backoff_s": -1}]
)
def test_nonsense_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
