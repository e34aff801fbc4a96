"""Two worker processes on PostgreSQL share one pipeline's queue without double actions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import cli_env, sluice
from sqlalchemy import func, select

from sluice.config import Settings
from sluice.execution import queue_counts
from sluice.execution.tables import batches, outbox, step_runs
from sluice.store import open_store

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_two_workers_share_the_queue(
    tmp_path: Path, database_url: str | None, toy_events: Any
) -> None:
    assert database_url is not None
    events = toy_events(400, source="pair", sleep_ms=3)
    # Audit sampling on: both workers update the same stratum counters at once.
    env = cli_env(
        tmp_path / "home", database_url, SLUICE_BATCH_SIZE="10", SLUICE_AUDIT_SAMPLE_RATE="0.5"
    )
    assert sluice(env, "submit", "toy-steps", str(events)).returncode == 0
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sluice",
                "worker",
                "-p",
                "toy-steps",
                "--drain",
                "--executor-id",
                f"host-{n}",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in (1, 2)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err

    store = open_store(Settings(home=tmp_path / "home", database_url=database_url))
    try:
        assert queue_counts(store) == {"completed": 320, "waiting_review": 80}
        with store.read() as conn:
            claimed_by = dict(
                conn.execute(
                    select(batches.c.executor_id, func.count()).group_by(batches.c.executor_id)
                ).all()
            )
            ran_on = dict(
                conn.execute(
                    select(step_runs.c.executor_id, func.count(func.distinct(step_runs.c.batch_id)))
                    .where(step_runs.c.step == "first")
                    .group_by(step_runs.c.executor_id)
                ).all()
            )
            actions = conn.execute(
                select(func.count(), func.count(func.distinct(outbox.c.item_id))).select_from(
                    outbox
                )
            ).one()
            duplicates = conn.execute(
                select(func.count()).select_from(step_runs).where(step_runs.c.status == "duplicate")
            ).scalar_one()
    finally:
        store.dispose()
    assert set(claimed_by) == {"host-1", "host-2"}, f"both claimed batches: {claimed_by}"
    assert set(ran_on) == {"host-1", "host-2"}, f"both ran batches: {ran_on}"
    assert min(ran_on.values()) >= 5
    assert tuple(actions) == (320, 320), "one action per auto-handled item, none twice"
    assert duplicates == 0
