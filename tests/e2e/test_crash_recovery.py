"""Kill -9 a worker mid-run and restart it: nothing lost, no completed step run again."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import cli_env, crash_demo
from sqlalchemy import select

from sluice.config import Settings
from sluice.execution.tables import step_runs
from sluice.store import open_store

pytestmark = pytest.mark.e2e


def test_kill_9_mid_run_then_drain(
    tmp_path: Path, database_url: str | None, toy_events: Any
) -> None:
    home = tmp_path / "home"
    log = tmp_path / "executions.log"
    env = cli_env(home, database_url, SLUICE_BATCH_SIZE="16", TOY_EXECUTION_LOG=str(log))
    events = toy_events(300, source="crash", sleep_ms=2)

    result = crash_demo().run(
        home,
        items=300,
        pipeline="toy-steps",
        database_url=database_url,
        env=env,
        kill_after=60,
        events=events,
        source="crash",
    )

    assert result["ok"], result
    assert result["statuses"] == {"completed": 240, "waiting_review": 60}
    assert result["outbox_records"] == 240
    assert 60 <= result["settled_when_killed"] < 300, "the kill landed mid-run"

    # Every step execution was logged with its process id. A step that had completed
    # for an item in the killed process must not have executed again in the restarted one.
    executions: dict[tuple[str, str], set[int]] = defaultdict(set)
    for line in log.read_text().splitlines():
        item, step, pid = line.split()
        executions[(item, step)].add(int(pid))
    store = open_store(Settings(home=home, database_url=database_url))
    with store.read() as conn:
        completed = {
            (r.item_id, r.step): r.output["pid"]
            for r in conn.execute(
                select(step_runs.c.item_id, step_runs.c.step, step_runs.c.output).where(
                    step_runs.c.status == "completed", step_runs.c.step.in_(["first", "second"])
                )
            )
        }
    store.dispose()
    assert len(completed) == 600
    pids = {pid for pids in executions.values() for pid in pids}
    assert len(pids) == 2, "two worker processes ran the steps"
    repeated = [
        key
        for key, pid in completed.items()
        if executions[key] - {pid} and min(executions[key]) == pid
    ]
    assert repeated == [], f"completed steps executed again after the restart: {repeated[:5]}"
