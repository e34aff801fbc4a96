"""Helpers for tests that run ``sluice`` in subprocesses, as users do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).parent.parent
ROOT = TESTS.parent


@pytest.fixture
def toy_events(tmp_path: Path) -> Any:
    """Write N toy events (every fifth asks for review) to a JSONL file."""

    def write(n: int, *, source: str = "toy", sleep_ms: int = 0) -> Path:
        path = tmp_path / f"{source}.jsonl"
        with path.open("w") as fh:
            for i in range(n):
                text = f"item {i}" + (" review" if i % 5 == 0 else "")
                fh.write(
                    json.dumps(
                        {
                            "specversion": "1.0",
                            "id": f"ev-{i:05d}",
                            "source": source,
                            "type": "t",
                            "data": {"text": text, "sleep_ms": sleep_ms},
                        }
                    )
                    + "\n"
                )
        return path

    return write
