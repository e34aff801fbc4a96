"""Small pipelines for execution tests. Imported by tests and by worker subprocesses.

* ``toy-echo``: one step that upper-cases the text; the gate sends texts containing
  "review" to review, the rest act automatically.
* ``toy-steps``: two steps that log every execution to a file (the crash test counts
  executions), slowed by ``data.sleep_ms`` so a worker can be killed mid-run.
* ``toy-flaky``: fails the first attempts of items whose text says "flaky", times out on
  "slow", and always raises on "poison".

The action of every toy raises for texts containing a word in ``BROKEN_ACTIONS`` (a test
adds and removes words), to fail an item at its action and retry it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from sluice.execution import (
    Action,
    Auto,
    ItemView,
    Pipeline,
    Resolution,
    RetryPolicy,
    Review,
    ReviewSpec,
    StepContext,
    StepOutput,
    Verdict,
)


class Text(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")
    text: str
    sleep_ms: int = 0


def _gate(ctx: StepContext[Any], item: ItemView) -> Verdict:
    label = item.outputs[ctx.pipeline.steps[-1].name]["label"]
    proposal = {"label": label, "confidence": 0.5, "labels": [label, "OTHER"]}
    if "review" in item.data["text"]:
        return Review(reason="asked for review", proposal=proposal, queue="toy")
    return Auto(proposal)


BROKEN_ACTIONS: set[str] = set()


class ActionBroken(Exception):
    pass


def _act(ctx: StepContext[Any], item: ItemView, resolution: Resolution) -> Action | None:
    if any(word in item.data["text"] for word in BROKEN_ACTIONS):
        raise ActionBroken(f"the action is broken for {item.data['text']!r}")
    if resolution.outcome == "reject":
        return None
    return Action("echo", {"label": resolution.label, "by": resolution.decided_by})


# -- toy-echo --------------------------------------------------------------------------
echo = Pipeline("toy-echo", data_model=Text, review=ReviewSpec(sla_s=None, escalation_s=None))


@echo.step()
def shout(ctx: StepContext[Any], items: Sequence[ItemView]) -> list[StepOutput]:
    return [StepOutput({"label": i.data["text"].upper()}) for i in items]


echo.gate(_gate)
echo.action(_act)

# -- toy-steps -------------------------------------------------------------------------
steps = Pipeline("toy-steps", data_model=Text)


def _log_executions(step: str, items: Sequence[ItemView]) -> None:
    log = os.environ.get("TOY_EXECUTION_LOG")
    if log:
        with Path(log).open("a") as fh:
            for item in items:
                fh.write(f"{item.id} {step} {os.getpid()}\n")


@steps.step()
def first(ctx: StepContext[Any], items: Sequence[ItemView]) -> list[StepOutput]:
    _log_executions("first", items)
    time.sleep(sum(i.data.get("sleep_ms", 0) for i in items) / 1000)
    return [StepOutput({"pid": os.getpid()}) for _ in items]


@steps.step()
def second(ctx: StepContext[Any], items: Sequence[ItemView]) -> list[StepOutput]:
    _log_executions("second", items)
    time.sleep(sum(i.data.get("sleep_ms", 0) for i in items) / 1000)
    return [StepOutput({"pid": os.getpid(), "label": i.data["text"]}) for i in items]


steps.gate(_gate)
steps.action(_act)

# -- toy-flaky -------------------------------------------------------------------------
flaky = Pipeline("toy-flaky", data_model=Text)
ATTEMPTS: dict[str, int] = {}


class Poison(Exception):
    pass


@flaky.step(retry=RetryPolicy(max_attempts=3, initial_backoff_s=0.01, jitter=0), timeout_s=0.5)
def wobble(ctx: StepContext[Any], items: Sequence[ItemView]) -> list[StepOutput]:
    for item in items:
        ATTEMPTS[item.id] = ATTEMPTS.get(item.id, 0) + 1
    texts = [i.data["text"] for i in items]
    if any("poison" in t for t in texts):
        raise Poison("this item always fails")
    if any("slow" in t for t in texts):
        time.sleep(2)
    if any("flaky" in t for t in texts) and min(ATTEMPTS[i.id] for i in items) < 3:
        raise ConnectionError("transient")
    return [StepOutput({"label": t}) for t in texts]


flaky.gate(_gate)
flaky.action(_act)
