"""The one exception tree of Sluice.

Every error Sluice raises on purpose derives from :class:`SluiceError`. Each carries a
stable ``code`` (for scripts and API clients), an HTTP ``status``, whether retrying the
same call can succeed (``retryable``), and a ``hint`` that says what to do next.

```
SluiceError
├── ConfigError                      bad settings or pipeline declaration
├── StoreError                       database unreachable or schema out of date
├── NotFoundError                    an id that does not exist (404)
├── IntakeError                      an event that cannot be accepted
│   ├── EventValidationError           invalid JSON / CloudEvent / payload (422)
│   └── BackpressureError              queue full, try later (503, retryable)
├── ExecutionError                   durable runs
│   ├── StepFailedError                a step failed after its retry policy
│   ├── StepTimeoutError               a step attempt ran past its timeout (retryable)
│   └── NonRetryableError              raise it from a step to stop retries at once
├── ModelError                       model plane
│   ├── ModelNotFoundError             no such name/version in the registry (404)
│   ├── ModelIntegrityError            artifact bytes do not match their sha256
│   ├── TrainingError                  training data unusable
│   ├── PromotionError                 a stage change the registry refuses (409)
│   ├── ModelCallError                 an endpoint failed to answer (502, retryable)
│   │   ├── ModelTimeoutError            it did not answer in time (504, retryable)
│   │   └── CircuitOpenError             its circuit breaker is open (503, retryable)
│   ├── BudgetExceededError            a hard budget refuses further paid calls (429)
│   └── MissingDependencyError         an optional extra is not installed
├── ReviewError                      human review
│   ├── TaskStateError                 the task is not in a state that allows this (409)
│   ├── InvalidDecisionError           the decision itself is not valid (422)
│   └── DecisionConflictError          the task was already decided (409)
├── KnowledgeError                   knowledge base
│   ├── IngestError                    a file or record that cannot be ingested (422)
│   ├── IndexNotReadyError             nothing to search yet: no active index version (409)
│   ├── IndexVersionNotFoundError      no such index version (404)
│   ├── IndexVersionError              a version change the knowledge base refuses (409)
│   ├── EncoderMismatchError           the gateway serves another encoder than the index's (409)
│   └── InvalidFilterError             a search filter that cannot be read (422)
└── GovernanceError                  audit log, access control, data and prompt policy
    ├── AuditError                     the audit chain or its keys cannot be used
    ├── AuthenticationError            no valid token: missing, unknown, expired, revoked (401)
    ├── PermissionDeniedError          the role may not do this (403)
    ├── PiiError                       personal data cannot be detected, sealed or revealed
    ├── DataPolicyError                an endpoint may not receive what the text holds (403)
    ├── PromptError                    versioned prompt templates
    │   ├── PromptNotFoundError          no such prompt or version (404)
    │   ├── PromptRenderError            a template that cannot render (sandbox, missing variable)
    │   └── PromptApprovalError          a lifecycle step the rules refuse (409)
    └── GuardError                     a model output the step may not use (schema, allow-list,
                                       leaked personal data)
```

Errors that cross a process boundary (DBOS pickles step errors) define ``__reduce__``.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AuditError",
    "AuthenticationError",
    "BackpressureError",
    "BudgetExceededError",
    "CircuitOpenError",
    "ConfigError",
    "DataPolicyError",
    "DecisionConflictError",
    "EncoderMismatchError",
    "EventValidationError",
    "ExecutionError",
    "GovernanceError",
    "GuardError",
    "IndexNotReadyError",
    "IndexVersionError",
    "IndexVersionNotFoundError",
    "IngestError",
    "IntakeError",
    "InvalidDecisionError",
    "InvalidFilterError",
    "KnowledgeError",
    "MissingDependencyError",
    "ModelCallError",
    "ModelError",
    "ModelIntegrityError",
    "ModelNotFoundError",
    "ModelTimeoutError",
    "NonRetryableError",
    "NotFoundError",
    "PermissionDeniedError",
    "PiiError",
    "PromotionError",
    "PromptApprovalError",
    "PromptError",
    "PromptNotFoundError",
    "PromptRenderError",
    "ReviewError",
    "SluiceError",
    "StepFailedError",
    "StepTimeoutError",
    "StoreError",
    "TaskStateError",
    "TrainingError",
]


class SluiceError(Exception):
    """Root of every error Sluice raises on purpose.

    Args:
        message: What failed, with the ids involved.
        hint: The next step for the user, if there is a useful one.
    """

    code: ClassVar[str] = "sluice_error"
    status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.hint, self.__dict__))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe description (CLI ``--json`` output and API problem details)."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        return out


def _rebuild(cls: type[SluiceError], message: str, hint: str | None, state: dict[str, Any]) -> Any:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    err.message, err.hint = message, hint
    return err


class ConfigError(SluiceError):
    """Settings or a pipeline declaration are invalid."""

    code = "config_error"


class StoreError(SluiceError):
    """The store cannot be reached or its schema is not at the expected revision."""

    code = "store_error"
    status = 503
    retryable = True


class NotFoundError(SluiceError):
    """An item, task, batch or other record does not exist."""

    code = "not_found"
    status = 404


class IntakeError(SluiceError):
    """An event could not be accepted."""

    code = "intake_error"
    status = 400


class EventValidationError(IntakeError):
    """The input is not a valid CloudEvent for the target pipeline.

    Args:
        message: What is wrong.
        line: 1-based line number in the submitted file, when there is one.
        field: The offending field (dotted path), when known.
    """

    code = "invalid_event"
    status = 422

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.line = line
        self.field = field

    def to_dict(self) -> dict[str, Any]:  # noqa: D102 - documented on the base class
        out = super().to_dict()
        if self.line is not None:
            out["line"] = self.line
        if self.field is not None:
            out["field"] = self.field
        return out


class BackpressureError(IntakeError):
    """The pipeline's queue is full; the same call will succeed once workers catch up."""

    code = "backpressure"
    status = 503
    retryable = True


