"""A reviewer's decision from another process resumes the waiting item, restarts included."""

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


def _wait_for(predicate: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _item(env: dict[str, str], item_id: str) -> dict[str, Any]:
    out = sluice(env, "items", "show", item_id, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _start_worker(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sluice",
            "worker",
            "-p",
            "toy-echo",
            "--executor-id",
            "reviewer-test",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def test_decision_from_the_cli_resumes_a_live_worker_and_a_restarted_one(
    tmp_path: Path, database_url: str | None, toy_events: Any
) -> None:
    env = cli_env(tmp_path / "home", database_url)
    events = toy_events(10, source="review-xp")  # items 0 and 5 ask for review
    assert sluice(env, "submit", "toy-echo", str(events)).returncode == 0
    drained = sluice(env, "worker", "-p", "toy-echo", "--drain", "--executor-id", "reviewer-test")
    assert drained.returncode == 0, drained.stderr
    tasks = json.loads(sluice(env, "review", "list", "--json").stdout)
    assert len(tasks) == 2

    # 1. A live worker waits; the decision comes from another process.
    worker = _start_worker(env)
    try:
        decided = sluice(
            env,
            "review",
            "decide",
            tasks[0]["id"],
            "--label",
            "OTHER",
            "--reviewer",
            "ana",
            "--reason",
            "wrong label",
            "--json",
        )
        assert decided.returncode == 0, decided.stderr
        _wait_for(lambda: _item(env, tasks[0]["item_id"])["status"] == "completed")
        assert _item(env, tasks[0]["item_id"])["outbox"]["payload"]["label"] == "OTHER"

        # 2. The worker dies while the other item waits; the decision arrives meanwhile.
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        assert sluice(env, "review", "decide", tasks[1]["id"], "--approve").returncode == 0
        assert _item(env, tasks[1]["item_id"])["status"] == "waiting_review"
        worker = _start_worker(env)
        _wait_for(lambda: _item(env, tasks[1]["item_id"])["status"] == "completed")
    finally:
        worker.kill()
        worker.wait()

    second = sluice(env, "review", "decide", tasks[1]["id"], "--reject", "--json")
    assert second.returncode == 1
    assert json.loads(second.stdout)["error"]["code"] == "decision_conflict"
    outbox = json.loads(sluice(env, "outbox", "list", "--json").stdout)
    assert len(outbox) == 10 and len({r["item_id"] for r in outbox}) == 10
