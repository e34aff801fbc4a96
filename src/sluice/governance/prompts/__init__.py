r"""Prompts as code: versioned, evaluated, approved by a second person, rendered safely.

A prompt is a file (:mod:`.prompt_file`: TOML front matter, a Jinja2 template) with a
name and a content hash. :class:`PromptRegistry` keeps its versions in the store and
walks them through an audited lifecycle: proposed, evaluated against the prompt's own
cases (:mod:`.evaluation`), approved by someone other than the author, activated,
rolled back. :meth:`PromptRegistry.render` renders the active version in a sandbox
(:mod:`.sandbox`), with every untrusted variable delimited as data
(:mod:`.untrusted`), and says which version and hash it rendered
(:meth:`RenderedPrompt.lineage`). The guide is ``docs/prompts.md``.

Example:
    >>> prompt = parse_prompt('+++\nname = "greet"\n[variables.who]\nuntrusted = true\n'
    ...                       '+++\nGreet {{ who }}.\n')
    >>> render_prompt(prompt, {"who": "Ana"}).text
    'Greet <untrusted_data name="who">Ana</untrusted_data>.'
"""

from sluice.governance.prompts.cases import EvalCase, Expectation, cases_digest, parse_cases
from sluice.governance.prompts.evaluation import (
    CaseResult,
    Check,
    EvaluationResult,
    ModelHook,
    evaluate_prompt,
)
from sluice.governance.prompts.prompt_file import (
    MessageRole,
    PromptFile,
    PromptSection,
    VariableSpec,
    canonical_text,
    content_sha256,
    load_prompt,
    parse_prompt,
)
from sluice.governance.prompts.records import (
    PromptActivation,
    PromptState,
    PromptVersion,
    Proposal,
)
from sluice.governance.prompts.registry import PromptRegistry
from sluice.governance.prompts.rendering import PromptMessage, RenderedPrompt, render_prompt
from sluice.governance.prompts.untrusted import (
    UNTRUSTED_TAG,
    attribute_text,
    defuse,
    delimit,
)

__all__ = [
    "UNTRUSTED_TAG",
    "CaseResult",
    "Check",
    "EvalCase",
    "EvaluationResult",
    "Expectation",
    "MessageRole",
    "ModelHook",
    "PromptActivation",
    "PromptFile",
    "PromptMessage",
    "PromptRegistry",
    "PromptSection",
    "PromptState",
    "PromptVersion",
    "Proposal",
    "RenderedPrompt",
    "VariableSpec",
    "attribute_text",
    "canonical_text",
    "cases_digest",
    "content_sha256",
    "defuse",
    "delimit",
    "evaluate_prompt",
    "load_prompt",
    "parse_cases",
    "parse_prompt",
    "render_prompt",
]
