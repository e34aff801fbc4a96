"""Documentation that must match the code: settings, and examples that run."""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path
from typing import Any

import pytest

from sluice.config import Settings

DOCS = Path(__file__).parent.parent / "docs"


def test_every_setting_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    documented = set(re.findall(r"`SLUICE_([A-Z_]+)`", text))
    fields = {name.upper() for name in Settings.model_fields}
    assert fields - documented == set(), "settings missing from docs/configuration.md"
    assert documented - fields - {"TEST_POSTGRES_URL"} == set(), "documented but not settings"


@pytest.mark.parametrize(
    "module",
    [
        "sluice.config",
        "sluice.store._types",
        "sluice.store._engine",
        "sluice.execution.events",
        "sluice.execution.retry",
        "sluice.execution.pipeline",
        "sluice.models.classifier",
        "sluice.models.registry",
        "sluice.pipelines.support_triage.priority",
        "sluice.observability.report",
    ],
)
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


_GUIDE: dict[str, Any] = {}


def _guide_pipeline() -> Any:
    # Declared once per process: a pipeline name belongs to one declaration.
    if not _GUIDE:
        code = re.search(r"```python\n(.*?)```", (DOCS / "writing-pipelines.md").read_text(), re.S)
        assert code is not None
        exec(compile(code.group(1), "writing-pipelines.md", "exec"), _GUIDE)
    return _GUIDE["tickets"]


def test_the_pipeline_guide_example_runs(runtime: Any) -> None:
    """docs/writing-pipelines.md: its code declares a pipeline that really runs."""
    import json

    from sluice.execution import get_item, parse_jsonl, submit_lines
    from sluice.review import list_tasks

    pipeline = _guide_pipeline()
    lines = [
        json.dumps(
            {
                "specversion": "1.0",
                "id": str(i),
                "source": "guide",
                "type": "t",
                "data": {"text": text},
            }
        )
        for i, text in enumerate(["I want a refund", "reset my password", "hello?"])
    ]
    report = submit_lines(
        runtime.store, pipeline, parse_jsonl(lines, max_bytes=10_000), origin="guide"
    )
    runtime.worker(["tickets"]).run(drain=True)
    first = get_item(runtime.store, report.accepted[0][1])
    assert first["outbox"]["payload"] == {"queue": "billing", "ticket": "0"}
    (task,) = list_tasks(runtime.store)
    assert task.reason == "no keyword matched"
