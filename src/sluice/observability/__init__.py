"""Observability: run reports today; metrics, traces and drift monitors later (their issue).

It reads what the planes record and never changes an item.
"""

from sluice.observability.alerts import Alert, AlertChannel, AlertRecord, list_alerts
from sluice.observability.collector import StoreCollector
from sluice.observability.drift import (
    MONITORS,
    MonitorResult,
    MonitorThresholds,
    Window,
    evaluate_window,
    precision_monitor,
    psi,
)
from sluice.observability.drift_reference import (
    DriftReference,
    find_reference,
    fit_reference,
    fit_training_reference,
    save_reference,
)
from sluice.observability.metrics import (
    CircuitBreakerCollector,
    MetricsServer,
    circuit_states_in,
    metrics_registry,
    render_metrics,
    start_metrics_server,
)
from sluice.observability.monitors import (
    PipelineCheck,
    pin_reference,
    run_monitors,
    thresholds_from,
    window_from_rows,
)
from sluice.observability.report import RunReport, build_run_report, percentiles
from sluice.observability.tracing import configure_tracing, tracing_provider

__all__ = [
    "MONITORS",
    "Alert",
    "AlertChannel",
    "AlertRecord",
    "CircuitBreakerCollector",
    "DriftReference",
    "MetricsServer",
    "MonitorResult",
    "MonitorThresholds",
    "PipelineCheck",
    "RunReport",
    "StoreCollector",
    "Window",
    "build_run_report",
    "circuit_states_in",
    "configure_tracing",
    "evaluate_window",
    "find_reference",
    "fit_reference",
    "fit_training_reference",
    "list_alerts",
    "metrics_registry",
    "percentiles",
    "pin_reference",
    "precision_monitor",
    "psi",
    "render_metrics",
    "run_monitors",
    "save_reference",
    "start_metrics_server",
    "thresholds_from",
    "tracing_provider",
    "window_from_rows",
]
