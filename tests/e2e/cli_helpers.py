"""Running ``sluice`` in subprocesses, as users do, for the end-to-end tests."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

TESTS = Path(__file__).parent.parent
ROOT = TESTS.parent


def crash_demo() -> ModuleType:
    """``scripts/crash_demo.py``, imported (the test runs the reader's script)."""
    spec = importlib.util.spec_from_file_location("crash_demo", ROOT / "scripts" / "crash_demo.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cli_env(home: Path, database_url: str | None, **extra: str) -> dict[str, str]:
    """Environment for a ``sluice`` subprocess that also knows the toy pipelines."""
    env = dict(os.environ)
    env.update(
        {
            "SLUICE_HOME": str(home),
            "SLUICE_PIPELINE_MODULES": json.dumps(["toy_pipelines"]),
            "PYTHONPATH": os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]),
            "SLUICE_POLL_INTERVAL_SECONDS": "0.05",
            "SLUICE_AUDIT_SAMPLE_RATE": "0",
            **extra,
        }
    )
    if database_url:
        env["SLUICE_DATABASE_URL"] = database_url
    return env


def sluice(env: dict[str, str], *args: str, timeout: float = 300) -> Any:
    """Run ``sluice ARGS`` to completion; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "sluice", *args],
        env=env,
        timeout=timeout,
        capture_output=True,
        text=True,
    )
