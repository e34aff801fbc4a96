"""``sluice``: the command line.

Every command reads its configuration from ``SLUICE_*`` environment variables (see
``docs/configuration.md``); ``--home`` and ``--database-url`` override them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.logging import RichHandler

from sluice import __version__
from sluice.cli import (
    audit,
    items,
    kb,
    model_usage,
    models,
    monitors,
    prompts,
    replay,
    review,
    run,
    serve,
    tokens,
)
from sluice.cli._common import STATE, err_console

__all__ = ["app"]

app = typer.Typer(
    name="sluice",
    help=(
        "Sluice runs governed AI automation: durable pipelines that mix models, rules and "
        "people, and keep the proof of what happened.\n\n"
        "Start with `sluice demo support-triage`, then look around with `sluice items list`, "
        "`sluice review list` and `sluice outbox list`."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"sluice {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    home: Annotated[
        Path | None,
        typer.Option("--home", envvar="SLUICE_HOME", help="State directory (default ./.sluice)."),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar="SLUICE_DATABASE_URL",
            help="Store URL; default: SQLite under --home. `postgresql://...` uses PostgreSQL.",
            show_default=False,
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    """Global options."""
    STATE.home, STATE.database_url, STATE.verbose = home, database_url, verbose
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
    )


run.register(app)
app.add_typer(items.app, name="items")
app.add_typer(items.outbox_app, name="outbox")
app.add_typer(items.rejects_app, name="rejects")
app.add_typer(review.app, name="review")
model_usage.register(models.app)
app.add_typer(models.app, name="models")
app.add_typer(kb.app, name="kb")
app.add_typer(prompts.app, name="prompts")
app.add_typer(audit.app, name="audit")
app.add_typer(tokens.app, name="tokens")
app.add_typer(monitors.app, name="monitors")
app.add_typer(monitors.alerts_app, name="alerts")
audit.register(app)
replay.register(app)
serve.register(app)
