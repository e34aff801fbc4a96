"""The Jinja2 sandbox prompt templates compile and render in.

Why a sandbox although templates are reviewed: a template is text that a person with
``prompts:propose`` writes and the runtime executes inside every worker. Jinja2's
:class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` refuses attribute access to
internals (``{{ ''.__class__ }}``, ``__globals__``, ``mro``), calls that change values
(``list.append``) and huge ranges, so a template can format its variables and
nothing else. On top of it:

* ``StrictUndefined``: a variable or attribute that is missing is an error, never an
  empty string silently left out of a prompt;
* autoescape off: prompts are not HTML (untrusted values are delimited instead, see
  :mod:`.untrusted`);
* no loader: ``{% include %}``, ``{% extends %}`` and ``{% import %}`` are refused when
  a prompt is read, so a version is one self-contained file whose hash says it all;
* ``trim_blocks`` and ``lstrip_blocks``: a line holding only a ``{% ... %}`` tag leaves
  no blank line behind.

Every Jinja2 failure leaves this module as :class:`~sluice.errors.PromptRenderError`.
"""

from __future__ import annotations

import functools
from typing import Any

import jinja2
from jinja2 import StrictUndefined, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from sluice.errors import PromptRenderError

__all__ = ["compile_template", "render_template", "template_variables"]

_ENV = ImmutableSandboxedEnvironment(
    undefined=StrictUndefined,
    autoescape=False,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=False,
)

# What a template's own code can fail with at render time (besides Jinja2's errors):
# a filter given the wrong type, a division by zero, an index out of range.
_RENDER_FAILURES = (
    jinja2.TemplateError,
    ArithmeticError,
    LookupError,
    TypeError,
    ValueError,
    AttributeError,
)


def _where(source_name: str, first_line: int, lineno: int | None) -> str:
    return f"{source_name}, line {first_line + (lineno or 1) - 1}"


def template_variables(source: str, *, source_name: str, first_line: int = 1) -> set[str]:
    """The variables ``source`` reads from its context (builtins like ``range`` excluded).

    Raises:
        PromptRenderError: A syntax error, or an include, extends or import.

    Example:
        >>> sorted(template_variables("{{ a }}{% for x in b %}{{ x }}{% endfor %}",
        ...                           source_name="t"))
        ['a', 'b']
    """
    try:
        parsed = _ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise PromptRenderError(
            f"template syntax error in {_where(source_name, first_line, exc.lineno)}: "
            f"{exc.message}",
            hint="see https://jinja.palletsprojects.com/en/stable/templates/",
        ) from None
    if any(True for _ in meta.find_referenced_templates(parsed)):
        raise PromptRenderError(
            f"{source_name} includes, extends or imports another template",
            hint="a prompt is one self-contained file: copy the text it needs",
        )
    return set(meta.find_undeclared_variables(parsed)) - set(_ENV.globals)


@functools.lru_cache(maxsize=256)
def compile_template(source: str) -> jinja2.Template:
    """The compiled template of ``source`` (cached: versions are immutable).

    Raises:
        PromptRenderError: A syntax error.
    """
    try:
        return _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise PromptRenderError(
            f"template syntax error, line {exc.lineno}: {exc.message}"
        ) from None


def render_template(
    source: str, variables: dict[str, Any], *, source_name: str, first_line: int = 1
) -> str:
    """Render ``source`` in the sandbox.

    Raises:
        PromptRenderError: A missing variable or attribute, something the sandbox
            forbids, or any other failure of the template's own code.

    Example:
        >>> render_template("Hi {{ who }}", {"who": "Ana"}, source_name="t")
        'Hi Ana'
        >>> render_template("{{ ''.__class__ }}", {}, source_name="t")
        Traceback (most recent call last):
        ...
        sluice.errors.PromptRenderError: t, line 1: the sandbox refused it: ...
    """
    template = compile_template(source)
    try:
        return template.render(variables)
    except jinja2.exceptions.SecurityError as exc:
        lineno = _lineno(exc)
        raise PromptRenderError(
            f"{_where(source_name, first_line, lineno)}: the sandbox refused it: {exc}",
            hint="templates may read their variables and format them; internals and "
            "mutating methods are off limits",
        ) from None
    except jinja2.UndefinedError as exc:
        lineno = _lineno(exc)
        raise PromptRenderError(
            f"{_where(source_name, first_line, lineno)}: {exc.message}",
            hint="pass every variable the prompt declares; test an optional one with "
            "`{% if name is defined %}`",
        ) from None
    except _RENDER_FAILURES as exc:
        lineno = _lineno(exc)
        raise PromptRenderError(
            f"{_where(source_name, first_line, lineno)}: {type(exc).__name__}: {exc}"
        ) from None


def _lineno(exc: BaseException) -> int | None:
    """The template line an exception was raised at, from its traceback."""
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
