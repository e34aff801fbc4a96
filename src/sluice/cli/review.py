"""Commands for human review: list tasks, show one, decide."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from rich.table import Table

from sluice.cli._common import JsonOption, console, emit_json, handle_errors, runtime
from sluice.errors import InvalidDecisionError

__all__ = ["app"]

app = typer.Typer(help="Review tasks: items the gate sent to a human.", no_args_is_help=True)


@app.command("list")
@handle_errors
def list_tasks(
    queue: Annotated[str | None, typer.Option(help="Only this review queue.")] = None,
    state: Annotated[
        str,
        typer.Option(
            help="open (includes escalated and expired), decided, escalated, expired, or all."
        ),
    ] = "open",
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: bool = JsonOption,
) -> None:
    """List review tasks by priority, oldest first."""
    from sluice.review import list_tasks as query

    with runtime() as rt:
        tasks = query(rt.store, state=None if state == "all" else state, queue=queue, limit=limit)
    if as_json:
        emit_json([t.public_dict() for t in tasks])
        return
    table = Table("task", "kind", "queue", "state", "proposal", "confidence", "reason")
    for t in tasks:
        confidence = t.proposal.get("confidence")
        table.add_row(
            t.id,
            t.kind,
            t.queue,
            t.state,
            "(blind)" if t.blind else str(t.proposal.get("label", "")),
            "" if t.blind or not isinstance(confidence, float) else f"{confidence:.2f}",
            t.reason[:60],
        )
    console.print(table)
    if tasks:
        console.print(
            "Decide with `sluice review decide TASK --approve | --label LABEL | --reject`."
        )


@app.command("show")
@handle_errors
def show_task(
    task_id: Annotated[str, typer.Argument(help="Task id (tsk_...).")],
    as_json: bool = JsonOption,
) -> None:
    """Show what a decision needs: the message, the proposal, alternatives, the reason."""
    from sluice.execution import get_item
    from sluice.review import get_task

    with runtime() as rt:
        task = get_task(rt.store, task_id)
        item = get_item(rt.store, task.item_id)
    if as_json:
        emit_json({"task": task.public_dict(), "event": item["event"]})
        return
    console.print(
        f"[bold]{task.id}[/] ({task.state}, queue {task.queue}, due "
        f"{task.due_at:%Y-%m-%d %H:%M} UTC)"
    )
    console.print(f"message: {item['event']['data'].get('text', item['event']['data'])}")
    if task.blind:
        console.print(
            "blind audit: give the right label with `sluice review decide TASK --label L`; "
            "the model's answer is shown once decided"
        )
    else:
        console.print(
            f"proposal: [bold]{task.proposal.get('label')}[/] ({task.proposal.get('confidence')})"
        )
        for label, score in task.proposal.get("alternatives", []):
            console.print(f"  or {label} ({score})")
    console.print(f"why review: {task.reason}")


@app.command("decide")
@handle_errors
def decide(
    task_id: Annotated[str, typer.Argument(help="Task id (tsk_...).")],
    approve: Annotated[bool, typer.Option("--approve", help="Accept the proposal.")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="Reject it: no action.")] = False,
    label: Annotated[str | None, typer.Option("--label", help="Correct it to this label.")] = None,
    reason: Annotated[str | None, typer.Option(help="Why (kept in the lineage).")] = None,
    reviewer: Annotated[
        str | None, typer.Option(help="Who decides (default: the local user).")
    ] = None,
    as_json: bool = JsonOption,
) -> None:
    """Decide a task: exactly one of --approve, --reject or --label.

    The waiting item resumes in a worker (now, or when one starts) and its action is
    written to the outbox. A task takes one decision; a second is refused.
    """
    from sluice.review import Outcome
    from sluice.review import decide as record

    chosen = [
        name
        for name, on in (
            ("--approve", approve),
            ("--reject", reject),
            ("--label", label is not None),
        )
        if on
    ]
    if len(chosen) != 1:
        raise InvalidDecisionError("give exactly one of --approve, --reject or --label LABEL")
    outcome: Outcome = "approve" if approve else "reject" if reject else "correct"
    with runtime() as rt:
        decision = record(
            rt.store,
            task_id,
            reviewer=reviewer or getpass.getuser(),
            outcome=outcome,
            label=label,
            reason=reason,
        )
    if as_json:
        emit_json(decision.to_dict())
    else:
        console.print(
            f"recorded {decision.outcome}"
            f"{' as ' + decision.label if decision.label else ''} on {task_id}; "
            "the item resumes in a worker"
        )


@app.command("escalate")
@handle_errors
def escalate(
    task_id: Annotated[str, typer.Argument(help="Task id (tsk_...).")],
    reason: Annotated[str | None, typer.Option(help="Why a lead should look.")] = None,
    reviewer: Annotated[
        str | None, typer.Option(help="Who escalates (default: the local user).")
    ] = None,
    as_json: bool = JsonOption,
) -> None:
    """Hand a task to the pipeline's escalation queue instead of deciding it."""
    from sluice.execution import escalation_queue
    from sluice.review import escalate_task, get_task

    with runtime() as rt:
        task = escalate_task(
            rt.store,
            task_id,
            reviewer=reviewer or getpass.getuser(),
            queue=escalation_queue(get_task(rt.store, task_id).pipeline),
            reason=reason,
        )
    if as_json:
        emit_json(task.to_dict())
    else:
        console.print(f"{task.id} is escalated to queue {task.queue}")
