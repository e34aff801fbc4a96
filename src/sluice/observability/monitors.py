"""The monitor runner: evaluates the drift monitors over a pipeline's latest window.

:func:`run_monitors` reads the latest ``SLUICE_DRIFT_WINDOW_ITEMS`` completed runs of
the monitored step (``SLUICE_DRIFT_STEP``, ``classify``) of each pipeline through the
execution plane's :func:`~sluice.execution.step_outputs`, builds a
:class:`~sluice.observability.drift.Window` (text lengths and embedding clusters from
the event text, predicted classes, confidence under the threshold, fallbacks and tier
escalations from the model-call records), compares it with the pipeline's reference
(a pinned period, else the training reference of the model version that answered most of
the window, fitted on first use), adds the audited precision from the review plane, and
raises an alert through the :class:`~sluice.observability.alerts.AlertChannel` for every
monitor that fires. It reads and never changes an item.

Run it periodically (``sluice monitors run`` from cron or a scheduler); each run looks at
the window as it is then, so consecutive runs slide the window.

Example:
    >>> checks = run_monitors(store, settings, channel=channel)  # doctest: +SKIP
    >>> [(r.monitor, r.fired) for r in checks[0].results]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from sluice.config import Settings
from sluice.errors import ConfigError
from sluice.execution import registered_pipelines, step_outputs
from sluice.observability.alerts import Alert, AlertChannel
from sluice.observability.drift import (
    MonitorResult,
    MonitorThresholds,
    Window,
    evaluate_window,
    precision_monitor,
)
from sluice.observability.drift_reference import (
    DriftReference,
    find_reference,
    fit_reference,
    fit_training_reference,
    save_reference,
    text_length,
)
from sluice.store import Store

__all__ = [
    "PipelineCheck",
    "pin_reference",
    "run_monitors",
    "thresholds_from",
    "window_from_rows",
]

Embed = Callable[[Sequence[str]], npt.NDArray[np.float32]]


def thresholds_from(settings: Settings) -> MonitorThresholds:
    """The monitors' thresholds from the ``SLUICE_DRIFT_*`` settings."""
    return MonitorThresholds(
        min_items=settings.drift_min_items,
        alpha=settings.drift_alpha,
        length_psi=settings.drift_length_psi,
        embedding_psi=settings.drift_embedding_psi,
        prediction_psi=settings.drift_prediction_psi,
        confidence_increase=settings.drift_confidence_increase,
        fallback_increase=settings.drift_fallback_increase,
        escalation_increase=settings.drift_escalation_increase,
        precision_min_audited=settings.drift_precision_min_audited,
    )


def _text(data: Any) -> str:
    # What the classifier's training texts are: the message itself (`data.text`).
    if isinstance(data, Mapping):
        return str(data.get("text") or "")
    return str(data or "")


def _flag(calls: Any, key: str) -> bool:
    return any(bool((c or {}).get(key)) for c in calls or [])


def window_from_rows(
    rows: Sequence[Mapping[str, Any]],
    reference: DriftReference | None = None,
    embed: Embed | None = None,
) -> Window:
    """A window from :func:`~sluice.execution.step_outputs` rows, sorted oldest first.

    Embedding clusters are computed only when both ``reference`` and ``embed`` are given.
    """
    rows = sorted(rows, key=lambda r: (r["finished_at"], str(r["item_id"])))
    texts = [_text(r["data"]) for r in rows]
    outputs = [r["output"] or {} for r in rows]
    clusters = None
    if reference is not None and embed is not None and texts:
        clusters = reference.clusters_of(embed(texts))
    return Window(
        lengths=[text_length(t) for t in texts],
        clusters=clusters,
        labels=[str(o.get("label")) for o in outputs],
        below_threshold=[
            float(o.get("confidence", 0.0)) < float(o.get("threshold", 0.0)) for o in outputs
        ],
        fallbacks=[_flag(r.get("model_calls"), "fallbacks") for r in rows],
        escalations=[_flag(r.get("model_calls"), "escalated_from") for r in rows],
        first=str(rows[0]["item_id"]) if rows else "",
        last=str(rows[-1]["item_id"]) if rows else "",
    )


