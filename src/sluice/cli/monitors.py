"""``sluice monitors`` (drift and silent-failure monitors) and ``sluice alerts list``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sluice.cli._common import JsonOption, console, emit_json, handle_errors, runtime

__all__ = ["alerts_app", "app"]

app = typer.Typer(
    help="Drift and silent-failure monitors over each pipeline's latest window.",
    no_args_is_help=True,
)
alerts_app = typer.Typer(
    help="Alerts raised by the monitors and the budgets.", no_args_is_help=True
)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@app.command("run")
@handle_errors
def run(
    pipeline: Annotated[
        list[str] | None, typer.Option("--pipeline", "-p", help="Only this pipeline (repeat).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Evaluate only; raise no alerts.")
    ] = False,
    as_json: bool = JsonOption,
) -> None:
    """Evaluate every monitor on the latest window; raise an alert for each that fires.

    The window is the latest SLUICE_DRIFT_WINDOW_ITEMS completed runs of the step named
    by SLUICE_DRIFT_STEP. A model version without a drift reference gets one fitted from
    its training data on first use. Run it periodically (cron, a scheduler).
    """
    from sluice.observability import run_monitors

    with runtime() as rt:
        checks = run_monitors(
            rt.store,
            rt.settings,
            pipelines=pipeline or None,
            channel=None if dry_run else rt.alerts,
            registry=rt.models,
            actor="cli:monitors",
        )
    if as_json:
        emit_json({"pipelines": [c.to_dict() for c in checks]})
        return
    for check in checks:
        if check.skipped:
            console.print(f"[bold]{check.pipeline}[/]: skipped ({check.skipped})")
            continue
        console.print(
            f"[bold]{check.pipeline}[/] ({check.model}, {check.items} items, reference "
            f"{(check.reference or {}).get('kind')})"
        )
        table = Table("monitor", "value", "threshold", "items", "state")
        for r in check.results:
            state = "[red]FIRED[/]" if r.fired else ("skipped: " + r.skipped if r.skipped else "ok")
            table.add_row(
                r.monitor,
                "-" if r.value is None else f"{r.value:g}",
                "-" if r.threshold is None else f"{r.threshold:g}",
                str(r.items),
                state,
            )
        console.print(table)
        if check.alerts:
            console.print(f"alerts raised: {', '.join(check.alerts)}")


@app.command("fit-reference")
@handle_errors
def fit_reference_cmd(
    model: Annotated[str, typer.Option(help="Model name.")] = "support-intent",
    version: Annotated[str | None, typer.Option(help="Version (default: production).")] = None,
    data: Annotated[
        Path | None, typer.Option(help="The training CSV, if it moved since training.")
    ] = None,
    as_json: bool = JsonOption,
) -> None:
    """Fit and store the drift reference of a model version from its training data."""
    from sluice.observability import fit_training_reference, save_reference

    with runtime() as rt:
        reference = save_reference(
            rt.store,
            fit_training_reference(rt.settings, rt.models, model, version, data_path=data),
            actor="cli:monitors",
        )
    if as_json:
        emit_json(reference.summary())
        return
    console.print(f"drift reference {reference.id} for {reference.model}@{reference.version}")


@app.command("pin")
@handle_errors
def pin(
    pipeline: Annotated[str, typer.Option("--pipeline", "-p", help="The pipeline.")],
    since: Annotated[datetime, typer.Option(help="Start of the period (ISO 8601, UTC).")],
    until: Annotated[datetime, typer.Option(help="End of the period (excluded).")],
    as_json: bool = JsonOption,
) -> None:
    """Pin a period of a pipeline as its drift reference (instead of the training data)."""
    from sluice.observability import pin_reference

    start, end = _utc(since), _utc(until)
    with runtime() as rt:
        reference = pin_reference(
            rt.store, rt.settings, pipeline, since=start, until=end, actor="cli:monitors"
        )
    if as_json:
        emit_json(reference.summary())
        return
    console.print(f"pinned reference {reference.id} for {pipeline} ({reference.rows} items)")


@alerts_app.command("list")
@handle_errors
def list_cmd(
    kind: Annotated[str | None, typer.Option(help="Only `drift` or `budget` alerts.")] = None,
    subject: Annotated[
        str | None, typer.Option(help="Only alerts about this pipeline or budget scope.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: bool = JsonOption,
) -> None:
    """Alerts, newest first, with their webhook delivery."""
    from sluice.observability import list_alerts

    with runtime() as rt:
        records = list_alerts(rt.store, kind=kind, subject=subject, limit=limit)
    if as_json:
        emit_json({"alerts": [r.to_dict() for r in records]})
        return
    if not records:
        console.print("No alerts.")
        return
    table = Table("when", "kind", "name", "subject", "severity", "message", "webhook")
    for r in records:
        table.add_row(
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            r.kind,
            r.name,
            r.subject,
            r.severity,
            r.message,
            r.webhook_status,
        )
    console.print(table)
