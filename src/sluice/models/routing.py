"""Route decisions that need no gateway state: the sticky canary split and fallbacks.

Example:
    >>> canary_bucket("support-intent", "itm_1") == canary_bucket("support-intent", "itm_1")
    True
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sluice.errors import BudgetExceededError, ModelCallError, SluiceError

__all__ = ["Target", "call_with_fallbacks", "canary_bucket"]

T = TypeVar("T")


def canary_bucket(task: str, key: str) -> float:
    """Where ``key`` falls in [0, 100) for ``task``'s canary split (stable across hosts)."""
    digest = hashlib.sha256(f"{task}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


@dataclass(frozen=True)
class Target:
    """An endpoint and (for registry models) the version to call."""

    endpoint: str
    version: str | None
    canary: bool


def call_with_fallbacks(chain: Sequence[str], attempt: Callable[[str, tuple[str, ...]], T]) -> T:
    """``attempt(endpoint, failed_so_far)`` along ``chain`` until one answers.

    A budget refusal is final (no fallback may spend around it), and so is a mistake
    that another endpoint cannot fix (a non-retryable Sluice error).

    Raises:
        ModelCallError: Every endpoint failed (the last failure is its cause).
    """
    failed: list[str] = []
    last: BaseException | None = None
    for endpoint in chain:
        try:
            return attempt(endpoint, tuple(failed))
        except BudgetExceededError:
            raise
        except ModelCallError as exc:
            last = exc
        except SluiceError as exc:
            if not exc.retryable:
                raise
            last = exc
        except Exception as exc:  # whatever the provider raised: the endpoint failed
            last = exc
        failed.append(endpoint)
    assert last is not None
    raise ModelCallError(
        f"every endpoint of the route failed ({', '.join(chain)}); last: {last}",
        endpoint=chain[-1],
        hint="see `sluice models usage` for the endpoints' errors",
    ) from last