@dataclass
class PipelineCheck:
    """The monitors' verdicts on one pipeline's latest window.

    Attributes:
        pipeline: The pipeline.
        model: ``name@version`` that answered most of the window.
        reference: The reference's summary (None when there is none).
        items: Items in the window.
        results: One result per monitor.
        alerts: Ids of the alerts raised (repeats within the cooldown are not raised).
        skipped: Why nothing was evaluated, if so.
    """

    pipeline: str
    model: str | None = None
    reference: dict[str, Any] | None = None
    items: int = 0
    results: list[MonitorResult] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    skipped: str | None = None

    @property
    def fired(self) -> list[str]:
        """Monitors that fired."""
        return [r.monitor for r in self.results if r.fired]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "pipeline": self.pipeline,
            "model": self.model,
            "reference": self.reference,
            "items": self.items,
            "fired": self.fired,
            "alerts": self.alerts,
            "skipped": self.skipped,
            "results": [r.to_dict() for r in self.results],
        }


def _message(pipeline: str, result: MonitorResult) -> str:
    what = {
        "input_length": "input text lengths drifted (PSI)",
        "input_embedding": "input topics drifted (PSI of embedding clusters)",
        "prediction": "predicted-class mix drifted (PSI)",
        "confidence": "more items under the auto threshold",
        "fallback_rate": "more answers needed a fallback endpoint",
        "escalation_rate": "more answers were escalated to a higher tier",
        "precision": "audited precision of auto-handled items is under the target",
    }[result.monitor]
    return (
        f"{pipeline}: {what}: {result.value} over {result.items} "
        f"{'audits' if result.monitor == 'precision' else 'items'} "
        f"(threshold {result.threshold})"
    )


