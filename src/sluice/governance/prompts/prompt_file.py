r"""The prompt file: TOML front matter between ``+++`` lines, then a Jinja2 template.

::

    +++
    name = "support-triage.draft-reply"       # lower case, digits, . _ -
    description = "First reply to a customer"
    evaluation = "draft_reply.cases.toml"     # or inline [[cases]] tables (.cases)
    delimiters = ["source"]                   # other tags the template wraps data in

    [variables.intent]
    description = "The predicted intent"      # trusted: rendered as given

    [variables.message]
    description = "The customer's message"
    untrusted = true                          # always delimited as data
    max_chars = 4000                          # cut before delimiting
    +++
    ::: system
    You answer customers. The message was classified as: {{ intent }}.
    ::: user
    {{ message }}

Front matter keys: ``name`` (required), ``description``, ``variables`` (one table per
variable: ``description``, ``untrusted`` (default false), ``required`` (default true),
``max_chars``), ``evaluation`` (a cases file, relative to the prompt file) or ``cases``
(inline, :mod:`.cases`), ``delimiters``. Any other key is an error.

The body is the template. Lines ``::: system``, ``::: user`` and ``::: assistant``
split it into chat messages, each rendered on its own (so no value can forge a new
message); without them the whole body is one ``user`` message. The template may read
only declared variables, and may not include, extend or import other templates.

The *content* of a version is the file's canonical text: UTF-8 without a byte-order
mark, ``\n`` line ends, ending in exactly one newline. Its sha256 is the version's
identity, recorded with every rendered prompt; line-end and trailing-newline
differences do not change it, any other byte does.

Example:
    >>> prompt = parse_prompt('+++\nname = "hello"\n[variables.who]\n+++\nHi {{ who }}\r\n')
    >>> prompt.name, prompt.sections[0].role, prompt.content.endswith("}}\n")
    ('hello', 'user', True)
    >>> prompt.sha256 == content_sha256("+++\nname = \"hello\"\n[variables.who]\n+++\nHi {{ who }}")
    True
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sluice.errors import PromptError, PromptRenderError
from sluice.governance.prompts.cases import EvalCase, parse_cases
from sluice.governance.prompts.sandbox import template_variables
from sluice.governance.prompts.untrusted import UNTRUSTED_TAG

__all__ = [
    "MessageRole",
    "PromptFile",
    "PromptSection",
    "VariableSpec",
    "canonical_text",
    "content_sha256",
    "load_prompt",
    "parse_prompt",
]

MessageRole = Literal["system", "user", "assistant"]

FENCE = "+++"
_ROLE_LINE = re.compile(r"^:::[ \t]*(system|user|assistant)[ \t]*$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_TOP_KEYS = {"name", "description", "variables", "evaluation", "cases", "delimiters"}
_VARIABLE_KEYS = {"description", "untrusted", "required", "max_chars"}


@dataclass(frozen=True)
class VariableSpec:
    """A variable a prompt declares.

    Attributes:
        name: A Python-style identifier.
        description: What it holds.
        untrusted: Text from outside (customers, documents, retrieved passages): always
            defused and delimited as data when rendered.
        required: Rendering without it fails (an optional one is tested with
            ``{% if name is defined %}``).
        max_chars: Untrusted text is cut to this many characters before delimiting.
    """

    name: str
    description: str = ""
    untrusted: bool = False
    required: bool = True
    max_chars: int | None = None


@dataclass(frozen=True)
class PromptSection:
    """One chat message of the template: its role, its source and where it starts."""

    role: MessageRole
    template: str
    line: int


@dataclass(frozen=True)
class PromptFile:
    """A parsed prompt file (module docs).

    Attributes:
        name: The prompt's name.
        description: What it is for.
        variables: The declared variables, in file order.
        sections: The template, split into chat messages.
        cases: Its evaluation cases (empty if it has none, or if they were not loaded).
        evaluation: Where its cases come from: ``inline``, the path as the file wrote
            it, or None.
        delimiters: Tags whose look-alikes are defused in untrusted values (always
            including ``untrusted_data``).
        content: The canonical text.
        sha256: sha256 of ``content``.
    """

    name: str
    description: str
    variables: tuple[VariableSpec, ...]
    sections: tuple[PromptSection, ...]
    cases: tuple[EvalCase, ...]
    evaluation: str | None
    delimiters: tuple[str, ...]
    content: str
    sha256: str

    def variable(self, name: str) -> VariableSpec | None:
        """The declaration of ``name``, or None."""
        return next((v for v in self.variables if v.name == name), None)

    @property
    def untrusted(self) -> tuple[str, ...]:
        """The names of the untrusted variables."""
        return tuple(v.name for v in self.variables if v.untrusted)


def canonical_text(raw: str | bytes) -> str:
    r"""The canonical form of a prompt file's text (module docs).

    Raises:
        PromptError: Bytes that are not UTF-8.

    Example:
        >>> canonical_text(b"\xef\xbb\xbfa\r\nb\r\n\r\n")
        'a\nb\n'
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PromptError(
                f"a prompt file must be UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None
    text = raw.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return text.rstrip("\n") + "\n"


def content_sha256(text: str | bytes) -> str:
    """sha256 (hex) of the canonical text of a prompt file."""
    return hashlib.sha256(canonical_text(text).encode()).hexdigest()


def _error(source: str, what: str, hint: str | None = None) -> PromptError:
    return PromptError(
        f"{source}: {what}", hint=hint or "see docs/prompts.md for the prompt file format"
    )


def _split(content: str, source: str) -> tuple[str, str, int]:
    """(front matter, body, line the body starts at)."""
    lines = content.split("\n")
    if not lines or lines[0].strip() != FENCE:
        raise _error(source, f"a prompt file starts with a line {FENCE} (TOML front matter)")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == FENCE)
    except StopIteration:
        raise _error(source, f"the front matter has no closing {FENCE} line") from None
    return "\n".join(lines[1:end]), "\n".join(lines[end + 1 :]), end + 2


