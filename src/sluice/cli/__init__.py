"""The command-line edge (Typer + Rich): parse, call the planes, render. No business logic."""

from sluice.cli.main import app

__all__ = ["app"]
