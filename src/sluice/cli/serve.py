"""``sluice serve``: the HTTP API and the review app in one process."""

from __future__ import annotations

from typing import Annotated

import typer

from sluice.cli._common import STATE, console, handle_errors

__all__ = ["register"]


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    workers: Annotated[
        int,
        typer.Option(help="API processes (state is in the database, so any number works)."),
    ] = 1,
) -> None:
    """Serve the API (/v1, OpenAPI at /docs) and the review app (/) over HTTP.

    Tokens come from `sluice tokens create`. Run workers separately (`sluice worker`):
    the API takes events and decisions, the workers run the pipelines.
    """
    import uvicorn

    from sluice.api import create_app

    settings = STATE.settings()
    if workers == 1:  # processes started by uvicorn (--workers) build their own app
        from sluice.observability import configure_tracing

        configure_tracing(settings)  # SLUICE_OTLP_ENDPOINT set: intake and review spans
    console.print(f"Sluice on http://{host}:{port}  (API docs at /docs; Ctrl-C stops)")
    if workers > 1:
        # Worker processes build the app from the environment: hand them the options.
        import os

        os.environ["SLUICE_HOME"] = str(settings.home)
        if settings.database_url:
            os.environ["SLUICE_DATABASE_URL"] = settings.database_url
        uvicorn.run(
            "sluice.api.factory:app", host=host, port=port, workers=workers, log_level="warning"
        )
    else:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


def register(root: typer.Typer) -> None:
    """Add ``serve`` to the top-level app."""
    root.command("serve")(handle_errors(serve))
