"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sluice.config import Settings

#: The PostgreSQL server tests use (one env var; the machine's server by default).
POSTGRES_URL = os.environ.get(
    "SLUICE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def make_settings(
    home: Path, database_url: str | None, model_cache: Path, **extra: Any
) -> Settings:
    """Settings for tests: fast polling, a small executor id, a shared model cache."""
    values: dict[str, Any] = {
        "home": home,
        "database_url": database_url,
        "model_cache": model_cache,
        "poll_interval_seconds": 0.05,
        "executor_id": "test-worker",
        "batch_size": 16,
        # Off unless a test samples on purpose: a sampled audit task is one more task.
        "audit_sample_rate": 0.0,
    }
    values.update(extra)
    return Settings(**values)


def postgres_database() -> Iterator[str]:
    """A fresh database on the machine's PostgreSQL; yields its URL, drops it afterwards."""
    name = f"sluice_t_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True)
    except psycopg.OperationalError as exc:  # pragma: no cover - depends on the machine
        pytest.fail(f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
