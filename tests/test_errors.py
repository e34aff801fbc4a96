import pickle

import pytest

from sluice import errors
from sluice.errors import (
    DataPolicyError,
    EventValidationError,
    GuardError,
    PermissionDeniedError,
    SluiceError,
    StepTimeoutError,
)


def test_every_error_derives_from_the_root_and_has_a_distinct_code() -> None:
    classes = [getattr(errors, n) for n in errors.__all__]
    assert all(issubclass(c, SluiceError) for c in classes)
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes)), "error codes must be unique"


@pytest.mark.parametrize("cls", [getattr(errors, n) for n in errors.__all__])
def test_errors_survive_pickling_with_their_fields(cls: type[SluiceError]) -> None:
    if cls is EventValidationError:
        err: SluiceError = EventValidationError("bad", line=3, field="data.text", hint="fix it")
    elif cls is PermissionDeniedError:
        err = PermissionDeniedError("no", role="auditor", permission="items:retry", hint="ask")
    elif cls is GuardError:
        err = GuardError("output names an action", reason="action_not_allowed", hint="review")
    elif cls is DataPolicyError:
        err = DataPolicyError("refused", endpoint="vendor", found=("pii",), hint="route")
    else:
        err = cls("it failed", hint="try again")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is cls
    assert copy.message == err.message and copy.hint == err.hint
    assert copy.to_dict() == err.to_dict()


def test_message_names_the_hint_and_retryability_is_declared() -> None:
    err = StepTimeoutError("step 'x' did not finish within 1 s", hint="raise timeout_s")
    assert str(err) == "step 'x' did not finish within 1 s (raise timeout_s)"
    assert err.retryable and not SluiceError("x").retryable
    assert EventValidationError("bad", line=7).to_dict() == {
        "code": "invalid_event",
        "message": "bad",
        "line": 7,
    }
