"""Drift and silent-failure monitors: pure functions over a window of items and a reference.

A *window* (:class:`Window`) is what the latest N items of a pipeline looked like: the
length of each text, the embedding cluster it falls in, the predicted class, whether its
confidence was under the auto threshold, whether the answer needed a fallback or a tier
escalation. A *reference* (:class:`~sluice.observability.drift_reference.DriftReference`)
is the same picture of the training data (or of a pinned period). Each monitor compares
the two and says whether it fires:

========================  ==========================================================
``input_length``          PSI of the text-length buckets
``input_embedding``       PSI of the embedding clusters (k-means fitted on training)
``prediction``            PSI of the predicted-class distribution
``confidence``            rise of the share of items under the auto threshold
``fallback_rate``         rise of the share of answers that needed a fallback endpoint
``escalation_rate``       rise of the share of answers escalated to a higher tier
``precision``             audited precision of auto-handled items under the target
========================  ==========================================================

Why a PSI threshold alone is not enough: PSI over k buckets of a window of n items
drawn from the *reference itself* is about ``chi2(k-1) / n``; with 77 classes and 200
items that is ~0.4, over the usual 0.2 "significant shift" rule. So a distribution
monitor fires only when the PSI is both over its configured floor (an effect size) and
over the ``1 - alpha`` quantile of the PSI of same-sized windows drawn from the reference
(simulated, seeded): ``alpha`` is then the false-alarm probability per window. The rate
monitors do the same with a one-sided binomial test against the reference rate.

Example:
    >>> round(psi([0.5, 0.5], [0.5, 0.5]), 6)
    0.0
    >>> round(psi([0.5, 0.5], [0.9, 0.1]), 3)
    0.879
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from sluice.observability.drift_reference import DriftReference

__all__ = [
    "MONITORS",
    "MonitorResult",
    "MonitorThresholds",
    "Window",
    "evaluate_window",
    "null_psi_quantile",
    "precision_monitor",
    "psi",
    "shares",
]

#: Floor for an empty bucket's share: keeps PSI finite (ln 0) while still counting it.
EPSILON = 1e-4

#: Monitor names, in the order they are reported.
MONITORS = (
    "input_length",
    "input_embedding",
    "prediction",
    "confidence",
    "fallback_rate",
    "escalation_rate",
    "precision",
)

Floats = npt.NDArray[np.float64]


def psi(expected: Sequence[float] | Floats, actual: Sequence[float] | Floats) -> float:
    """Population stability index of ``actual`` against ``expected`` (two share vectors).

    ``sum((a - e) * ln(a / e))`` over the buckets, each share floored at ``1e-4``. 0 means
    the same distribution; < 0.1 is usually read as stable, > 0.2 as a real shift.

    Raises:
        ValueError: The vectors differ in length.

    >>> round(psi([0.25] * 4, [0.1, 0.2, 0.3, 0.4]), 4)
    0.2282
    """
    e = np.maximum(np.asarray(expected, dtype=np.float64), EPSILON)
    a = np.maximum(np.asarray(actual, dtype=np.float64), EPSILON)
    if e.shape != a.shape:
        raise ValueError(f"PSI needs equal bucket counts, got {e.shape} and {a.shape}")
    return float(np.sum((a - e) * np.log(a / e)))


def shares(indices: Sequence[int] | npt.NDArray[np.int64], buckets: int) -> Floats:
    """Share of ``indices`` in each of ``buckets`` buckets (0 ... buckets-1).

    >>> shares([0, 0, 1, 3], 4).tolist()
    [0.5, 0.25, 0.0, 0.25]
    """
    counts = np.bincount(np.asarray(indices, dtype=np.int64), minlength=buckets)[:buckets]
    total = counts.sum()
    return counts / total if total else np.zeros(buckets)


@lru_cache(maxsize=256)
def _null_psi_quantile(reference: tuple[float, ...], n: int, q: float, draws: int) -> float:
    rng = np.random.default_rng(0)  # seeded: the same window gets the same verdict
    p = np.asarray(reference, dtype=np.float64)
    p = p / p.sum()
    counts = rng.multinomial(n, p, size=draws)
    a = np.maximum(counts / n, EPSILON)
    e = np.maximum(p, EPSILON)
    values = np.sum((a - e) * np.log(a / e), axis=1)
    return float(np.quantile(values, q))


def null_psi_quantile(
    reference: Sequence[float] | Floats, n: int, alpha: float, *, draws: int = 4000
) -> float:
    """The ``1 - alpha`` quantile of the PSI of ``n``-item windows drawn from ``reference``.

    A window whose PSI is over it would happen by chance with probability ``alpha`` if
    nothing had changed (simulated with a fixed seed, so the same inputs give the same
    answer).

    >>> null_psi_quantile([0.5, 0.5], 1000, 0.01) < 0.01
    True
    """
    return _null_psi_quantile(tuple(float(x) for x in reference), int(n), 1.0 - alpha, draws)


def _binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    from scipy.stats import binom

    return float(binom.sf(k - 1, n, min(max(p, 0.0), 1.0)))


@dataclass(frozen=True)
class MonitorThresholds:
    """When each monitor fires (from settings; see ``docs/configuration.md``).

    Attributes:
        min_items: Fewest items a window needs before any drift monitor is evaluated.
        alpha: False-alarm probability per window and monitor under the reference.
        length_psi: PSI floor of ``input_length``.
        embedding_psi: PSI floor of ``input_embedding``.
        prediction_psi: PSI floor of ``prediction``.
        confidence_increase: Rise (absolute share) of items under the auto threshold.
        fallback_increase: Rise (absolute share) of answers that needed a fallback.
        escalation_increase: Rise (absolute share) of answers escalated a tier.
        precision_min_audited: Fewest graded audits before ``precision`` is evaluated.
    """

    min_items: int = 50
    alpha: float = 0.001
    length_psi: float = 0.1
    embedding_psi: float = 0.2
    prediction_psi: float = 0.2
    confidence_increase: float = 0.1
    fallback_increase: float = 0.05
    escalation_increase: float = 0.05
    precision_min_audited: int = 30


@dataclass(frozen=True)
class Window:
    """What one window of items looked like (one entry per item, same order).

    Attributes:
        lengths: Words in each item's text.
        clusters: Nearest reference embedding cluster of each item (None: not embedded,
            and ``input_embedding`` is skipped).
        labels: Predicted class of each item.
        below_threshold: Whether each item's confidence was under its auto threshold.
        fallbacks: Whether each item's answer came after a failed endpoint.
        escalations: Whether each item's answer was escalated to a higher tier.
        first: Id of the first item of the window (for the alert's details).
        last: Id of the last item of the window.
    """

    lengths: Sequence[int]
    clusters: Sequence[int] | None
    labels: Sequence[str]
    below_threshold: Sequence[bool]
    fallbacks: Sequence[bool] = ()
    escalations: Sequence[bool] = ()
    first: str = ""
    last: str = ""

    @property
    def size(self) -> int:
        """Items in the window."""
        return len(self.labels)


@dataclass(frozen=True)
class MonitorResult:
    """One monitor's verdict on one window.

    Attributes:
        monitor: One of :data:`MONITORS`.
        fired: True when the monitor's thresholds were passed.
        value: The measured value (a PSI, a share, a precision).
        threshold: What ``value`` had to pass for the monitor to fire (for PSI, the larger
            of the floor and the null quantile).
        baseline: The reference's value, for rates and precision.
        items: Items (or graded audits) the value is computed over.
        skipped: Why the monitor was not evaluated (too few items, no reference data).
        details: Anything else worth showing (top moved buckets, a p-value).
    """

    monitor: str
    fired: bool
    value: float | None
    threshold: float | None
    items: int
    baseline: float | None = None
    skipped: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _skip(monitor: str, items: int, why: str) -> MonitorResult:
    return MonitorResult(monitor, False, None, None, items, skipped=why)


def _distribution(
    monitor: str,
    expected: Sequence[float],
    indices: Sequence[int],
    floor: float,
    limits: MonitorThresholds,
    names: Sequence[str] | None = None,
) -> MonitorResult:
    n = len(indices)
    if n < limits.min_items:
        return _skip(monitor, n, f"{n} items, fewer than min_items={limits.min_items}")
    e = np.asarray(expected, dtype=np.float64)
    a = shares(indices, len(e))
    value = psi(e, a)
    threshold = max(floor, null_psi_quantile(e, n, limits.alpha))
    moved = np.argsort(-np.abs(a - e))[:3]
    details = {
        "psi_floor": floor,
        "moved": [
            {
                "bucket": names[i] if names else int(i),
                "reference": round(float(e[i]), 4),
                "window": round(float(a[i]), 4),
            }
            for i in moved
        ],
    }
    return MonitorResult(
        monitor, value > threshold, round(value, 4), round(threshold, 4), n, details=details
    )


def _rate(
    monitor: str, flags: Sequence[bool], baseline: float, increase: float, limits: MonitorThresholds
) -> MonitorResult:
    n = len(flags)
    if n < limits.min_items:
        return _skip(monitor, n, f"{n} items, fewer than min_items={limits.min_items}")
    hits = int(sum(bool(f) for f in flags))
    rate = hits / n
    p_value = _binomial_tail(hits, n, baseline)
    fired = rate - baseline > increase and p_value < limits.alpha
    return MonitorResult(
        monitor,
        fired,
        round(rate, 4),
        round(baseline + increase, 4),
        n,
        baseline=round(baseline, 4),
        details={"p_value": round(p_value, 6), "count": hits},
    )


def _label_indices(labels: Sequence[str], classes: Sequence[str]) -> list[int]:
    # A class the reference never saw goes to one extra "other" bucket at the end.
    position = {c: i for i, c in enumerate(classes)}
    return [position.get(label, len(classes)) for label in labels]


def evaluate_window(
    reference: DriftReference, window: Window, limits: MonitorThresholds
) -> list[MonitorResult]:
    """Every drift monitor (all but ``precision``) on one window against ``reference``."""
    results = [
        _distribution(
            "input_length",
            reference.length_shares,
            [reference.length_bucket(n) for n in window.lengths],
            limits.length_psi,
            limits,
            names=reference.length_bucket_names(),
        )
    ]
    if window.clusters is None or not reference.cluster_shares:
        results.append(_skip("input_embedding", window.size, "no embeddings"))
    else:
        results.append(
            _distribution(
                "input_embedding",
                reference.cluster_shares,
                list(window.clusters),
                limits.embedding_psi,
                limits,
            )
        )
    classes = list(reference.classes)
    results.append(
        _distribution(
            "prediction",
            [*reference.class_shares, 0.0],
            _label_indices(window.labels, classes),
            limits.prediction_psi,
            limits,
            names=[*classes, "(unknown to the reference)"],
        )
    )
    rates: list[tuple[str, Sequence[bool], float, float]] = [
        (
            "confidence",
            window.below_threshold,
            reference.below_threshold_share,
            limits.confidence_increase,
        ),
        ("fallback_rate", window.fallbacks, reference.fallback_rate, limits.fallback_increase),
        (
            "escalation_rate",
            window.escalations,
            reference.escalation_rate,
            limits.escalation_increase,
        ),
    ]
    for name, flags, baseline, increase in rates:
        results.append(_rate(name, flags, baseline, increase, limits))
    return results


def precision_monitor(
    precision: float | None,
    high: float | None,
    audited: int,
    target: float,
    limits: MonitorThresholds,
) -> MonitorResult:
    """Fires when the audits show, at 95% confidence, precision under ``target``.

    ``high`` is the upper end of the audited precision's 95% interval
    (:func:`sluice.review.audit_precision`); requiring it under the target keeps a few
    unlucky audits from raising an alert.

    >>> precision_monitor(0.9, 0.95, 100, 0.99, MonitorThresholds()).fired
    True
    >>> precision_monitor(0.98, 0.995, 100, 0.99, MonitorThresholds()).fired
    False
    """
    if audited < limits.precision_min_audited or precision is None or high is None:
        return _skip(
            "precision",
            audited,
            f"{audited} graded audits, fewer than {limits.precision_min_audited}",
        )
    return MonitorResult(
        "precision",
        high < target,
        round(precision, 4),
        round(target, 4),
        audited,
        baseline=round(target, 4),
        details={"upper_95": round(high, 4)},
    )
