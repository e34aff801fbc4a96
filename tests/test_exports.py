"""The public surface of each package is what its __all__ says; this pins it."""

import importlib

import pytest

PUBLIC = {
    "sluice.execution": {
        "Action",
        "Auto",
        "CloudEvent",
        "ItemStatus",
        "ItemView",
        "PRIORITIES",
        "ParsedLine",
        "Pipeline",
        "QueueSpec",
        "Rejection",
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
        "get_item",
        "get_pipeline",
        "item_outcomes",
        "list_items",
        "list_outbox",
        "list_rejections",
        "parse_event_json",
        "parse_event_obj",
        "parse_jsonl",
        "queue_counts",
        "recover_executor",
        "registered_pipelines",
        "retry_items",
        "run_window",
        "retry_rejection",
        "review_workflow_id",
        "send_in_transaction",
        "set_review_desk",
        "step_latencies",
        "submit_events",
        "submit_lines",
    },
    "sluice.models": {
        "Calibration",
        "ENCODER_NAME",
        "Encoder",
        "LabelledData",
        "LinearHead",
        "ModelRecord",
        "ModelRef",
        "ModelRegistry",
        "Prediction",
        "Stage",
        "choose_threshold",
        "load_classifier",
        "load_encoder",
        "read_labelled_csv",
        "train_classifier",
    },
    "sluice.review": {
        "Decision",
        "Outcome",
        "ReviewTask",
        "TaskDesk",
        "decide",
        "get_task",
        "list_tasks",
    },
    "sluice.observability": {"RunReport", "build_run_report", "percentiles"},
    "sluice.store": {
        "JSONType",
        "Store",
        "UTCDateTime",
        "metadata",
        "new_id",
        "open_store",
        "utcnow",
    },
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names_are_exactly_the_declared_ones(module: str) -> None:
    mod = importlib.import_module(module)
    assert set(mod.__all__) == PUBLIC[module]
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name} is declared but missing"
