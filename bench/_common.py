"""Shared plumbing for benchmarks: arguments, machine facts, results into docs/benchmarks.md."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"


def parser(description: str, default_data: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"dataset folder (default: $SLUICE_DATA_DIR/{default_data}, "
        f"SLUICE_DATA_DIR defaulting to ../shared/data)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object with every figure on the last line",
    )
    p.add_argument("--no-docs", action="store_true", help=f"do not update {DOC.relative_to(ROOT)}")
    return p


def data_dir(arg: Path | None, name: str) -> Path:
    """The dataset folder: ``--data`` or ``$SLUICE_DATA_DIR/<name>``."""
    from sluice.config import Settings

    path = arg or Settings().data_dir / name
    if not path.is_dir():
        sys.exit(f"error: no dataset folder at {path} (give --data PATH or set SLUICE_DATA_DIR)")
    return path


def machine() -> dict[str, Any]:
    """Facts that make a figure interpretable."""
    load = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "load_1min_at_start": load,
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }


def command_line() -> str:
    """The command that produced the figures, as a reader would type it."""
    module = sys.modules["__main__"].__spec__
    name = module.name if module else Path(sys.argv[0]).stem
    return " ".join(["python -m", name, *map(shlex.quote, sys.argv[1:])])


class Timer:
    """``with Timer() as t: ...; t.seconds``."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def write_section(
    name: str, title: str, rows: Sequence[tuple[str, str]], notes: str, result: dict[str, Any]
) -> None:
    """Replace this benchmark's section in docs/benchmarks.md (other sections stay)."""
    DOC.parent.mkdir(exist_ok=True)
    text = (
        DOC.read_text()
        if DOC.exists()
        else (
            "# Benchmarks\n\nFigures measured by the benchmarks in `bench/`. Each section is "
            "rewritten by the command shown in it; the JSON of the last run is kept in "
            "`bench/results/` (not committed).\n"
        )
    )
    table = "\n".join(["| figure | value |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows]])
    facts = result.get("machine", {})
    section = (
        f"<!-- bench:{name} -->\n## {title}\n\n"
        f"Command: `{command_line()}`  \n"
        f"Run on {facts.get('date')}: Python {facts.get('python')}, {facts.get('cpus')} CPUs "
        f"({facts.get('machine')}), load average {facts.get('load_1min_at_start')} at start.\n\n"
        f"{table}\n\n{notes.strip()}\n<!-- /bench:{name} -->"
    )
    pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.S)
    text = (
        pattern.sub(lambda _: section, text)
        if pattern.search(text)
        else (text.rstrip() + "\n\n" + section + "\n")
    )
    DOC.write_text(text)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2))


def emit(result: dict[str, Any], as_json: bool, human: Sequence[tuple[str, str]]) -> None:
    """Print the figures; with ``--json`` the last line is the JSON object."""
    for key, value in human:
        print(f"{key:<48} {value}")
    if as_json:
        print(json.dumps(result, default=str))


@contextmanager
def scratch_database(server_url: str | None) -> Iterator[str | None]:
    """A throw-away PostgreSQL database on ``server_url``'s server (None: SQLite default).

    Benchmarks never write into a database a user named: they create their own next to
    it and drop it afterwards.
    """
    if not server_url:
        yield None
        return
    import psycopg

    name = f"sluice_bench_{uuid.uuid4().hex[:10]}"
    base = server_url.rsplit("/", 1)[0]
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
