"""The execution plane: durable pipelines of steps, intake, queues and the review gate.

Declare a :class:`Pipeline`, submit CloudEvents with :func:`submit_lines` or
:func:`submit_events`, and run a :class:`Worker`. DBOS Transact is the engine; it is
used only inside this package (``engine.py``).
"""

from sluice.execution.desk import ReviewDesk, set_review_desk
from sluice.execution.engine import recover_executor, review_workflow_id, send_in_transaction
from sluice.execution.events import (
    PRIORITIES,
    CloudEvent,
    ParsedLine,
    parse_event_json,
    parse_event_obj,
    parse_jsonl,
)
from sluice.execution.intake import (
    Rejection,
    list_rejections,
    retry_rejection,
    submit_events,
    submit_lines,
)
from sluice.execution.items import (
    decided_by_counts,
    get_item,
    item_outcomes,
    list_items,
    list_outbox,
    model_costs,
    retry_items,
    run_window,
    step_latencies,
    step_outputs,
    work_summary,
)
from sluice.execution.lineage import item_lineage
from sluice.execution.pipeline import (
    Pipeline,
    QueueSpec,
    ReviewSpec,
    StepContext,
    StepSpec,
    escalation_queue,
    get_pipeline,
    registered_pipelines,
)
from sluice.execution.replay import ReplayReport, replay_items, replay_since
from sluice.execution.retry import RetryPolicy
from sluice.execution.traces import enabled as tracing_enabled
from sluice.execution.traces import item_parent as item_trace_parent
from sluice.execution.traces import trace_ids
from sluice.execution.types import (
    Action,
    Auto,
    ItemStatus,
    ItemView,
    Resolution,
    Review,
    StepOutput,
    SubmitReport,
    Verdict,
)
from sluice.execution.worker import Worker, WorkerStats, queue_counts

__all__ = [
    "PRIORITIES",
    "Action",
    "Auto",
    "CloudEvent",
    "ItemStatus",
    "ItemView",
    "ParsedLine",
    "Pipeline",
    "QueueSpec",
    "Rejection",
    "ReplayReport",
    "Resolution",
    "RetryPolicy",
    "Review",
    "ReviewDesk",
    "ReviewSpec",
    "StepContext",
    "StepOutput",
    "StepSpec",
    "SubmitReport",
    "Verdict",
    "Worker",
    "WorkerStats",
    "decided_by_counts",
    "escalation_queue",
    "get_item",
    "get_pipeline",
    "item_lineage",
    "item_outcomes",
    "item_trace_parent",
    "list_items",
    "list_outbox",
    "list_rejections",
    "model_costs",
    "parse_event_json",
    "parse_event_obj",
    "parse_jsonl",
    "queue_counts",
    "recover_executor",
    "registered_pipelines",
    "replay_items",
    "replay_since",
    "retry_items",
    "retry_rejection",
    "review_workflow_id",
    "run_window",
    "send_in_transaction",
    "set_review_desk",
    "step_latencies",
    "step_outputs",
    "submit_events",
    "submit_lines",
    "trace_ids",
    "tracing_enabled",
    "work_summary",
]
