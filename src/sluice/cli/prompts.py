"""``sluice prompts``: versioned prompt templates, evaluated and approved before they serve."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Column, Table

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
        "Prompts as code: prompt files (TOML front matter + a sandboxed Jinja2 template) "
        "with a name, versions and a content hash. A version serves only after its "
        "evaluation cases pass and a second person approves it.\n\n"
        "Start with `sluice prompts propose "
        "src/sluice/pipelines/support_triage/prompts/draft_reply.prompt`, then "
        "`sluice prompts evaluate support-triage.draft-reply 1`. The guide is docs/prompts.md."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

_STATE_STYLE = {
    "active": "bold green",
    "approved": "green",
    "passed": "cyan",
    "failed": "red",
    "proposed": "yellow",
    "retired": "dim",
}

NameArg = Annotated[str, typer.Argument(help="The prompt's name (its front matter `name`).")]
VersionArg = Annotated[str, typer.Argument(help="Version number: 2, v2 or NAME@v2.")]


def _version(text: str) -> int:
    digits = text.strip().lower().rsplit("@", 1)[-1].removeprefix("v")
    if not digits.isdigit():
        from sluice.errors import PromptError

        raise PromptError(
            f"{text!r} is not a version number",
            hint="give the number `sluice prompts list` shows: 2, v2 or NAME@v2",
        )
    return int(digits)


def _registry(rt: Any) -> Any:
    from sluice.governance.prompts import PromptRegistry

    return PromptRegistry(rt.store)


def _state(state: str) -> str:
    style = _STATE_STYLE.get(state)
    return f"[{style}]{state}[/]" if style else state


@app.command("list")
@handle_errors
def list_prompts(
    name: Annotated[str | None, typer.Option(help="Only this prompt.")] = None,
    as_json: bool = JsonOption,
) -> None:
    """List prompt versions: state, hash, author, approver, evaluation.

    One version per prompt is active: the one pipelines render. States: proposed,
    passed / failed (evaluated), approved, active, retired.

    Examples:
        sluice prompts list

        sluice prompts list --name support-triage.draft-reply --json
    """
    from sluice.governance import authorize

    me = local_principal()
    with runtime() as rt:
        authorize(rt.store, me, "prompts:read")
        versions = _registry(rt).list(name)
    if as_json:
        emit_json([v.to_dict(content=False) for v in versions])
        return
    if not versions:
        console.print(
            "no prompts yet: propose one with `sluice prompts propose PATH.prompt`",
            highlight=False,
        )
        return
    table = Table(
        Column("prompt", no_wrap=True), "state", "sha256", "proposed by", "approved by",
        "evaluation",
    )  # fmt: skip
    for v in versions:
        table.add_row(
            escape(v.ref),
            _state(v.state),
            v.sha256[:12],
            f"{escape(v.author)} {v.proposed_at:%Y-%m-%d %H:%M}",
            escape(v.approver or "-"),
            escape((v.evaluation or {}).get("summary", "-")),
        )
    console.print(table)


@app.command("show")
@handle_errors
def show(
    name: NameArg,
    version: Annotated[
        str | None, typer.Argument(help="Version (default: the active one).")
    ] = None,
    as_json: bool = JsonOption,
) -> None:
    """Show a version: its file, evaluation results, and the prompt's activations.

    Examples:
        sluice prompts show support-triage.draft-reply

        sluice prompts show support-triage.draft-reply 2 --json
    """
    from sluice.governance import authorize

    me = local_principal()
    with runtime() as rt:
        authorize(rt.store, me, "prompts:read")
        registry = _registry(rt)
        record = registry.get(name, _version(version) if version else None)
        history = registry.history(name)
    if as_json:
        emit_json({"version": record.to_dict(), "history": [h.to_dict() for h in history]})
        return
    console.print(
        f"[bold]{escape(record.ref)}[/] {_state(record.state)}, sha256 {record.sha256}",
        highlight=False,
    )
    console.print(
        f"proposed by {escape(record.author)} on {record.proposed_at:%Y-%m-%d %H:%M} UTC"
        + (f"; approved by {escape(record.approver)}" if record.approver else ""),
        highlight=False,
    )
    console.rule(escape(f"{record.ref} content"))
    console.print(record.content, markup=False, highlight=False, end="")
    console.rule()
    _print_evaluation(record.evaluation)
    for h in history:
        console.print(
            f"{h.at:%Y-%m-%d %H:%M} {h.action} v{h.version}"
            + (f" (was v{h.previous})" if h.previous else "")
            + f" by {escape(h.actor)}"
            + (f": {escape(h.reason)}" if h.reason else ""),
            highlight=False,
        )


@app.command("diff")
@handle_errors
def diff(
    name: NameArg,
    old: Annotated[str, typer.Argument(help="The version to compare from.")],
    new: Annotated[str, typer.Argument(help="The version to compare to.")],
    as_json: bool = JsonOption,
) -> None:
    """Print a unified diff between two versions of a prompt.

    Example:
        sluice prompts diff support-triage.draft-reply 1 2
    """
    from sluice.governance import authorize

    me = local_principal()
    with runtime() as rt:
        authorize(rt.store, me, "prompts:read")
        text = _registry(rt).diff(name, _version(old), _version(new))
    if as_json:
        emit_json({"name": name, "from": _version(old), "to": _version(new), "diff": text})
        return
    if not text:
        console.print("no difference", highlight=False)
        return
    for line in text.splitlines():
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else None
        console.print(line, style=style, markup=False, highlight=False)


@app.command("propose")
@handle_errors
def propose(
    path: Annotated[Path, typer.Argument(help="The .prompt file.")],
    as_json: bool = JsonOption,
) -> None:
    """Store a prompt file as a new version (proposed); you are its author.

    The file is checked first: front matter, template syntax, declared variables, and
    its evaluation cases (read now and kept with the version). A file whose content
    hash matches an existing version of the prompt stores nothing. Proposing never
    changes what serves.

    Example:
        sluice prompts propose src/sluice/pipelines/support_triage/prompts/draft_reply.prompt
    """
    me = local_principal()
    with runtime() as rt:
        proposal = _registry(rt).propose(path, me)
    if as_json:
        emit_json(proposal.to_dict())
        return
    v = proposal.version
    if not proposal.created:
        console.print(
            f"unchanged: {escape(v.ref)} ({v.state}) already has this content "
            f"(sha256 {v.sha256[:12]})",
            highlight=False,
        )
        return
    console.print(
        f"proposed {escape(v.ref)} (sha256 {v.sha256[:12]}); next: "
        f"`sluice prompts evaluate {escape(v.name)} {v.version}`",
        highlight=False,
    )


@app.command("evaluate")
@handle_errors
def evaluate(name: NameArg, version: VersionArg, as_json: bool = JsonOption) -> None:
    """Run a version's evaluation cases and record the result. Exit code 1 if it fails.

    Each case renders the prompt with its variables and checks what it expects
    (contains, not_contains, regex, max_chars) and, always, that every untrusted
    variable is delimited as data. Output checks (output_matches, output_json_schema)
    need a model and are skipped here; run them through
    `PromptRegistry.evaluate(..., model=...)`.

    Example:
        sluice prompts evaluate support-triage.draft-reply 1
    """
    me = local_principal()
    with runtime() as rt:
        result = _registry(rt).evaluate(name, _version(version), me)
    if as_json:
        emit_json(result.to_dict())
    else:
        _print_evaluation(result.to_dict())
        if result.passed:
            console.print(
                f"next: a second person approves it: `sluice prompts approve {escape(name)} "
                f"{_version(version)}`",
                highlight=False,
            )
    if not result.passed:
        raise typer.Exit(1)


@app.command("approve")
@handle_errors
def approve(
    name: NameArg,
    version: VersionArg,
    note: Annotated[str | None, typer.Option(help="Why (kept in the audit log).")] = None,
    as_json: bool = JsonOption,
) -> None:
    """Approve a version whose evaluation passed. Its author cannot approve it.

    Needs the prompts:approve permission (admins). The CLI acts as SLUICE_LOCAL_ACTOR
    (default: your OS user); the author is whoever proposed the version.

    Example:
        sluice prompts approve support-triage.draft-reply 2 --note "reviewed the diff"
    """
    me = local_principal()
    with runtime() as rt:
        record = _registry(rt).approve(name, _version(version), me, note=note)
    if as_json:
        emit_json(record.to_dict(content=False))
        return
    console.print(
        f"{escape(record.ref)} is approved by {escape(record.approver or '')}; activate it "
        f"with `sluice prompts activate {escape(name)} {record.version}`",
        highlight=False,
    )


@app.command("activate")
@handle_errors
def activate(
    name: NameArg,
    version: VersionArg,
    reason: Annotated[str | None, typer.Option(help="Why (kept in the history).")] = None,
    as_json: bool = JsonOption,
) -> None:
    """Make an approved version the one pipelines render; the active one is retired.

    Example:
        sluice prompts activate support-triage.draft-reply 2 --reason "shorter replies"
    """
    me = local_principal()
    with runtime() as rt:
        registry = _registry(rt)
        record = registry.activate(name, _version(version), me, reason=reason)
        history = registry.history(name)
    previous = history[-1].previous if history else None
    if as_json:
        emit_json({"active": record.to_dict(content=False), "previous": previous})
        return
    console.print(
        f"{escape(record.ref)} is active"
        + (f" (v{previous} is retired)" if previous is not None else ""),
        highlight=False,
    )


@app.command("rollback")
@handle_errors
def rollback(
    name: NameArg,
    reason: Annotated[str | None, typer.Option(help="Why (kept in the history).")] = None,
    as_json: bool = JsonOption,
) -> None:
    """Go back to the version that was active before the current one.

    Rolling back again walks further back through the activations.

    Example:
        sluice prompts rollback support-triage.draft-reply --reason "v3 drafts too long"
    """
    me = local_principal()
    with runtime() as rt:
        registry = _registry(rt)
        record = registry.rollback(name, me, reason=reason)
        history = registry.history(name)
    previous = history[-1].previous
    if as_json:
        emit_json({"active": record.to_dict(content=False), "previous": previous})
        return
    console.print(f"{escape(record.ref)} is active again (v{previous} is retired)", highlight=False)


def _print_evaluation(evaluation: dict[str, Any] | None) -> None:
    if not evaluation:
        console.print("not evaluated yet", highlight=False)
        return
    verdict = "[green]passed[/]" if evaluation.get("passed") else "[red]failed[/]"
    console.print(f"evaluation {verdict}: {escape(evaluation.get('summary', ''))}")
    for case in evaluation.get("cases", []):
        mark = "[green]ok[/]  " if case["passed"] else "[red]FAIL[/]"
        console.print(f"  {mark} {escape(case['name'])}", highlight=False)
        for check in case["checks"]:
            if not check["passed"]:
                console.print(
                    f"       {escape(check['property'])} {escape(repr(check['expected']))}: "
                    f"{escape(check.get('detail', ''))}",
                    highlight=False,
                )
