"""A worker that dies for good: its runs are handed to a live worker with another id."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import cli_env, sluice

pytestmark = pytest.mark.e2e


def test_recover_hands_a_dead_workers_runs_to_a_live_one(
    tmp_path: Path, database_url: str | None, toy_events: Any
) -> None:
    env = cli_env(tmp_path / "home", database_url, SLUICE_BATCH_SIZE="10")
    events = toy_events(200, source="dead", sleep_ms=5)
    assert sluice(env, "submit", "toy-steps", str(events)).returncode == 0
    dead = subprocess.Popen(
        [sys.executable, "-m", "sluice", "worker", "-p", "toy-steps", "--executor-id", "host-a"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        done = json.loads(
            sluice(
                env, "items", "list", "--status", "completed", "--json", "--limit", "1000"
            ).stdout
        )
        if len(done) >= 20:
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    dead.send_signal(signal.SIGKILL)
    dead.wait()

    refused = sluice(env, "recover", "host-a")
    assert refused.returncode == 1
    assert "without --yes" in refused.stderr
    moved = sluice(env, "recover", "host-a", "--yes", "--json")
    assert moved.returncode == 0, moved.stderr
    assert sum(json.loads(moved.stdout)["resumed"].values()) >= 1

    drained = sluice(env, "worker", "-p", "toy-steps", "--drain", "--executor-id", "host-b")
    assert drained.returncode == 0, drained.stderr
    items = json.loads(sluice(env, "items", "list", "--json", "--limit", "1000").stdout)
    statuses = {i["status"] for i in items}
    assert len(items) == 200
    assert statuses == {"completed", "waiting_review"}, statuses
