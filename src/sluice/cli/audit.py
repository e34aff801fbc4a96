"""Commands for auditors: verify the audit chain, export it, seal it; an item's lineage."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from sluice.cli._common import (
    STATE,
    JsonOption,
    console,
    emit_json,
    handle_errors,
    local_principal,
    runtime,
)
from sluice.errors import AuditError

__all__ = ["app", "register"]

app = typer.Typer(
    help=(
        "The tamper-evident audit log: every state change, hash-chained and sealed by "
        "signed checkpoints. `verify` proves it was not altered."
    ),
    no_args_is_help=True,
)

PublicKeys = Annotated[
    list[Path] | None,
    typer.Option(
        "--public-key",
        help="PEM public key of another host's checkpoints (repeatable). The local key is "
        "always used when it exists.",
        exists=True,
        dir_okay=False,
    ),
]


def _keys(settings: Any, extra: list[Path] | None) -> list[Any]:
    from sluice.governance import load_public_key, load_signing_key

    keys = [load_public_key(p) for p in extra or []]
    if settings.audit_key.exists():
        keys.append(load_signing_key(settings.audit_key, create=False).public_key())
    return keys


def _print_report(report: Any, source: str) -> None:
    state = "[green]intact[/]" if report.ok else "[bold red]BROKEN[/]"
    console.print(f"audit chain of {source}: {state}")
    console.print(
        f"  {report.entries} entries, head seq {report.head_seq}, hash {report.head_hash[:16]}…"
    )
    console.print(
        f"  {report.checkpoints} checkpoint(s) verified; sealed through seq "
        f"{report.sealed_through}; {report.unsealed} entries not sealed yet"
    )
    if report.unverified_checkpoints:
        console.print(
            f"  [yellow]{report.unverified_checkpoints} checkpoint(s) signed by keys not given "
            f"({', '.join(report.unknown_keys)}): pass them with --public-key[/]"
        )
    if report.first_break:
        b = report.first_break
        console.print(f"  [bold red]first break at seq {b.seq}: {b.kind}[/] - {b.message}")


@app.command("verify")
@handle_errors
def verify(
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", help="Verify an export (JSONL) instead of the store.", dir_okay=False
        ),
    ] = None,
    public_key: PublicKeys = None,
    allow_unknown_keys: Annotated[
        bool,
        typer.Option(
            help="Pass even if a checkpoint is signed by a key not given (not recommended: "
            "a rewritten, re-signed chain looks exactly like that)."
        ),
    ] = False,
    as_json: bool = JsonOption,
) -> None:
    """Check every entry's hash, every link and every checkpoint signature.

    Exit code 0 when the chain is intact, 1 when it is not (the first break is named:
    modified, deleted, inserted, reordered, rewritten, forged, or unverified for a
    checkpoint signed by a key you did not give).
    """
    from sluice.governance import AuditEntry, verify_entries
    from sluice.governance import verify as verify_store

    settings = STATE.settings()
    keys = _keys(settings, public_key)
    if file is not None:
        try:
            with file.open(encoding="utf-8") as fh:
                entries = [AuditEntry.from_json(json.loads(line)) for line in fh if line.strip()]
        except (OSError, ValueError, KeyError) as exc:
            raise AuditError(f"cannot read the export {file}: {exc}") from exc
        report = verify_entries(entries, keys, allow_unknown_keys=allow_unknown_keys)
        source = str(file)
    else:
        with runtime() as rt:
            report = verify_store(rt.store, keys, allow_unknown_keys=allow_unknown_keys)
            source = "the store"
    if as_json:
        emit_json(report.to_dict())
    else:
        _print_report(report, source)
    if not report.ok:
        raise typer.Exit(1)


@app.command("export")
@handle_errors
def export(
    since: Annotated[
        datetime | None,
        typer.Option(help="Only entries at or after this time (ISO 8601, UTC if no zone)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write the audit log as JSONL, one entry per line, for external archiving.

    A full export verifies on its own with `sluice audit verify --file`.
    """
    from datetime import UTC

    from sluice.governance import iter_entries

    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    out = output.open("w", encoding="utf-8") if output else sys.stdout
    count = 0
    try:
        with runtime() as rt, rt.store.read() as conn:
            for entry in iter_entries(conn, since=since):
                out.write(json.dumps(entry.to_json(), ensure_ascii=False) + "\n")
                count += 1
    finally:
        if output:
            out.close()
    if output:
        console.print(f"wrote {count} entries to {output}")