def run_monitors(
    store: Store,
    settings: Settings,
    *,
    pipelines: Sequence[str] | None = None,
    channel: AlertChannel | None = None,
    embed: Embed | None = None,
    registry: Any | None = None,
    fit_missing: bool = True,
    actor: str = "monitors",
) -> list[PipelineCheck]:
    """Evaluate every monitor on the latest window of each pipeline; alert on those that fire.

    Args:
        store: The store.
        settings: Thresholds and window size (``SLUICE_DRIFT_*``).
        pipelines: Pipelines to check (default: every declared one).
        channel: Where alerts go (None: evaluate only, raise nothing).
        embed: Texts to embeddings (default: the packaged encoder, loaded on first use).
        registry: The model registry (default: one on ``store``), to fit a missing
            training reference.
        fit_missing: Fit and store a training reference when a version has none.
        actor: Who the alerts and fitted references are audited as.
    """
    names = list(pipelines) if pipelines else sorted(registered_pipelines())
    limits = thresholds_from(settings)
    encoder: Any = None

    def default_embed(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        nonlocal encoder
        if encoder is None:
            from sluice.models import load_encoder

            encoder = load_encoder(settings)
        return encoder.encode(list(texts))  # type: ignore[no-any-return]

    checks = []
    for name in names:
        check = PipelineCheck(name)
        checks.append(check)
        rows = step_outputs(
            store, pipeline=name, step=settings.drift_step, limit=settings.drift_window_items
        )
        check.items = len(rows)
        if not rows:
            check.skipped = f"no completed {settings.drift_step!r} runs"
            continue
        versions = Counter((r["model_name"], r["model_version"]) for r in rows)
        (model, version), _ = versions.most_common(1)[0]
        if not model or not version:
            check.skipped = f"the {settings.drift_step!r} step records no model"
            continue
        check.model = f"{model}@{version}"
        reference = find_reference(store, model=model, version=version, pipeline=name)
        if reference is None and fit_missing:
            if registry is None:
                from sluice.models import ModelRegistry

                registry = ModelRegistry(store)
            try:
                reference = save_reference(
                    store, fit_training_reference(settings, registry, model, version), actor=actor
                )
            except ConfigError as exc:
                check.skipped = f"no drift reference for {model}@{version}: {exc}"
                continue
        if reference is None:
            check.skipped = f"no drift reference for {model}@{version}"
            continue
        check.reference = reference.summary()
        window = window_from_rows(rows, reference, embed or default_embed)
        check.results = evaluate_window(reference, window, limits)
        check.results.append(_precision(store, name, reference, settings, limits))
        if channel is not None:
            for result in check.results:
                if not result.fired:
                    continue
                record = channel.raise_alert(
                    Alert(
                        "drift",
                        result.monitor,
                        name,
                        _message(name, result),
                        severity="critical" if result.monitor == "precision" else "warning",
                        value=result.value,
                        threshold=result.threshold,
                        details={
                            **result.to_dict(),
                            "model": check.model,
                            "reference": reference.id,
                            "window": {"first": window.first, "last": window.last},
                        },
                    ),
                    actor=actor,
                )
                if record is not None:
                    check.alerts.append(record.id)
    return checks


def _precision(
    store: Store,
    pipeline: str,
    reference: DriftReference,
    settings: Settings,
    limits: MonitorThresholds,
) -> MonitorResult:
    from sluice.review import audit_precision

    overall = audit_precision(store, pipeline).overall
    target = reference.target_precision or settings.target_precision
    return precision_monitor(overall.precision, overall.high, overall.audited, target, limits)


def pin_reference(
    store: Store,
    settings: Settings,
    pipeline: str,
    *,
    since: datetime,
    until: datetime,
    embed: Embed | None = None,
    actor: str = "monitors",
    max_items: int = 100_000,
) -> DriftReference:
    """Pin a period of ``pipeline`` as its reference (instead of the training data).

    Fitted from the monitored step's runs in ``[since, until)``: their texts, predicted
    classes, share under the threshold, fallback and escalation rates.

    Raises:
        ConfigError: The period has no runs of the monitored step.
    """
    rows = step_outputs(
        store,
        pipeline=pipeline,
        step=settings.drift_step,
        limit=max_items,
        since=since,
        until=until,
    )
    if not rows:
        raise ConfigError(
            f"{pipeline} has no completed {settings.drift_step!r} runs between "
            f"{since.isoformat()} and {until.isoformat()}",
            hint="pick a period the pipeline ran in (`sluice items list`)",
        )
    window = window_from_rows(rows)
    texts = [_text(r["data"]) for r in sorted(rows, key=lambda r: (r["finished_at"], r["item_id"]))]
    encoder_ref = ""
    if embed is None:
        from sluice.models import load_encoder

        encoder = load_encoder(settings)
        encoder_ref = f"{encoder.name}@{encoder.version}"
        vectors = encoder.encode(texts)
    else:
        vectors = embed(texts)
    versions = Counter((r["model_name"], r["model_version"]) for r in rows)
    (model, version), _ = versions.most_common(1)[0]
    n = len(rows)
    reference = fit_reference(
        texts,
        window.labels,
        vectors,
        below_threshold_share=sum(window.below_threshold) / n,
        threshold=float((rows[0]["output"] or {}).get("threshold", 0.0)),
        kind="period",
        model=str(model or ""),
        version=str(version or ""),
        encoder=encoder_ref,
        data_sha256=hashlib.sha256(
            f"{pipeline}:{since.isoformat()}..{until.isoformat()}".encode()
        ).hexdigest(),
        length_buckets=settings.drift_length_buckets,
        clusters=settings.drift_embedding_clusters,
        fallback_rate=sum(window.fallbacks) / n,
        escalation_rate=sum(window.escalations) / n,
        target_precision=settings.target_precision,
        pipeline=pipeline,
        extra={"since": since.isoformat(), "until": until.isoformat()},
    )
    return save_reference(store, reference, actor=actor)
