"""Guards on what a model produced, before anything uses it.

Three checks, each raising :class:`~sluice.errors.GuardError` with a stable ``reason``:

* :func:`require_allowed_action` (``action_not_allowed``): an output (or code acting on
  one) may only select an action from the allow-list its step or pipeline declares; a
  name outside it, however a model came to write it, is refused. The execution plane
  applies it to every action a pipeline's action function returns
  (``Pipeline(actions=...)``), so no prompt and no model output can produce an effect
  policy does not allow.
* :func:`parse_json_output` (``schema``): a structured output must be JSON and match its
  schema (the JSON-Schema subset of :mod:`sluice.governance.prompts.json_shape`).
* :func:`leaked_pii` / :func:`require_no_pii_leak` (``pii_leak``): personal data in the
  output that none of the inputs of that item held (an e-mail address, a phone number,
  a name) is blocked: a model must not hand one customer another's data, or invent it.

Example:
    >>> require_allowed_action("route_ticket", ("route_ticket",))
    'route_ticket'
    >>> require_allowed_action("refund_payment", ("route_ticket",))
    Traceback (most recent call last):
    ...
    sluice.errors.GuardError: the output names the action 'refund_payment', which is not \
one of the allowed actions (route_ticket) (only the allowed actions can run; the item goes \
to review)
    >>> [f.entity_type for f in leaked_pii("Write to bo@example.net", ["I am ana@example.com"])]
    ['EMAIL_ADDRESS']
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sluice.errors import GuardError
from sluice.governance.pii import Finding, scan
from sluice.governance.prompts.json_shape import schema_problems

__all__ = ["leaked_pii", "parse_json_output", "require_allowed_action", "require_no_pii_leak"]

_SPACE = re.compile(r"\s+")


def require_allowed_action(name: str, allowed: Iterable[str]) -> str:
    """``name`` if it is in ``allowed``.

    Raises:
        GuardError: ``reason="action_not_allowed"`` otherwise.
    """
    permitted = tuple(allowed)
    if name not in permitted:
        raise GuardError(
            f"the output names the action {name!r}, which is not one of the allowed "
            f"actions ({', '.join(permitted) or 'none'})",
            reason="action_not_allowed",
            hint="only the allowed actions can run; the item goes to review",
        )
    return name


def parse_json_output(text: str, schema: Mapping[str, Any]) -> Any:
    """A model's JSON output, checked against ``schema``.

    A fenced block (```` ```json ... ``` ````) is unwrapped first; nothing else is
    forgiven.

    Raises:
        GuardError: ``reason="schema"``: not JSON, or not of the schema's shape.
    """
    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`").removeprefix("json").strip()
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        raise GuardError(
            f"the output is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            reason="schema",
            hint="the step expects a JSON object; the item goes to review",
        ) from None
    problems = schema_problems(value, schema)
    if problems:
        raise GuardError(
            f"the output does not match its schema: {'; '.join(problems[:3])}",
            reason="schema",
            hint="the step expects a JSON object of its declared shape",
        )
    return value


def _normal(text: str) -> str:
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).casefold().strip()


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def leaked_pii(output: str, inputs: Sequence[str]) -> list[Finding]:
    """Personal data found in ``output`` that no text of ``inputs`` holds.

    Values are compared after normalization (NFKC, case, spacing); numbers (phones,
    cards, ids) by their digits, so ``+44 20 7946 0958`` and ``+442079460958`` match.
    """
    findings = scan(output).findings
    if not findings:
        return []
    held = _normal(" \n ".join(inputs))
    held_digits = _digits(held)
    leaked = []
    for finding in findings:
        value = output[finding.start : finding.end]
        digits = _digits(value)
        if _normal(value) in held or (len(digits) >= 6 and digits in held_digits):
            continue
        leaked.append(finding)
    return leaked


def require_no_pii_leak(output: str, inputs: Sequence[str]) -> None:
    """Refuse an output holding personal data that its inputs did not (module docs).

    Raises:
        GuardError: ``reason="pii_leak"``, naming the entity types (never the values).
    """
    leaked = leaked_pii(output, inputs)
    if leaked:
        kinds = sorted({f.entity_type for f in leaked})
        raise GuardError(
            f"the output holds personal data its inputs did not: {', '.join(kinds)}",
            reason="pii_leak",
            hint="the output is blocked; a reviewer sees the item",
        )
