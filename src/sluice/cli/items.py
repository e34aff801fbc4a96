"""Commands to inspect work: items, the outbox, rejected input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from sluice.cli._common import JsonOption, console, emit_json, handle_errors, runtime

__all__ = ["app", "outbox_app", "rejects_app"]

app = typer.Typer(help="Inspect work items and their step-by-step record.", no_args_is_help=True)
outbox_app = typer.Typer(help="Actions decided for items, one per item.", no_args_is_help=True)
rejects_app = typer.Typer(
    help="Input rejected at intake, kept with its error.", no_args_is_help=True
)

Limit = Annotated[int, typer.Option(min=1, max=10_000, help="At most this many rows.")]


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


@app.command("list")
@handle_errors
def list_items(
    pipeline: Annotated[str | None, typer.Option(help="Only this pipeline.")] = None,
    status: Annotated[
        str | None,
        typer.Option(help="queued, running, waiting_review, completed, rejected or failed."),
    ] = None,
    limit: Limit = 50,
    as_json: bool = JsonOption,
) -> None:
    """List items, newest first."""
    from sluice.execution import list_items as query

    with runtime() as rt:
        rows = query(rt.store, pipeline=pipeline, status=status, limit=limit)
    if as_json:
        emit_json(rows)
        return
    table = Table("id", "pipeline", "status", "result", "created")
    for r in rows:
        result = r["result"] or ({"error": r["error_type"]} if r["error_type"] else "")
        table.add_row(r["id"], r["pipeline"], r["status"], _short(result, 50), r["created_at"][:19])
    console.print(table)


@app.command("show")
@handle_errors
def show_item(
    item_id: Annotated[str, typer.Argument(help="Item id (itm_...).")],
    as_json: bool = JsonOption,
) -> None:
    """Show the whole record of an item: its event, every step run, its outbox record."""
    from sluice.execution import get_item

    with runtime() as rt:
        item = get_item(rt.store, item_id)
    if as_json:
        emit_json(item)
        return
    console.print(f"[bold]{item['id']}[/]  {item['pipeline']}  [bold]{item['status']}[/]")
    console.print(
        f"event {item['event']['source']} / {item['event']['id']}: "
        f"{_short(item['event']['data'], 100)}"
    )
    if item["error"]:
        console.print(f"[red]error[/] {item['error_type']}: {item['error']}")
    table = Table("step", "attempt", "status", "ms", "model", "output / error")
    for run in item["steps"]:
        model = f"{run['model_name']}@{run['model_version']}" if run["model_name"] else ""
        detail = run["output"] if run["status"] == "completed" else run["error"]
        table.add_row(
            run["step"],
            str(run["attempt"]),
            run["status"],
            f"{run['latency_ms']:.1f}",
            model,
            _short(detail, 70),
        )
    console.print(table)
    if item["outbox"]:
        console.print(f"outbox: {item['outbox']['action']} {_short(item['outbox']['payload'])}")


@app.command("retry")
@handle_errors
def retry(
    item_ids: Annotated[list[str], typer.Argument(help="Ids of failed items.")],
    as_json: bool = JsonOption,
) -> None:
    """Put failed items back in the queue; steps they completed are not run again."""
    from sluice.execution import retry_items

    with runtime() as rt:
        done = retry_items(rt.store, item_ids)
    if as_json:
        emit_json({"requeued": done})
    else:
        console.print(f"requeued {len(done)} item(s); a worker will pick them up")


@outbox_app.command("list")
@handle_errors
def list_outbox(
    pipeline: Annotated[str | None, typer.Option(help="Only this pipeline.")] = None,
    limit: Limit = 50,
    as_json: bool = JsonOption,
) -> None:
    """List outbox records, newest first."""
    from sluice.execution import list_outbox as query

    with runtime() as rt:
        rows = query(rt.store, pipeline=pipeline, limit=limit)
    if as_json:
        emit_json(rows)
        return
    table = Table("item", "action", "decided by", "payload", "created")
    for r in rows:
        table.add_row(
            r["item_id"],
            r["action"],
            r["decided_by"],
            _short(r["payload"], 70),
            r["created_at"][:19],
        )
    console.print(table)


@rejects_app.command("list")
@handle_errors
def list_rejects(
    pipeline: Annotated[str | None, typer.Option(help="Only this pipeline.")] = None,
    include_accepted: Annotated[
        bool, typer.Option(help="Also list rejections that were fixed and accepted.")
    ] = False,
    limit: Limit = 50,
    as_json: bool = JsonOption,
) -> None:
    """List rejected events with their line and error."""
    from sluice.execution import list_rejections

    with runtime() as rt:
        rows = list_rejections(
            rt.store,
            pipeline=pipeline,
            limit=limit,
            status=None if include_accepted else "rejected",
        )
    if as_json:
        emit_json([r.to_dict() for r in rows])
        return
    table = Table("id", "origin:line", "error", "status")
    for r in rows:
        table.add_row(r.id, f"{_short(r.origin, 40)}:{r.line}", _short(r.error, 70), r.status)
    console.print(table)


@rejects_app.command("retry")
@handle_errors
def retry_reject(
    rejection_id: Annotated[str, typer.Argument(help="Rejection id (rej_...).")],
    file: Annotated[
        Path | None,
        typer.Option(
            help="File holding the corrected event as JSON (default: retry the stored text)."
        ),
    ] = None,
    as_json: bool = JsonOption,
) -> None:
    """Validate a rejected event again, optionally corrected, and submit it."""
    from sluice.execution import retry_rejection

    with runtime() as rt:
        raw = file.read_text(encoding="utf-8") if file else None
        report = retry_rejection(rt.store, rejection_id, raw=raw)
    if as_json:
        emit_json(report.to_dict())
    elif report.rejected:
        console.print(f"still rejected: {report.rejected[0][2]['message']}")
    else:
        item = (report.accepted or report.duplicates)[0][1]
        console.print(f"accepted as item {item}")
    if report.rejected:
        raise typer.Exit(1)
