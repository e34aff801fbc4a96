"""What every command shares: settings from global options, output, errors."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sluice.config import Settings
from sluice.errors import SluiceError

__all__ = [
    "CliState",
    "JsonOption",
    "console",
    "emit_json",
    "err_console",
    "handle_errors",
    "local_principal",
    "progress_bar",
    "runtime",
]

F = TypeVar("F", bound=Callable[..., Any])

console = Console()
err_console = Console(stderr=True)

#: The ``--json`` flag every listing command takes.
JsonOption = typer.Option(False, "--json", help="Print one JSON document for scripts.")


@dataclass
class CliState:
    """Global options, set by the top-level callback."""

    home: Path | None = None
    database_url: str | None = None
    verbose: bool = False

    def settings(self, **extra: Any) -> Settings:
        """Settings from the environment, overridden by the global options."""
        overrides = {"home": self.home, "database_url": self.database_url, **extra}
        return Settings(**{k: v for k, v in overrides.items() if v is not None})


STATE = CliState()


def runtime(**extra: Any) -> Any:
    """A :class:`sluice.runtime.Runtime` for the current options (imported lazily)."""
    from sluice.runtime import Runtime

    return Runtime(STATE.settings(**extra))


def local_principal() -> Any:
    """Who the CLI acts as: the local admin, named by SLUICE_LOCAL_ACTOR or the OS user."""
    import getpass

    from sluice.governance import local_admin

    return local_admin(STATE.settings().local_actor or getpass.getuser())


def emit_json(value: Any) -> None:
    """Print ``value`` as one JSON document on stdout."""
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def handle_errors(fn: F) -> F:
    """Turn a :class:`SluiceError` into one clear line on stderr and exit code 1.

    With ``--json`` the error is also printed as ``{"error": {...}}`` on stdout, so a
    script always gets a JSON document.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SluiceError as exc:
            if kwargs.get("as_json"):
                emit_json({"error": exc.to_dict()})
            err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False)
            if exc.hint:
                err_console.print(f"[dim]hint: {exc.hint}[/]", highlight=False)
            if STATE.verbose:
                logging.getLogger("sluice").exception("details")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[str, int, int], None]]:
    """A ``progress(phase, done, total)`` callback drawing Rich bars on stderr.

    Disabled (a no-op) for ``--json`` output or when stderr is not a terminal.
    """
    if not enabled or not err_console.is_terminal:
        yield lambda phase, done, total: None
        return
    with Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    ) as bars:
        tasks: dict[str, Any] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bars.add_task(phase, total=total)
            bars.update(tasks[phase], completed=done, total=total)

        yield update
