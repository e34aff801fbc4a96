r"""Running a prompt's evaluation cases: the gate a version passes before approval.

Each case (:mod:`.cases`) renders the prompt with its variables, then checks:

* ``rendered``: it renders at all (a missing variable, a sandbox refusal, an altered
  delimited value fail the case);
* ``delimited``: every untrusted variable the case passes appears in the prompt,
  delimited as data and intact (always checked, whatever the case says);
* ``contains``, ``not_contains``, ``regex``, ``max_chars`` on the prompt's text;
* with a model (``model=``, a callable from :class:`~.rendering.RenderedPrompt` to the
  model's text): ``output_matches`` and ``output_json_schema`` on its output.

Without a model the output checks are *skipped*, and counted as such in the result;
they do not fail the case. An evaluation passes when it has at least one case and every
case passes.

The model hook is the one place a prompt meets a model here: governance calls no model
plane. A caller wires one in, e.g. ``model=lambda p: gateway.chat(...).text``.

Example:
    >>> from sluice.governance.prompts import parse_prompt
    >>> prompt = parse_prompt('+++\nname = "hi"\n[variables.who]\nuntrusted = true\n'
    ...     '[[cases]]\nname = "ana"\nvariables = { who = "Ana" }\n'
    ...     'expect = { contains = ["Hello"], output_matches = ["Ana"] }\n'
    ...     '+++\nHello {{ who }}\n')
    >>> result = evaluate_prompt(prompt)
    >>> result.passed, result.skipped
    (True, 1)
    >>> evaluate_prompt(prompt, model=lambda rendered: "Hi Bob").passed
    False
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sluice.errors import PromptRenderError
from sluice.governance.prompts.cases import EvalCase, cases_digest
from sluice.governance.prompts.json_shape import schema_problems
from sluice.governance.prompts.prompt_file import PromptFile
from sluice.governance.prompts.rendering import RenderedPrompt, render_prompt
from sluice.governance.prompts.untrusted import region_names

__all__ = ["CaseResult", "Check", "EvaluationResult", "ModelHook", "evaluate_prompt"]

#: A model to evaluate output properties with: the rendered prompt in, its text out.
ModelHook = Callable[[RenderedPrompt], str]

#: Characters of a model's output kept in a case result.
_OUTPUT_CHARS = 2000


@dataclass(frozen=True)
class Check:
    """One property of one case: what was expected, whether it held, and why not."""

    property: str
    expected: Any
    passed: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        out = {"property": self.property, "expected": self.expected, "passed": self.passed}
        return out | ({"detail": self.detail} if self.detail else {})


@dataclass(frozen=True)
class CaseResult:
    """The checks of one case.

    Attributes:
        name: The case's name.
        checks: Every check that ran.
        skipped: Output checks not run (no model).
        chars: Length of the rendered prompt (0 if it did not render).
        output: The model's output, cut to 2000 characters (with a model).
    """

    name: str
    checks: tuple[Check, ...]
    skipped: int = 0
    chars: int = 0
    output: str | None = None

    @property
    def passed(self) -> bool:
        """True when every check that ran held."""
        return all(c.passed for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        out: dict[str, Any] = {
            "name": self.name,
            "passed": self.passed,
            "checks": [c.to_dict() for c in self.checks],
            "skipped": self.skipped,
            "chars": self.chars,
        }
        return out | ({"output": self.output} if self.output is not None else {})


@dataclass(frozen=True)
class EvaluationResult:
    """A whole evaluation of one prompt version.

    Attributes:
        cases: Each case's result.
        cases_sha256: Which set of cases ran (:func:`~.cases.cases_digest`).
        with_model: Whether a model answered (output checks ran).
        sha256: The content hash of the version evaluated.
    """

    cases: tuple[CaseResult, ...]
    cases_sha256: str
    with_model: bool
    sha256: str

    @property
    def passed(self) -> bool:
        """At least one case, and every case passed."""
        return bool(self.cases) and all(c.passed for c in self.cases)

    @property
    def skipped(self) -> int:
        """Output checks not run, over all cases."""
        return sum(c.skipped for c in self.cases)

    @property
    def summary(self) -> str:
        """One line: ``3/3 cases passed`` (with skipped output checks, if any)."""
        if not self.cases:
            return "no evaluation cases: add [[cases]] or an evaluation file"
        good = sum(c.passed for c in self.cases)
        line = f"{good}/{len(self.cases)} cases passed"
        return line + (
            f", {self.skipped} output check(s) skipped (no model)" if self.skipped else ""
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as kept with the version."""
        return {
            "passed": self.passed,
            "summary": self.summary,
            "sha256": self.sha256,
            "cases_sha256": self.cases_sha256,
            "with_model": self.with_model,
            "skipped": self.skipped,
            "cases": [c.to_dict() for c in self.cases],
        }


