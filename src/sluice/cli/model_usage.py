"""``sluice models usage`` and ``sluice models routes``: what the gateway did and will do."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from sluice.cli._common import JsonOption, console, emit_json, handle_errors, runtime

__all__ = ["register"]


def usage(
    since: Annotated[
        datetime | None,
        typer.Option(help="Only calls at or after this time (ISO 8601, UTC if no zone)."),
    ] = None,
    task: Annotated[str | None, typer.Option(help="Only calls of this task (route).")] = None,
    as_json: bool = JsonOption,
) -> None:
    """Latency percentiles, errors, cache hits and cost of the gateway's calls.

    Per endpoint: provider calls (a batch is one), inputs, p50/p95/p99 latency per call,
    errors by kind (exception, timeout, circuit_open, refused_by_policy), cache-hit
    ratio per input, tokens and cost. Then cost per model version and per task.
    """
    from sluice.models import model_usage

    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    with runtime() as rt:
        report = model_usage(rt.store, since=since, task=task)
    if as_json:
        emit_json(report)
        return
    if not report["endpoints"]:
        console.print("No model calls recorded yet (run `sluice demo support-triage`).")
        return
    table = Table(
        "endpoint", "calls", "inputs", "p50 ms", "p95 ms", "p99 ms", "errors", "cache hits", "cost"
    )
    for name, e in report["endpoints"].items():
        errors = ", ".join(f"{k} {v}" for k, v in sorted(e["errors"].items())) or "-"
        table.add_row(
            name,
            str(e["calls"]),
            str(e["inputs"]),
            f"{e['p50_ms']:.1f}",
            f"{e['p95_ms']:.1f}",
            f"{e['p99_ms']:.1f}",
            errors,
            f"{e['cache_hit_ratio']:.1%}",
            f"{e['cost']:.6f}",
        )
    console.print(table)
    for title, key in (("cost per model", "cost_by_model"), ("cost per task", "cost_by_task")):
        if report[key]:
            console.print(f"{title}: " + ", ".join(f"{k} {v:.6f}" for k, v in report[key].items()))


def routes(as_json: bool = JsonOption) -> None:
    """The gateway's endpoints and routes after merging SLUICE_MODELS_CONFIG (validated).

    Use it to check a models config before starting workers: a mistake is reported with
    its path in the file.
    """
    from sluice.models import load_gateway_config

    with runtime() as rt:
        config = load_gateway_config(rt.settings.models_config)
    if as_json:
        emit_json(config.model_dump(mode="json"))
        return
    table = Table("route", "kind", "tiers", "fallbacks", "canary", "cache")
    for name, r in sorted(config.routes.items()):
        canary = (
            f"{r.canary.percent:g}% {r.canary.endpoint or '(registry canary)'}" if r.canary else "-"
        )
        cache = ("exact" if r.cache.exact else "") + (" semantic" if r.cache.semantic else "")
        table.add_row(
            name, r.kind, " > ".join(r.tiers), ", ".join(r.fallbacks) or "-", canary, cache or "off"
        )
    console.print(table)
    table = Table("endpoint", "provider", "model", "timeout s", "limits", "price")
    for name, e in sorted(config.endpoints.items()):
        limits = ", ".join(
            x
            for x in (
                f"{e.max_concurrency} at once" if e.max_concurrency else "",
                f"{e.rate_per_second:g}/s" if e.rate_per_second else "",
            )
            if x
        )
        price = ", ".join(f"{k} {v:g}" for k, v in e.price.model_dump().items() if v) or "free"
        table.add_row(name, e.provider, e.model or "-", f"{e.timeout_s:g}", limits or "-", price)
    console.print(table)


def register(models_app: typer.Typer) -> None:
    """Add ``usage`` and ``routes`` to ``sluice models``."""
    models_app.command("usage")(handle_errors(usage))
    models_app.command("routes")(handle_errors(routes))
