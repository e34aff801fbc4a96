"""``sluice replay``: what would past items have got with another model? No side effects."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sluice.cli._common import (
    STATE,
    console,
    emit_json,
    handle_errors,
    local_principal,
    runtime,
)
from sluice.errors import ConfigError

__all__ = ["register"]


def _pins(values: list[str] | None) -> dict[str, str]:
    pins = {}
    for value in values or []:
        name, sep, version = value.partition("=")
        if not sep or not name or not version:
            raise ConfigError(
                f"--model {value!r} is not NAME=VERSION", hint="e.g. support-intent=2"
            )
        pins[name] = version
    return pins


def replay(
    items: Annotated[list[str] | None, typer.Argument(help="Item ids to replay.")] = None,
    since: Annotated[
        datetime | None,
        typer.Option(help="Replay the settled items created since then (ISO 8601, UTC)."),
    ] = None,
    pipeline: Annotated[
        str | None, typer.Option(help="The pipeline whose items --since replays.")
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(help="NAME=VERSION: use this model version (repeatable)."),
    ] = None,
    prompt: Annotated[
        list[str] | None, typer.Option(help="NAME=VERSION of a prompt (not available yet).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the full report (JSON).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")] = False,
) -> None:
    """Re-run past items from their recorded inputs and diff the decisions.

    Nothing is written to the outbox or the items; the actions the replay would take go to
    its dry-run outbox (in the report). Use it before promoting a model:

        sluice replay --pipeline support-triage --since 2026-11-01 --model support-intent=4
    """
    from sluice.execution import replay_items, replay_since

    if prompt:
        raise ConfigError(
            "prompts are not versioned yet, so --prompt cannot be replayed",
            hint="prompt versioning arrives with the control-plane II issue",
        )
    pins = _pins(model)
    actor = local_principal().actor
    with runtime() as rt:
        if since is not None:
            if not pipeline:
                raise ConfigError("--since needs --pipeline")
            moment = since if since.tzinfo else since.replace(tzinfo=UTC)
            report = replay_since(
                rt.settings, rt.store, pipeline, moment, model_pins=pins, actor=actor
            )
        elif items:
            report = replay_items(rt.settings, rt.store, items, model_pins=pins, actor=actor)
        else:
            raise ConfigError("name items to replay, or --since with --pipeline")
    full = report.to_dict()
    if output:
        output.write_text(json.dumps(full, indent=2, default=str))
    if as_json:
        emit_json(full)
        return
    s = report.summary
    pinned = ", ".join(f"{k}={v}" for k, v in report.model_pins.items()) or "production models"
    console.print(f"replayed {s['items']} item(s) of {report.pipeline} with {pinned}")
    console.print(f"  changed {s['changed']}, unchanged {s.get('unchanged', 0)}")
    table = Table("change", "items")
    for change, n in s["transitions"].items():
        table.add_row(change, str(n))
    console.print(table)
    if s.get("reviewed_items"):
        console.print(
            f"  reviewed items: the original proposal matched the reviewer on "
            f"{s['reviewed_agreement_original']}/{s['reviewed_items']}, the replay on "
            f"{s['reviewed_agreement_replay']}/{s['reviewed_items']}; "
            f"{s['reviewed_now_auto_and_right']} would now be handled automatically and right"
        )
    changed = [i for i in report.items if i["change"] != "unchanged"][:20]
    if changed:
        detail = Table("item", "change", "original", "replay")
        for i in changed:
            o, r = i["original"], i["replay"]
            detail.add_row(
                i["item_id"],
                i["change"],
                f"{o['verdict']} {o['label'] or o['proposal_label'] or ''}",
                f"{r['verdict']} {r['label'] or r['proposal_label'] or ''}",
            )
        console.print(detail)
    if STATE.verbose or output:
        console.print(f"[dim]full report: {output or '--json'}[/]")


def register(root: typer.Typer) -> None:
    """Add the top-level ``replay`` command."""
    root.command("replay")(handle_errors(replay))
