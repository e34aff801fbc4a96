"""The model plane: the gateway every model call goes through, and the models behind it.

It answers calls and knows nothing of workflows or reviews. Heavy runtimes (onnxruntime,
tokenizers, scikit-learn, llama-cpp) are imported only when a model is built, loaded,
trained or called.
"""

from sluice.models.budgets import set_budget_alert_hook
from sluice.models.calls import (
    CallRecord,
    ChatMessage,
    ChatParams,
    ChatReply,
    Chatted,
    Classified,
    Embedded,
    Usage,
)
from sluice.models.circuit_breaker import CircuitBreaker
from sluice.models.classifier import LinearHead, Prediction, choose_threshold
from sluice.models.encoder import ENCODER_NAME, Encoder, load_encoder
from sluice.models.evaluation import evaluate_for_promotion
from sluice.models.gateway import Gateway, canary_bucket
from sluice.models.gateway_config import GatewayConfig, load_gateway_config
from sluice.models.injection import InjectionDetector, InjectionVerdict
from sluice.models.injection_training import (
    INJECTION_MODEL,
    injection_sample_path,
    read_injection_jsonl,
    train_injection_detector,
)
from sluice.models.metering import usage as model_usage
from sluice.models.micro_batching import MicroBatcher
from sluice.models.registry import (
    EvaluationRecord,
    ModelRecord,
    ModelRef,
    ModelRegistry,
    Serving,
    Stage,
    StageChange,
)
from sluice.models.response_cache import ResponseCache
from sluice.models.retraining import (
    Correction,
    RetrainResult,
    evaluate_head,
    retrain_with_corrections,
)
from sluice.models.training import (
    Calibration,
    LabelledData,
    load_classifier,
    read_labelled_csv,
    train_classifier,
)

__all__ = [
    "ENCODER_NAME",
    "INJECTION_MODEL",
    "Calibration",
    "CallRecord",
    "ChatMessage",
    "ChatParams",
    "ChatReply",
    "Chatted",
    "CircuitBreaker",
    "Classified",
    "Correction",
    "Embedded",
    "Encoder",
    "EvaluationRecord",
    "Gateway",
    "GatewayConfig",
    "InjectionDetector",
    "InjectionVerdict",
    "LabelledData",
    "LinearHead",
    "MicroBatcher",
    "ModelRecord",
    "ModelRef",
    "ModelRegistry",
    "Prediction",
    "ResponseCache",
    "RetrainResult",
    "Serving",
    "Stage",
    "StageChange",
    "Usage",
    "canary_bucket",
    "choose_threshold",
    "evaluate_for_promotion",
    "evaluate_head",
    "injection_sample_path",
    "load_classifier",
    "load_encoder",
    "load_gateway_config",
    "model_usage",
    "read_injection_jsonl",
    "read_labelled_csv",
    "retrain_with_corrections",
    "set_budget_alert_hook",
    "train_classifier",
    "train_injection_detector",
]
