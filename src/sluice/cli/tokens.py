"""``sluice tokens``: API tokens for people and machines (shown once, stored as a hash)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from sluice.cli._common import (
    JsonOption,
    console,
    emit_json,
    handle_errors,
    local_principal,
    runtime,
)

__all__ = ["app"]

app = typer.Typer(
    help=(
        "API tokens. Roles: admin, operator, reviewer, auditor, service (see "
        "docs/governance.md). A token is printed once and only its hash is kept."
    ),
    no_args_is_help=True,
)


@app.command("create")
@handle_errors
def create(
    role: Annotated[str, typer.Option(help="admin, operator, reviewer, auditor or service.")],
    name: Annotated[str, typer.Option(help="Who or what the token is for.")] = "token",
    expires: Annotated[float, typer.Option(help="Days until it expires; 0 for never.", min=0)] = 90,
    pipeline: Annotated[
        list[str] | None, typer.Option(help="Only these pipelines (repeatable; default all).")
    ] = None,
    queue: Annotated[
        list[str] | None, typer.Option(help="Reviewers: only these queues (repeatable).")
    ] = None,
    pii: Annotated[bool, typer.Option("--pii", help="May see personal data unmasked.")] = False,
    as_json: bool = JsonOption,
) -> None:
    """Create a token and print it once. Keep it: it cannot be shown again."""
    from sluice.governance import authorize, create_token

    me = local_principal()
    with runtime() as rt:
        authorize(rt.store, me, "tokens:manage")
        token, record = create_token(
            rt.store,
            name=name,
            role=role,
            created_by=me.actor,
            expires_days=expires or None,
            pipelines=pipeline,
            queues=queue,
            pii_clearance=pii,
        )
    if as_json:
        emit_json(record.to_dict() | {"token": token})
        return
    console.print(f"token {record.id} ({record.role}) for {record.name}:")
    print(token)
    console.print("[dim]store it now: only its hash is kept.[/]")


@app.command("list")
@handle_errors
def list_cmd(as_json: bool = JsonOption) -> None:
    """List tokens (never the tokens themselves) with their state."""
    from sluice.governance import authorize, list_tokens

    with runtime() as rt:
        authorize(rt.store, local_principal(), "tokens:manage")
        records = list_tokens(rt.store)
    if as_json:
        emit_json([r.to_dict() for r in records])
        return
    table = Table("id", "name", "role", "state", "scopes", "expires", "last used")
    for r in records:
        scopes = ", ".join([*(r.pipelines or []), *(f"queue:{q}" for q in r.queues or [])])
        table.add_row(
            r.id,
            r.name,
            r.role,
            r.state,
            scopes or "all",
            r.expires_at.isoformat()[:10] if r.expires_at else "never",
            r.last_used_at.isoformat()[:19] if r.last_used_at else "-",
        )
    console.print(table)


@app.command("revoke")
@handle_errors
def revoke(
    token_id: Annotated[str, typer.Argument(help="Token id (tok_...).")],
    as_json: bool = JsonOption,
) -> None:
    """Revoke a token: its next use is refused."""
    from sluice.governance import authorize, revoke_token

    me = local_principal()
    with runtime() as rt:
        authorize(rt.store, me, "tokens:manage")
        record = revoke_token(rt.store, token_id, revoked_by=me.actor)
    if as_json:
        emit_json(record.to_dict())
    else:
        console.print(f"token {record.id} is {record.state}")
