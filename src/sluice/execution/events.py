"""CloudEvents 1.0: the one envelope every intake path accepts.

A work item starts life as a CloudEvent. ``source`` + ``id`` is the idempotency key:
the same pair submitted twice is one item. The pipeline decides what ``data`` must hold
(its ``data_model``); this module checks the envelope, the size limit and the payload,
and turns each failure into an :class:`~sluice.errors.EventValidationError` that names
the field and, for files, the line.

Example:
    >>> raw = '{"specversion": "1.0", "id": "1", "source": "crm", "type": "ticket", "data": {}}'
    >>> parse_event_json(raw, max_bytes=10_000).id
    '1'
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sluice.errors import EventValidationError

__all__ = [
    "PRIORITIES",
    "CloudEvent",
    "ParsedLine",
    "parse_event_json",
    "parse_event_obj",
    "parse_jsonl",
    "priority_value",
    "validation_error",
]

#: Names accepted in the ``priority`` extension attribute, mapped to the stored value
#: (lower is served first).
PRIORITIES: dict[str, int] = {"urgent": 0, "high": 1, "normal": 2, "low": 3}

_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")
_CONTEXT_ATTRIBUTES = {
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "dataschema",
    "data",
    "data_base64",
}


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event in structured JSON mode.

    Extension attributes (lower-case alphanumeric names, at most 20 characters) are kept
    in :attr:`extensions`; Sluice reads ``priority`` (``urgent``, ``high``, ``normal``,
    ``low``) from there.
    """

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=512)
    source: str = Field(min_length=1, max_length=512)
    type: str = Field(min_length=1, max_length=256)
    subject: str | None = Field(default=None, max_length=512)
    time: datetime | None = None
    datacontenttype: str | None = Field(default=None, max_length=128)
    dataschema: str | None = Field(default=None, max_length=1024)
    data: Any = None

    @field_validator("time", mode="before")
    @classmethod
    def _rfc3339(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError("must be an RFC 3339 timestamp string")
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"not an RFC 3339 timestamp: {value!r}") from exc
        if parsed.tzinfo is None:
            raise ValueError("timestamp needs a UTC offset (e.g. 2026-01-31T09:00:00Z)")
        return parsed

    @property
    def extensions(self) -> dict[str, Any]:
        """Extension attributes (everything outside the CloudEvents context attributes)."""
        return dict(self.model_extra or {})


@dataclass(frozen=True)
class ParsedLine:
    """One line of a JSONL file: either an event or the error that rejected it."""

    line: int
    raw: str
    event: CloudEvent | None = None
    error: EventValidationError | None = None


def priority_value(event: CloudEvent, default: int = PRIORITIES["normal"]) -> int:
    """The stored priority of an event (its ``priority`` extension, else ``default``)."""
    name = event.extensions.get("priority")
    return PRIORITIES[name] if isinstance(name, str) else default


def parse_event_obj(obj: Any, *, line: int | None = None) -> CloudEvent:
    """Validate a decoded JSON value as a CloudEvent.

    Raises:
        EventValidationError: The value is not a valid CloudEvent; the message names the
            first offending field.
    """
    if not isinstance(obj, dict):
        raise EventValidationError(
            f"expected a JSON object, got {type(obj).__name__}",
            line=line,
            hint="each line must be one CloudEvent object",
        )
    if "data_base64" in obj:
        raise EventValidationError(
            "binary data (data_base64) is not accepted by this pipeline",
            line=line,
            field="data_base64",
            hint="send JSON in `data`",
        )
    for name, value in obj.items():
        if name in _CONTEXT_ATTRIBUTES:
            continue
        if not _EXTENSION_NAME.match(name):
            raise EventValidationError(
                f"invalid extension attribute name {name!r}",
                line=line,
                field=name,
                hint="extension names are 1-20 lower-case letters or digits (CloudEvents 1.0)",
            )
        if not isinstance(value, str | int | bool):
            raise EventValidationError(
                f"extension attribute {name!r} must be a string, integer or boolean",
                line=line,
                field=name,
            )
    if "priority" in obj and obj["priority"] not in PRIORITIES:
        raise EventValidationError(
            f"unknown priority {obj['priority']!r}",
            line=line,
            field="priority",
            hint=f"use one of {', '.join(PRIORITIES)}",
        )
    try:
        return CloudEvent.model_validate(obj)
    except ValidationError as exc:
        raise validation_error(exc, line=line) from None


def parse_event_json(text: str, *, max_bytes: int, line: int | None = None) -> CloudEvent:
    """Decode and validate one CloudEvent from JSON text, enforcing the size limit."""
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise EventValidationError(
            f"event is {size} bytes, over the limit of {max_bytes} bytes",
            line=line,
            hint="raise SLUICE_MAX_EVENT_BYTES, or send large content by reference",
        )
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EventValidationError(
            f"invalid JSON: {exc.msg} at column {exc.colno}", line=line
        ) from None
    return parse_event_obj(obj, line=line)


def parse_jsonl(lines: Iterable[str], *, max_bytes: int) -> Iterator[ParsedLine]:
    """Validate a JSONL stream line by line; blank lines are skipped.

    Each line yields its own result, so one bad line never hides the good ones.
    """
    for number, raw in enumerate(lines, start=1):
        text = raw.rstrip("\r\n")
        if not text.strip():
            continue
        try:
            yield ParsedLine(
                number, text, event=parse_event_json(text, max_bytes=max_bytes, line=number)
            )
        except EventValidationError as exc:
            yield ParsedLine(number, text, error=exc)


def validation_error(
    exc: ValidationError, *, line: int | None = None, prefix: str = ""
) -> EventValidationError:
    """Turn pydantic's error list into one clear message about the first problem."""
    first = exc.errors()[0]
    path = ".".join(str(p) for p in (prefix, *first["loc"]) if p != "")
    kind = first["type"]
    if kind == "missing":
        message = f"missing required field {path!r}"
    elif kind == "extra_forbidden":
        message = f"unexpected field {path!r}"
    else:
        message = f"field {path!r}: {first['msg']}"
    more = len(exc.errors()) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return EventValidationError(message, line=line, field=path or None)