class ExecutionError(SluiceError):
    """A durable run failed."""

    code = "execution_error"


class StepFailedError(ExecutionError):
    """A step failed on every attempt its retry policy allowed."""

    code = "step_failed"


class StepTimeoutError(ExecutionError):
    """One attempt of a step ran past its timeout. Retried like any retryable error."""

    code = "step_timeout"
    retryable = True


class NonRetryableError(ExecutionError):
    """Raise from a step to fail it at once, without further attempts."""

    code = "non_retryable"


class ModelError(SluiceError):
    """The model plane could not serve a call."""

    code = "model_error"


class ModelNotFoundError(ModelError, NotFoundError):
    """No model with that name (and version) is registered."""

    code = "model_not_found"
    status = 404


class ModelIntegrityError(ModelError):
    """A model artifact's bytes do not match the sha256 recorded for it."""

    code = "model_integrity"


class TrainingError(ModelError):
    """Training data or parameters are unusable."""

    code = "training_error"
    status = 422


class PromotionError(ModelError):
    """The registry refuses a change of stage (no passing evaluation, wrong stage ...)."""

    code = "promotion_refused"
    status = 409


class ModelCallError(ModelError):
    """An endpoint failed to answer: a connection error, a bad response, an exception.

    Args:
        message: What failed.
        endpoint: The endpoint's name.
    """

    code = "model_call_failed"
    status = 502
    retryable = True

    def __init__(self, message: str, *, endpoint: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.endpoint = endpoint


class ModelTimeoutError(ModelCallError):
    """An endpoint did not answer within the call's timeout."""

    code = "model_timeout"
    status = 504


class CircuitOpenError(ModelCallError):
    """The endpoint's circuit breaker is open: it failed repeatedly and is cooling down."""

    code = "circuit_open"
    status = 503


class BudgetExceededError(ModelError):
    """A hard daily budget (per task or per tenant) refuses further paid calls.

    Args:
        message: Which budget, spent and limit.
        scope: ``task:<name>`` or ``tenant:<name>``.
    """

    code = "budget_exceeded"
    status = 429

    def __init__(self, message: str, *, scope: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.scope = scope


class MissingDependencyError(ModelError):
    """An optional extra (e.g. ``sluice[llm]``) is needed and not installed."""

    code = "missing_dependency"


class ReviewError(SluiceError):
    """Human review could not proceed."""

    code = "review_error"


class TaskStateError(ReviewError):
    """The review task is not in a state that allows the requested change."""

    code = "task_state"
    status = 409


class InvalidDecisionError(ReviewError):
    """The decision is not valid for this task: a missing or unknown label, a wrong outcome."""

    code = "invalid_decision"
    status = 422


class DecisionConflictError(ReviewError):
    """The task already has a decision; exactly one decision per task is kept."""

    code = "decision_conflict"
    status = 409


class KnowledgeError(SluiceError):
    """The knowledge base could not ingest, chunk or search."""

    code = "knowledge_error"


class IngestError(KnowledgeError):
    """A file or one record in it cannot be ingested; the rest of the batch goes on.

    Args:
        message: What is wrong, naming the file (and record).
        path: The file, as given or found while walking a folder.
        reason: A stable short code for scripts, e.g. ``too_large``, ``no_text_layer``.
        location: Where in the file, e.g. ``line 12`` or ``row 4``, when it is one record.
    """

    code = "ingest_failed"
    status = 422

    def __init__(
        self,
        message: str,
        *,
        path: str = "",
        reason: str = "invalid",
        location: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.path = path
        self.reason = reason
        self.location = location

    def to_dict(self) -> dict[str, Any]:  # noqa: D102 - documented on the base class
        out = super().to_dict() | {"path": self.path, "reason": self.reason}
        if self.location is not None:
            out["location"] = self.location
        return out


class IndexNotReadyError(KnowledgeError):
    """The index has no active version to answer from (nothing was ingested yet)."""

    code = "index_not_ready"
    status = 409


class IndexVersionNotFoundError(KnowledgeError, NotFoundError):
    """No index version with that number in that index."""

    code = "index_version_not_found"
    status = 404


class IndexVersionError(KnowledgeError):
    """An index version change the knowledge base refuses.

    Activating a version that is still building, rolling back with nothing to go back
    to, building a configuration that already has a version.
    """

    code = "index_version_refused"
    status = 409


class EncoderMismatchError(KnowledgeError):
    """The gateway now embeds with another encoder than the index version was built with.

    Vectors of two encoders live in different spaces: comparing them gives nonsense, so
    the query is refused rather than answered badly.
    """

    code = "encoder_mismatch"
    status = 409


class InvalidFilterError(KnowledgeError):
    """A metadata filter that cannot be read (``key=value``, ``key>=value`` ...)."""

    code = "invalid_filter"
    status = 422


class GovernanceError(SluiceError):
    """The control plane refused or could not do something."""

    code = "governance_error"


class AuditError(GovernanceError):
    """The audit chain, an export or a signing key cannot be used."""

    code = "audit_error"


class AuthenticationError(GovernanceError):
    """No valid credential: the token is missing, unknown, expired or revoked."""

    code = "unauthenticated"
    status = 401


class PermissionDeniedError(GovernanceError):
    """The caller's role does not allow the action (the denial is audited).

    Args:
        message: What was refused.
        role: The caller's role.
        permission: The permission that was needed.
    """

    code = "permission_denied"
    status = 403

    def __init__(
        self, message: str, *, role: str, permission: str, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.role = role
        self.permission = permission

    def to_dict(self) -> dict[str, Any]:  # noqa: D102 - documented on the base class
        return super().to_dict() | {"role": self.role, "permission": self.permission}


class PiiError(GovernanceError):
    """Personal data cannot be detected, sealed or revealed (e.g. no vault key)."""

    code = "pii_error"


class DataPolicyError(GovernanceError):
    """The endpoint may not receive what the text holds, and redacting is not allowed.

    Args:
        message: What was refused, naming the endpoint and the data classes found.
        endpoint: The endpoint that was refused.
        found: The data classes found in the text (e.g. ``("pii",)``).
    """

    code = "data_policy_refused"
    status = 403

    def __init__(
        self,
        message: str,
        *,
        endpoint: str = "",
        found: tuple[str, ...] = (),
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.endpoint = endpoint
        self.found = tuple(found)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_data_policy, (self.message, self.endpoint, self.found, self.hint))

    def to_dict(self) -> dict[str, Any]:  # noqa: D102 - documented on the base class
        return super().to_dict() | {"endpoint": self.endpoint, "found": list(self.found)}


def _rebuild_data_policy(
    message: str, endpoint: str, found: tuple[str, ...], hint: str | None
) -> DataPolicyError:
    return DataPolicyError(message, endpoint=endpoint, found=found, hint=hint)


class PromptError(GovernanceError):
    """A versioned prompt template could not be loaded, rendered or changed."""

    code = "prompt_error"


class PromptNotFoundError(PromptError):
    """No prompt with that name, or no such version of it."""

    code = "prompt_not_found"
    status = 404


class PromptRenderError(PromptError):
    """The template cannot render: a missing variable or something the sandbox forbids."""

    code = "prompt_render_error"
    status = 422


class PromptApprovalError(PromptError):
    """A prompt lifecycle step the rules refuse.

    Self-approval, activation without a passing evaluation or an approval, a version in
    the wrong state.
    """

    code = "prompt_approval_refused"
    status = 409


class GuardError(GovernanceError):
    """A model output the step may not use.

    It breaks its schema, names an action outside the step's allow-list, or would leak
    personal data the input did not hold.

    Args:
        message: What was wrong with the output.
        reason: A stable short code, e.g. ``schema``, ``action_not_allowed``, ``pii_leak``.
    """

    code = "guard_refused"
    status = 422

    def __init__(self, message: str, *, reason: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_guard, (self.message, self.reason, self.hint))

    def to_dict(self) -> dict[str, Any]:  # noqa: D102 - documented on the base class
        return super().to_dict() | {"reason": self.reason}


def _rebuild_guard(message: str, reason: str, hint: str | None) -> GuardError:
    return GuardError(message, reason=reason, hint=hint)
