r"""Evaluation cases: variables to render a prompt with, and what must hold of the result.

A case is one TOML table (inline in the prompt's front matter as ``[[cases]]``, or in
the file its ``evaluation`` key names)::

    [[cases]]
    name = "refund question"
    [cases.variables]
    intent = "refund_status"
    message = "Where is my refund?"
    [cases.expect]
    contains = ["classified as: refund status"]   # each must appear in the prompt
    not_contains = ["refund_status"]              # none may appear
    regex = ['^You are a customer-support agent'] # each must match (multi-line search)
    max_chars = 6000                              # the prompt's length, at most
    output_matches = ['\[\d\]']                # with a model: each must match its output
    output_json_schema = { type = "object" }      # with a model: its output is this JSON

Every case also checks, always, that each untrusted variable it passes is delimited as
data in the prompt, intact (:mod:`.untrusted`). An unknown key, a bad regex or a schema
keyword that is not checked is an error when the prompt is read: a typo must not turn
a check into one that always passes.

Example:
    >>> cases = parse_cases([{"name": "hi", "variables": {"who": "Ana"},
    ...                       "expect": {"contains": ["Ana"]}}], source="inline")
    >>> cases[0].expect.contains
    ('Ana',)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sluice.errors import PromptError
from sluice.governance.audit import digest
from sluice.governance.prompts.json_shape import unsupported_keywords

__all__ = ["EvalCase", "Expectation", "cases_digest", "parse_cases"]

_CASE_KEYS = {"name", "variables", "expect", "description"}
_LIST_KEYS = ("contains", "not_contains", "regex", "output_matches")
_EXPECT_KEYS = {*_LIST_KEYS, "max_chars", "output_json_schema"}


@dataclass(frozen=True)
class Expectation:
    """What must hold of one rendered prompt (and, with a model, of its output).

    Attributes:
        contains: Texts the prompt must contain.
        not_contains: Texts it must not contain.
        regex: Patterns that must each be found in it (``re.search``, multi-line).
        max_chars: Its length, at most.
        output_matches: Patterns the model's output must each match (with a model).
        output_json_schema: A schema (:mod:`.json_shape`) the output, parsed as JSON,
            must fit (with a model).
    """

    contains: tuple[str, ...] = ()
    not_contains: tuple[str, ...] = ()
    regex: tuple[str, ...] = ()
    max_chars: int | None = None
    output_matches: tuple[str, ...] = ()
    output_json_schema: Mapping[str, Any] | None = None

    @property
    def output_checks(self) -> int:
        """How many checks need a model's output."""
        return len(self.output_matches) + (self.output_json_schema is not None)

    def to_dict(self) -> dict[str, Any]:
        """The TOML table it was read from (JSON-safe)."""
        out: dict[str, Any] = {k: list(getattr(self, k)) for k in _LIST_KEYS if getattr(self, k)}
        if self.max_chars is not None:
            out["max_chars"] = self.max_chars
        if self.output_json_schema is not None:
            out["output_json_schema"] = dict(self.output_json_schema)
        return out


@dataclass(frozen=True)
class EvalCase:
    """One evaluation case (module docs)."""

    name: str
    variables: Mapping[str, Any] = field(default_factory=dict)
    expect: Expectation = field(default_factory=Expectation)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, as kept with a proposed version; :func:`parse_cases` reads it."""
        out: dict[str, Any] = {"name": self.name, "variables": dict(self.variables)}
        if self.description:
            out["description"] = self.description
        out["expect"] = self.expect.to_dict()
        return out


def cases_digest(cases: Sequence[EvalCase]) -> str:
    """sha256 of the canonical JSON of ``cases``: which set an evaluation ran."""
    return digest([c.to_dict() for c in cases])


def _fail(source: str, where: str, what: str) -> PromptError:
    return PromptError(
        f"evaluation case {where} in {source}: {what}",
        hint="see docs/prompts.md, 'Evaluation cases', for the keys a case may have",
    )


def _json_safe(value: Any, where: str, source: str) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _json_safe(item, f"{where}.{key}", source)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _json_safe(item, f"{where}[{i}]", source)
    elif not (value is None or isinstance(value, str | int | float | bool)):
        raise _fail(
            source, where, f"{type(value).__name__} values cannot be kept; write it as a string"
        )


def _strings(value: Any, key: str, where: str, source: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise _fail(source, where, f"{key} must be a string or a list of strings")
    return tuple(items)


def _expectation(raw: Any, where: str, source: str) -> Expectation:
    if not isinstance(raw, Mapping):
        raise _fail(source, where, "expect must be a table")
    unknown = sorted(set(raw) - _EXPECT_KEYS)
    if unknown:
        raise _fail(
            source, where, f"unknown expectation {', '.join(unknown)} (known: "
            f"{', '.join(sorted(_EXPECT_KEYS))})",
        )  # fmt: skip
    lists = {k: _strings(raw[k], k, where, source) for k in _LIST_KEYS if k in raw}
    for key in ("regex", "output_matches"):
        for pattern in lists.get(key, ()):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise _fail(source, where, f"{key} {pattern!r} is not a regex: {exc}") from None
    max_chars = raw.get("max_chars")
    if max_chars is not None and (
        isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1
    ):
        raise _fail(source, where, "max_chars must be a positive integer")
    schema = raw.get("output_json_schema")
    if schema is not None:
        problems = unsupported_keywords(schema)
        if problems:
            raise _fail(source, where, f"output_json_schema: {problems[0]}")
    return Expectation(max_chars=max_chars, output_json_schema=schema, **lists)


def parse_cases(raw: Any, *, source: str) -> tuple[EvalCase, ...]:
    """Read the ``cases`` array of a prompt's front matter or evaluation file.

    Args:
        raw: The parsed TOML array of tables (or what :meth:`EvalCase.to_dict` gave).
        source: Where it came from, for errors.

    Raises:
        PromptError: Not an array of tables, an unknown key, a case without a name or
            with a duplicate one, a bad regex, an unsupported schema keyword.
    """
    if not isinstance(raw, list) or not all(isinstance(c, Mapping) for c in raw):
        raise PromptError(
            f"the evaluation cases in {source} must be an array of tables ([[cases]])"
        )
    cases: list[EvalCase] = []
    for i, case in enumerate(raw, 1):
        where = f"#{i}"
        name = case.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _fail(source, where, "every case needs a name")
        where = f"#{i} ({name!r})"
        unknown = sorted(set(case) - _CASE_KEYS)
        if unknown:
            raise _fail(source, where, f"unknown key {', '.join(unknown)}")
        if any(c.name == name for c in cases):
            raise _fail(source, where, "two cases have this name")
        variables = case.get("variables", {})
        if not isinstance(variables, Mapping):
            raise _fail(source, where, "variables must be a table")
        _json_safe(variables, "variables", source)
        description = case.get("description", "")
        cases.append(
            EvalCase(
                name=name,
                variables=dict(variables),
                expect=_expectation(case.get("expect", {}), where, source),
                description=str(description),
            )
        )
    return tuple(cases)
