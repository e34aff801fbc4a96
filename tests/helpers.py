"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

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
