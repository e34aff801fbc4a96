"""A PostgreSQL 16 server with pgvector for tests: the binaries of the PyPI package ``pgserver``.

The machine's PostgreSQL 15 has no pgvector (Debian 12 does not package it). ``pgserver``
carries PostgreSQL 16.2 with pgvector 0.6.2. ``initdb`` and ``postgres`` refuse to run as
root, and pgserver's own launcher then runs ``useradd``; so the server is started here
with the package's binaries directly, as the unprivileged ``nobody`` when the tests run as
root, in a temporary directory, on a free loopback port, with trust authentication.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

UNPRIVILEGED = "nobody"


def _bin_dir() -> Path:
    # Located, not imported: importing pgserver warns (platformdirs) and starts nothing
    # this harness needs.
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pgserver is not installed: pip install -e '.[dev]'")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _runnable_as(user: str, bin_dir: Path) -> Path:
    """``bin_dir``, or a copy of its installation that ``user`` can run.

    A checkout under a private home (``/root``, mode 700) keeps the unprivileged user
    out of the virtualenv; then the installation (binaries, libraries, extensions, 34 MB)
    is copied once to a world-readable temporary folder.
    """
    try:
        probe = subprocess.run(
            [str(bin_dir / "postgres"), "--version"], user=user, capture_output=True, check=False
        )
        if probe.returncode == 0:
            return bin_dir
    except OSError:  # the user may not even reach the file
        pass
    # The binaries find their libraries at $ORIGIN/../../../pgserver.libs (the wheel's
    # layout): the copy keeps pgserver/pginstall and pgserver.libs side by side.
    package = bin_dir.parent.parent
    libs = package.parent / "pgserver.libs"
    copy = Path(tempfile.gettempdir()) / f"sluice-pgserver-{os.stat(package).st_ino}"
    if not (copy / "pgserver" / "pginstall" / "bin" / "postgres").exists():
        staging = Path(tempfile.mkdtemp(prefix="sluice-pgserver-"))
        shutil.copytree(package / "pginstall", staging / "pgserver" / "pginstall", symlinks=True)
        if libs.is_dir():
            shutil.copytree(libs, staging / "pgserver.libs", symlinks=True)
        for folder in (staging, staging / "pgserver"):
            os.chmod(folder, 0o755)
        try:
            os.replace(staging, copy)
        except OSError:  # another process made the copy first
            shutil.rmtree(staging, ignore_errors=True)
    return copy / "pgserver" / "pginstall" / "bin"


@contextmanager
def pgvector_server() -> Iterator[str]:
    """Start a throwaway server; yields the URL of its ``postgres`` database."""
    as_root = os.geteuid() == 0
    user = UNPRIVILEGED if as_root else None
    bin_dir = _runnable_as(UNPRIVILEGED, _bin_dir()) if as_root else _bin_dir()
    base = Path(tempfile.mkdtemp(prefix="sluice-pgvector-"))
    data, log = base / "data", base / "server.log"
    if as_root:
        shutil.chown(base, user=UNPRIVILEGED)
    port = _free_port()
    run = {"check": True, "capture_output": True, "text": True, "user": user, "timeout": 120}
    try:
        subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--no-sync"],
            **run,
        )  # fmt: skip
        options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w",
             "start"],
            **run,
        )  # fmt: skip
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                check=False, capture_output=True, user=user, timeout=60,
            )  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new database on the server, dropped afterwards."""
    name = f"sluice_v_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":  # python tests/pgvector_server.py: a server for benchmarks
    import time

    with pgvector_server() as url:
        print(f"PostgreSQL 16 + pgvector at {url} (Ctrl-C stops and removes it)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
