"""Declaring a pipeline: batch steps, a confidence gate, and one action.

A pipeline is an ordered list of **steps** followed by a **gate** and an **action**:

* A step receives a batch of items and returns one :class:`StepOutput` per item. It runs
  inside a durable, checkpointed run with its own retry policy and timeout; its result
  for every item is recorded as a step run (the lineage row). A step that completed for
  an item never runs again for that item, even after a crash.
* The gate looks at one item's outputs and answers :class:`Auto` or :class:`Review`.
* The action turns a :class:`Resolution` (automatic, or a reviewer's decision) into an
  :class:`Action` that is written to the outbox exactly once per item.

Steps must be idempotent in their external effects: a step that was running when its
process died runs again (at-least-once). Put effects in the action, which goes through
the outbox.

Example:
    >>> from pydantic import BaseModel
    >>> class Ticket(BaseModel):
    ...     text: str
    >>> demo = Pipeline("doc-demo", data_model=Ticket)
    >>> @demo.step(retry=RetryPolicy(max_attempts=2), timeout_s=5)
    ... def shout(ctx, items):
    ...     return [StepOutput({"loud": i.data["text"].upper()}) for i in items]
    >>> @demo.gate
    ... def always(ctx, item):
    ...     return Auto({"label": item.outputs["shout"]["loud"]})
    >>> @demo.action
    ... def record(ctx, item, resolution):
    ...     return Action("print", {"text": resolution.label})
    >>> [s.name for s in demo.steps]
    ['shout']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from sluice.config import Settings
from sluice.errors import ConfigError, EventValidationError
from sluice.execution.events import CloudEvent, validation_error
from sluice.execution.records import SETTLING_STEPS
from sluice.execution.retry import RetryPolicy
from sluice.execution.types import Action, ItemView, Resolution, StepOutput, Verdict
from sluice.store import Store

__all__ = [
    "Pipeline",
    "QueueSpec",
    "ReviewSpec",
    "StepContext",
    "StepSpec",
    "get_pipeline",
    "registered_pipelines",
]

R = TypeVar("R")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class QueueSpec:
    """The pipeline's work queue.

    Attributes:
        worker_concurrency: Batches one worker process runs at once. Two lets the next
            batch start while one finishes (its database writes overlap the other's
            compute).
        concurrency: Batches running at once across all workers (None: no global cap).
        max_pending_batches: Batches a worker forms ahead of execution; more items wait
            in the item queue, where priority still applies.
    """

    worker_concurrency: int = 2
    concurrency: int | None = None
    max_pending_batches: int = 4


@dataclass(frozen=True)
class ReviewSpec:
    """The review gate's deadlines.

    Attributes:
        sla_s: Seconds a task may wait before it escalates (None: the settings default).
        escalation_s: Seconds an escalated task may wait before it is marked expired
            (None: the settings default). An expired task still accepts a decision.
        escalation_queue: Queue that receives escalated tasks.
        audit_rate: Share of auto-handled items sampled for a quality audit (None: the
            settings default, ``SLUICE_AUDIT_SAMPLE_RATE``; 0: never).
        audit_queue: Queue of the audit tasks.
        audit_stratum: Key of the proposal whose value the sample is stratified by.
    """

    sla_s: float | None = None
    escalation_s: float | None = None
    escalation_queue: str = "escalations"
    audit_rate: float | None = None
    audit_queue: str = "audit"
    audit_stratum: str = "label"


@dataclass
class StepContext(Generic[R]):
    """Handed to every step, gate and action call.

    Attributes:
        settings: Runtime settings.
        pipeline: The pipeline being run.
        resources: What the pipeline's resource loader returned (models, clients ...),
            loaded once per worker process.
        replaying: True in a replay (:mod:`sluice.execution.replay`): steps whose output
            a decision does not depend on may skip paid work.
    """

    settings: Settings
    pipeline: Pipeline
    resources: R
    replaying: bool = False


StepFn = Callable[[StepContext[Any], Sequence[ItemView]], Sequence[StepOutput]]
GateFn = Callable[[StepContext[Any], ItemView], Verdict]
ActionFn = Callable[[StepContext[Any], ItemView, Resolution], Action | None]
ResourceFn = Callable[[Settings, Store], Any]


@dataclass(frozen=True)
class StepSpec:
    """One declared step (see :meth:`Pipeline.step`)."""

    name: str
    fn: StepFn
    retry: RetryPolicy
    timeout_s: float | None


_REGISTRY: dict[str, Pipeline] = {}


@dataclass
class Pipeline:
    """A named pipeline of batch steps, a gate and an action.

    Args:
        name: Unique name (lower-case letters, digits, ``-``, ``_``); items name it.
        data_model: Pydantic model the event's ``data`` must satisfy.
        queue: Queue limits for this pipeline.
        review: Review-gate deadlines.
        batch_size: Items per durable run (None: the settings default).
        description: One line for ``--help`` and listings.
        actions: The allow-list of action names the action may return (None: any).
            Anything else is refused before it reaches the outbox and the item fails
            with a :class:`~sluice.errors.GuardError` (kept, retryable): whatever a
            prompt or a model output says, only these effects can happen.
    """

    name: str
    data_model: type[BaseModel]
    queue: QueueSpec = field(default_factory=QueueSpec)
    review: ReviewSpec = field(default_factory=ReviewSpec)
    batch_size: int | None = None
    description: str = ""
    actions: tuple[str, ...] | None = None
    steps: list[StepSpec] = field(default_factory=list, init=False)
    gate_fn: GateFn | None = field(default=None, init=False)
    action_fn: ActionFn | None = field(default=None, init=False)
    resource_fn: ResourceFn | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(
                f"invalid pipeline name {self.name!r}",
                hint="use 1-64 lower-case letters, digits, '-' or '_', starting with a letter",
            )
        existing = _REGISTRY.get(self.name)
        if existing is not None and existing.data_model is not self.data_model:
            raise ConfigError(f"a different pipeline named {self.name!r} is already declared")
        _REGISTRY[self.name] = self

    # -- declaration -------------------------------------------------------------------
    def step(
        self,
        name: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        timeout_s: float | None = None,
    ) -> Callable[[StepFn], StepFn]:
        """Declare the next step. Steps run in declaration order."""

        def register(fn: StepFn) -> StepFn:
            step_name = name or fn.__name__
            if step_name in {s.name for s in self.steps}:
                raise ConfigError(f"pipeline {self.name!r}: duplicate step name {step_name!r}")
            if step_name in SETTLING_STEPS:
                raise ConfigError(
                    f"pipeline {self.name!r}: step name {step_name!r} is reserved",
                    hint=f"{', '.join(sorted(SETTLING_STEPS))} name the settling of an item",
                )
            if timeout_s is not None and timeout_s <= 0:
                raise ConfigError(f"step {step_name!r}: timeout_s must be > 0")
            self.steps.append(StepSpec(step_name, fn, retry or RetryPolicy(), timeout_s))
            return fn

        return register

    def gate(self, fn: GateFn) -> GateFn:
        """Declare the confidence gate (exactly one)."""
        self.gate_fn = fn
        return fn

    def action(self, fn: ActionFn) -> ActionFn:
        """Declare the action (exactly one)."""
        self.action_fn = fn
        return fn

    def resources(self, fn: ResourceFn) -> ResourceFn:
        """Declare the loader of per-process resources (models, clients)."""
        self.resource_fn = fn
        return fn

    # -- use ---------------------------------------------------------------------------
    def check(self) -> None:
        """Raise :class:`ConfigError` unless the pipeline is complete."""
        missing = [
            what
            for what, present in (
                ("at least one step", bool(self.steps)),
                ("a gate", self.gate_fn is not None),
                ("an action", self.action_fn is not None),
            )
            if not present
        ]
        if missing:
            raise ConfigError(f"pipeline {self.name!r} lacks {', '.join(missing)}")

    def validate_data(self, event: CloudEvent, *, line: int | None = None) -> dict[str, Any]:
        """The event's ``data`` validated by :attr:`data_model`, as plain JSON."""
        if event.data is None:
            raise EventValidationError("missing required field 'data'", line=line, field="data")
        try:
            model = self.data_model.model_validate(event.data)
        except ValidationError as exc:
            raise validation_error(exc, line=line, prefix="data") from None
        return model.model_dump(mode="json", exclude_none=True)

    def load_resources(self, settings: Settings, store: Store) -> StepContext[Any]:
        """Build the context a worker passes to every call of this pipeline."""
        resources = self.resource_fn(settings, store) if self.resource_fn else None
        return StepContext(settings=settings, pipeline=self, resources=resources)


def get_pipeline(name: str) -> Pipeline:
    """The declared pipeline called ``name``.

    Raises:
        ConfigError: No pipeline of that name is declared in this process.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise ConfigError(
            f"unknown pipeline {name!r}", hint=f"declared pipelines: {known}"
        ) from None


def escalation_queue(pipeline: str) -> str:
    """Where ``pipeline``'s escalated review tasks go (the default for an unknown one)."""
    found = _REGISTRY.get(pipeline)
    return (found.review if found else ReviewSpec()).escalation_queue


def registered_pipelines() -> Mapping[str, Pipeline]:
    """Every pipeline declared in this process, by name."""
    return dict(_REGISTRY)