def _variables(raw: Any, source: str) -> tuple[VariableSpec, ...]:
    if not isinstance(raw, Mapping):
        raise _error(source, "variables must be a table of tables ([variables.NAME])")
    specs = []
    for name, spec in raw.items():
        if not _IDENTIFIER.match(name):
            raise _error(source, f"variable name {name!r} is not an identifier")
        if not isinstance(spec, Mapping):
            raise _error(source, f"[variables.{name}] must be a table")
        unknown = sorted(set(spec) - _VARIABLE_KEYS)
        if unknown:
            raise _error(source, f"[variables.{name}] has unknown key {', '.join(unknown)}")
        max_chars = spec.get("max_chars")
        if max_chars is not None and (
            isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1
        ):
            raise _error(source, f"[variables.{name}] max_chars must be a positive integer")
        flags = {k: spec.get(k, k == "required") for k in ("untrusted", "required")}
        if not all(isinstance(v, bool) for v in flags.values()):
            raise _error(source, f"[variables.{name}] untrusted and required are true or false")
        specs.append(
            VariableSpec(
                name,
                str(spec.get("description", "")),
                untrusted=flags["untrusted"],
                required=flags["required"],
                max_chars=max_chars,
            )
        )
    return tuple(specs)


def _sections(body: str, first_line: int, source: str) -> tuple[PromptSection, ...]:
    sections: list[PromptSection] = []
    role: MessageRole | None = None
    start, chunk = first_line, []
    for offset, line in enumerate(body.split("\n")):
        marker = _ROLE_LINE.match(line)
        if marker is None:
            chunk.append(line)
            continue
        if role is not None:
            sections.append(PromptSection(role, "\n".join(chunk), start))
        elif "".join(chunk).strip():
            raise _error(source, "text before the first ::: role line belongs to no message")
        role, start, chunk = marker.group(1), first_line + offset + 1, []  # type: ignore[assignment]
    sections.append(PromptSection(role or "user", "\n".join(chunk), start))
    if not any(s.template.strip() for s in sections):
        raise _error(source, "the template (after the front matter) is empty")
    return tuple(sections)


