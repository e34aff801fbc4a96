"""The support-triage reference pipeline (see :mod:`.pipeline`)."""

from sluice.pipelines.support_triage.pipeline import (
    MODEL_NAME,
    SupportMessage,
    TriageResources,
    local_llm_models_config,
    message_text,
    sample_path,
    triage,
)

__all__ = [
    "MODEL_NAME",
    "SupportMessage",
    "TriageResources",
    "local_llm_models_config",
    "message_text",
    "sample_path",
    "triage",
]