@app.command("checkpoint")
@handle_errors
def checkpoint_cmd(as_json: bool = JsonOption) -> None:
    """Seal the chain now: sign its head with this host's key (workers do it periodically)."""
    from sluice.governance import checkpoint, load_signing_key

    settings = STATE.settings()
    key = load_signing_key(settings.audit_key)
    with runtime() as rt:
        entry = checkpoint(rt.store, key, actor=local_principal().actor)
    result = {"sealed": entry is not None, "entry": entry.to_json() if entry else None}
    if as_json:
        emit_json(result)
    elif entry is None:
        console.print("nothing new to seal")
    else:
        console.print(f"sealed through seq {entry.seq - 1} (checkpoint entry {entry.seq})")


@app.command("public-key")
@handle_errors
def public_key_cmd() -> None:
    """Print this host's checkpoint public key (PEM), for auditors."""
    from sluice.governance import key_id, load_signing_key, public_key_pem

    key = load_signing_key(STATE.settings().audit_key)
    sys.stdout.write(public_key_pem(key))
    console.print(f"[dim]key id {key_id(key.public_key())}[/]", highlight=False)


def lineage(
    item_id: Annotated[str, typer.Argument(help="Item id (itm_...).")],
    as_json: bool = JsonOption,
) -> None:
    """Show the whole chain behind an item's output, with the audit entries that back it.

    The event, every step with its attempts, model name and version, the review decision
    with reviewer and reason, and the action. `intact` says whether each record still
    has the digest its audit entry recorded.
    """
    from sluice.execution import item_lineage

    with runtime() as rt:
        record = item_lineage(rt.store, item_id)
    if as_json:
        emit_json(record)
        return
    item = record["item"]
    console.print(
        f"[bold]{item['id']}[/] {item['pipeline']} - {item['status']} (round {item['round']})"
    )
    ev = record["event"]
    console.print(f"event {ev['source']} / {ev['event_id']}  {_proof(ev)}")
    if item.get("trace_id"):  # look it up in the tracing backend (docs/observability.md)
        console.print(f"trace {item['trace_id']}")
    table = Table(
        "step", "round", "attempt", "status", "model", "ms", "audit seq", "hash", "intact"
    )
    for s in record["steps"]:
        model = f"{s['model']['name']}@{s['model']['version']}" if s["model"] else ""
        audit = s["audit"] or {}
        table.add_row(
            s["step"],
            str(s["round"]),
            str(s["attempt"]),
            s["status"] + (f" ({s['error_type']})" if s["error_type"] else ""),
            model,
            f"{s['latency_ms']:.1f}",
            str(audit.get("seq", "-")),
            (audit.get("hash") or "-")[:12],
            "yes" if s["intact"] else "[bold red]NO[/]",
        )
    console.print(table)
    for s in record["steps"]:
        for lookup in s.get("retrieval") or []:
            cited = ", ".join(
                f"{h['citation']['title'] or h['citation']['source']} [{h['chunk_id'][:8]}]"
                for h in lookup["hits"]
            )
            console.print(
                f"  {s['step']}: knowledge {lookup['index_version']} ({lookup['mode']}), "
                f"{len(lookup['hits'])} passages: {cited or 'none'}"
            )
        for call in s.get("model_calls") or []:
            route = [f"tier {call['tier']}"]
            if call.get("canary"):
                route.append("canary")
            if call.get("fallbacks"):
                route.append(f"after {', '.join(call['fallbacks'])} failed")
            if call.get("escalated_from"):
                route.append(f"escalated from {', '.join(call['escalated_from'])}")
            console.print(
                f"  {s['step']}: {call['endpoint']} {call['model']}@{call['version']} "
                f"({'; '.join(route)}), cache {call['cache']}, "
                f"{call['latency_ms']:.1f} ms, cost {call['cost']:.6f}"
                + (
                    f", tokens {call['input_tokens']}/{call['output_tokens']}"
                    if call.get("input_tokens") or call.get("output_tokens")
                    else ""
                )
            )
    console.print(f"model cost of this item: {record['cost']['models']:.6f}")
    for r in record["reviews"]:
        if "decided" in r:
            console.print(
                f"decided by {r['reviewer']}: {r['outcome']} {r['label'] or ''}"
                f"{' - ' + r['reason'] if r['reason'] else ''}  (audit seq {r['decided']['seq']})"
            )
    if record["action"]:
        a = record["action"]
        console.print(f"action {a['action']} {json.dumps(a['payload'])}  {_proof(a)}")
    verdict = "[green]intact[/]" if record["intact"] else "[bold red]ALTERED[/]"
    console.print(f"lineage: {verdict} (check the chain itself with `sluice audit verify`)")


def _proof(part: dict[str, Any]) -> str:
    audit = part.get("audit") or {}
    ok = "intact" if part.get("intact") else "[bold red]NOT INTACT[/]"
    return f"[dim](audit seq {audit.get('seq', '-')}, {ok})[/]"


def register(root: typer.Typer) -> None:
    """Add the top-level ``lineage`` command."""
    root.command("lineage")(handle_errors(lineage))