def _cases(
    meta: Mapping[str, Any], base_dir: Path | None, source: str, load: bool
) -> tuple[tuple[EvalCase, ...], str | None]:
    if "cases" in meta and "evaluation" in meta:
        raise _error(source, "give either inline [[cases]] or an evaluation file, not both")
    if "cases" in meta:
        return parse_cases(meta["cases"], source=source), "inline"
    path = meta.get("evaluation")
    if path is None:
        return (), None
    if not isinstance(path, str) or not path:
        raise _error(source, "evaluation must be the path of a cases file")
    if not load:
        return (), path
    if base_dir is None:
        raise _error(
            source,
            f"its evaluation file {path!r} is relative to the prompt file, which is not known",
            hint="propose the file by its path, or inline the cases as [[cases]]",
        )
    file = base_dir / path
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _error(source, f"cannot read its evaluation file {file}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise _error(source, f"its evaluation file {file} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"cases"})
    if unknown:
        raise _error(source, f"{file} has unknown key {', '.join(unknown)} (only [[cases]])")
    return parse_cases(data.get("cases", []), source=str(file)), path


def parse_prompt(
    text: str | bytes,
    *,
    base_dir: Path | None = None,
    source: str = "<prompt>",
    load_cases: bool = True,
) -> PromptFile:
    """Parse and check a prompt file's text (module docs).

    Args:
        text: The file's text or bytes.
        base_dir: The folder its ``evaluation`` path is relative to.
        source: How errors name it (its path).
        load_cases: Read the evaluation file; False leaves ``cases`` empty (a stored
            version keeps its cases apart).

    Raises:
        PromptError: Not a prompt file, bad front matter, an unreadable cases file.
        PromptRenderError: A template syntax error, an undeclared variable, an include.
    """
    content = canonical_text(text)
    front, body, body_line = _split(content, source)
    try:
        meta = tomllib.loads(front)
    except tomllib.TOMLDecodeError as exc:
        raise _error(source, f"the front matter is not valid TOML: {exc}") from None
    unknown = sorted(set(meta) - _TOP_KEYS)
    if unknown:
        raise _error(source, f"unknown front matter key {', '.join(unknown)}")
    name = meta.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise _error(
            source,
            f"name {name!r} must be 1-100 characters: lower case letters, digits, '.', '_', "
            "'-', starting with a letter or digit",
        )
    variables = _variables(meta.get("variables", {}), source)
    delimiters = meta.get("delimiters", [])
    if not isinstance(delimiters, list) or not all(
        isinstance(d, str) and _IDENTIFIER.match(d) for d in delimiters
    ):
        raise _error(source, "delimiters must be a list of tag names")
    sections = _sections(body, body_line, source)
    declared = {v.name for v in variables}
    for section in sections:
        used = template_variables(section.template, source_name=source, first_line=section.line)
        undeclared = sorted(used - declared)
        if undeclared:
            raise PromptRenderError(
                f"{source}: the template reads undeclared variable(s) {', '.join(undeclared)}",
                hint="declare each under [variables.NAME] (untrusted = true for text from outside)",
            )
    cases, evaluation = _cases(meta, base_dir, source, load_cases)
    return PromptFile(
        name=name,
        description=str(meta.get("description", "")),
        variables=variables,
        sections=sections,
        cases=cases,
        evaluation=evaluation,
        delimiters=(UNTRUSTED_TAG, *(d for d in delimiters if d != UNTRUSTED_TAG)),
        content=content,
        sha256=hashlib.sha256(content.encode()).hexdigest(),
    )


def load_prompt(path: Path) -> PromptFile:
    """Read and parse the prompt file at ``path`` (its evaluation file relative to it).

    Raises:
        PromptError: It cannot be read or parsed (see :func:`parse_prompt`).
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PromptError(
            f"cannot read prompt file {path}: {exc.strerror}",
            hint="give the path of a .prompt file",
        ) from None
    return parse_prompt(raw, base_dir=path.parent, source=str(path))
