"""``python -m sluice``: the same as the ``sluice`` command."""

from sluice.cli.main import app

if __name__ == "__main__":  # encoder processes re-import this module; they must not run it
    app(prog_name="sluice")
