"""``python -m sluice``: the same as the ``sluice`` command."""

from sluice.cli.main import app

app(prog_name="sluice")