def _text_checks(text: str, case: EvalCase) -> list[Check]:
    e = case.expect
    checks = [Check("contains", s, s in text, "" if s in text else "not found") for s in e.contains]
    checks += [
        Check("not_contains", s, s not in text, "found" if s in text else "")
        for s in e.not_contains
    ]
    for pattern in e.regex:
        hit = re.search(pattern, text, re.M) is not None
        checks.append(Check("regex", pattern, hit, "" if hit else "no match"))
    if e.max_chars is not None:
        ok = len(text) <= e.max_chars
        checks.append(Check("max_chars", e.max_chars, ok, "" if ok else f"{len(text)} chars"))
    return checks


def _delimited(rendered: RenderedPrompt, prompt: PromptFile, case: EvalCase) -> Check:
    """Every untrusted variable the case passes appears, delimited and intact."""
    regions = rendered.regions
    absent = [
        name
        for name in prompt.untrusted
        if name in case.variables
        and region_names(name, regions)  # it holds text at all
        and not any(r in rendered.text for n in region_names(name, regions) for r in regions[n])
    ]
    expected = list(prompt.untrusted)
    if absent:
        return Check(
            "delimited",
            expected,
            False,
            f"not in the prompt as delimited data: {', '.join(absent)}",
        )
    return Check("delimited", expected, True)


def _output_checks(output: str, case: EvalCase) -> list[Check]:
    checks = []
    for pattern in case.expect.output_matches:
        hit = re.search(pattern, output, re.M) is not None
        checks.append(Check("output_matches", pattern, hit, "" if hit else "no match"))
    schema = case.expect.output_json_schema
    if schema is not None:
        try:
            problems = schema_problems(json.loads(output), schema)
        except ValueError as exc:
            problems = [f"not JSON: {exc}"]
        checks.append(Check("output_json_schema", dict(schema), not problems, "; ".join(problems)))
    return checks


def _run_case(
    prompt: PromptFile, case: EvalCase, version: int, model: ModelHook | None
) -> CaseResult:
    try:
        rendered = render_prompt(prompt, case.variables, version=version)
    except PromptRenderError as exc:
        return CaseResult(case.name, (Check("rendered", True, False, exc.message),))
    checks = [Check("rendered", True, True), _delimited(rendered, prompt, case)]
    checks += _text_checks(rendered.text, case)
    if not case.expect.output_checks:
        return CaseResult(case.name, tuple(checks), chars=len(rendered.text))
    if model is None:
        return CaseResult(
            case.name, tuple(checks), skipped=case.expect.output_checks, chars=len(rendered.text)
        )
    try:
        output = model(rendered)
    except Exception as exc:  # the hook is the caller's code: its failure fails the case
        checks.append(Check("model", True, False, f"{type(exc).__name__}: {exc}"))
        return CaseResult(case.name, tuple(checks), chars=len(rendered.text))
    checks += _output_checks(output, case)
    return CaseResult(
        case.name, tuple(checks), chars=len(rendered.text), output=output[:_OUTPUT_CHARS]
    )


def evaluate_prompt(
    prompt: PromptFile,
    cases: Sequence[EvalCase] | None = None,
    *,
    model: ModelHook | None = None,
    version: int = 0,
) -> EvaluationResult:
    """Run evaluation cases on ``prompt`` (module docs).

    Args:
        prompt: The parsed prompt.
        cases: The cases to run (default: the prompt's own).
        model: A model to run output checks with; without one they are skipped.
        version: The registry version ``prompt`` is (0 for a bare file).

    Returns:
        The result; it passes when there is at least one case and every case passed.
    """
    chosen = tuple(prompt.cases if cases is None else cases)
    return EvaluationResult(
        tuple(_run_case(prompt, case, version, model) for case in chosen),
        cases_digest(chosen),
        model is not None,
        prompt.sha256,
    )
