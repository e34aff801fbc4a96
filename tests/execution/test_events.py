import json

import pytest

from sluice.errors import EventValidationError
from sluice.execution import parse_event_json, parse_jsonl

GOOD = {"specversion": "1.0", "id": "e1", "source": "crm", "type": "t", "data": {"text": "hi"}}


def _line(**changes: object) -> str:
    event = dict(GOOD)
    for key, value in changes.items():
        if value is None:
            event.pop(key, None)
        else:
            event[key] = value
    return json.dumps(event)


def test_a_valid_event_keeps_its_extensions_and_time() -> None:
    event = parse_event_json(
        _line(priority="urgent", time="2026-01-31T09:00:00Z"), max_bytes=10_000
    )
    assert event.extensions == {"priority": "urgent"}
    assert event.time is not None and event.time.utcoffset() is not None


@pytest.mark.parametrize(
    ("line", "message", "field"),
    [
        ("{not json", "invalid JSON", None),
        ("[1, 2]", "expected a JSON object", None),
        (_line(id=None), "missing required field 'id'", "id"),
        (_line(source=""), "field 'source'", "source"),
        (_line(specversion="0.3"), "field 'specversion'", "specversion"),
        (_line(id=17), "field 'id'", "id"),
        (_line(time="yesterday"), "RFC 3339", "time"),
        (_line(time="2026-01-31T09:00:00"), "UTC offset", "time"),
        (_line(Priority="high"), "invalid extension attribute name", "Priority"),
        (_line(priority="asap"), "unknown priority", "priority"),
        (_line(tags=["a"]), "must be a string, integer or boolean", "tags"),
        (_line(data_base64="AAAA"), "binary data", "data_base64"),
    ],
)
def test_invalid_events_name_the_problem(line: str, message: str, field: str | None) -> None:
    with pytest.raises(EventValidationError, match=message) as info:
        parse_event_json(line, max_bytes=10_000, line=4)
    assert info.value.line == 4
    assert info.value.field == field


def test_oversize_events_are_refused_before_parsing() -> None:
    big = _line(data={"text": "x" * 5000})
    with pytest.raises(EventValidationError, match="over the limit of 1000 bytes"):
        parse_event_json(big, max_bytes=1000)


def test_jsonl_reports_each_line_on_its_own_and_skips_blank_lines() -> None:
    lines = [_line(id="a") + "\n", "\n", "{oops\n", _line(id="b") + "\r\n"]
    parsed = list(parse_jsonl(lines, max_bytes=10_000))
    assert [p.line for p in parsed] == [1, 3, 4]
    assert parsed[0].event is not None and parsed[0].event.id == "a"
    assert parsed[1].error is not None and parsed[1].error.line == 3
    assert parsed[2].event is not None and parsed[2].event.id == "b"
