"""Observability: run reports today; metrics, traces and drift monitors later (their issue).

It reads what the planes record and never changes an item.
"""

from sluice.observability.report import RunReport, build_run_report, percentiles

__all__ = ["RunReport", "build_run_report", "percentiles"]
