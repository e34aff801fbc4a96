r"""Markdown: front matter as metadata, ATX and setext headings as structure.

The document's text is the Markdown source after the front matter, normalized, so a
citation quotes what the author wrote. Headings are found with markdown-it-py's
CommonMark parser, which knows that ``# x`` inside a fenced code block is not a heading.

Front matter is the block between a first line ``---`` and the next ``---`` (or
``...``) line, one ``key: value`` per line; a key with an empty value may be followed by
``- item`` lines. Comments (``#``) and blank lines are skipped. It is not YAML: nested
mappings are refused with the line number.

Example:
    >>> doc = read_markdown(
    ...     b"---\ntitle: Refunds\ntags: [billing, refunds]\n---\n# Timing\n\nFive days.",
    ...     source="kb/refunds.md",
    ... )
    >>> doc.title, doc.metadata["tags"], [h.title for h in doc.headings]
    ('Refunds', ('billing', 'refunds'), ['Timing'])
    >>> doc.text
    '# Timing\n\nFive days.'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache

from markdown_it import MarkdownIt

from sluice.errors import IngestError
from sluice.knowledge.documents import Document, DocumentFormat, Heading, MetadataValue
from sluice.knowledge.documents import normalize_text as _normalize
from sluice.knowledge.readers.common import decode_utf8, merge_metadata, title_from_source

__all__ = ["find_headings", "parse_front_matter", "read_markdown"]

_KEY_VALUE = re.compile(r"^([A-Za-z_][\w.-]*)\s*:\s*(.*)$")
_LIST_ITEM = re.compile(r"^\s*-\s+(.*)$")


@cache
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark")


def parse_front_matter(text: str, source: str = "") -> tuple[dict[str, object], str]:
    r"""Split ``---`` front matter from the body: ``(metadata, body)``.

    Text without a closed front-matter block is all body.

    Example:
        >>> parse_front_matter("---\nproduct: billing\ntags:\n  - a\n  - b\n---\nBody")
        ({'product': 'billing', 'tags': ['a', 'b']}, 'Body')
    """
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return {}, text
    close = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None)
    if close is None:
        return {}, text
    meta: dict[str, object] = {}
    last_key: str | None = None
    for number, line in enumerate(lines[1:close], start=2):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        item = _LIST_ITEM.match(line)
        if item and last_key is not None and isinstance(meta[last_key], list):
            value = meta[last_key]
            assert isinstance(value, list)
            value.append(_unquote(item.group(1)))
            continue
        pair = _KEY_VALUE.match(stripped)
        if pair is None or line[:1].isspace():
            raise IngestError(
                f"{source}: front matter line {number} is not 'key: value': {stripped!r}",
                path=source,
                reason="bad_front_matter",
                location=f"line {number}",
                hint="one 'key: value' per line; lists as 'tags: [a, b]' or '- item' lines",
            )
        key, value_text = pair.group(1).lower(), pair.group(2).strip()
        meta[key] = [] if not value_text else _unquote(value_text)
        last_key = key
    return meta, "\n".join(lines[close + 1 :])


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def find_headings(text: str) -> tuple[Heading, ...]:
    r"""The headings of Markdown ``text`` with their line spans and plain titles.

    Example:
        >>> find_headings("Intro\n\n## Fees *now*\n\n```\n# not a heading\n```")
        (Heading(level=2, title='Fees now', start=7, end=20),)
    """
    line_starts = [0]
    for match in re.finditer("\n", text):
        line_starts.append(match.end())
    line_starts.append(len(text) + 1)  # sentinel: one past a final newline

    def line_end(line: int) -> int:  # end of the line, without its newline
        return min(line_starts[line + 1] - 1, len(text))

    headings: list[Heading] = []
    tokens = _parser().parse(text)
    for i, token in enumerate(tokens):
        if token.type != "heading_open" or token.map is None:
            continue
        inline = tokens[i + 1]
        title = " ".join(
            "".join(
                child.content
                for child in inline.children or []
                if child.type in ("text", "code_inline")
            ).split()
        )
        if not title:
            continue
        first, last = token.map
        headings.append(Heading(int(token.tag[1]), title, line_starts[first], line_end(last - 1)))
    return tuple(headings)


def read_markdown(
    data: bytes, *, source: str, metadata: Mapping[str, MetadataValue] | None = None
) -> Document:
    """One Markdown file as a document (module docs).

    Args:
        data: The file's bytes (UTF-8).
        source: Its source URI.
        metadata: The caller's key=value metadata; it overrides front matter.

    Raises:
        IngestError: Not UTF-8 (``not_utf8``) or malformed front matter
            (``bad_front_matter``).
    """
    raw_text = _normalize(decode_utf8(data, source))
    found, body = parse_front_matter(raw_text, source)
    text = _normalize(body)
    headings = find_headings(text)
    meta = merge_metadata(found, metadata)
    title = found.get("title")
    title = title.strip() if isinstance(title, str) else ""
    if not title:
        title = headings[0].title if headings else title_from_source(source)
    return Document.create(
        source=source,
        format=DocumentFormat.MARKDOWN,
        text=text,
        raw=data,
        title=title,
        metadata=meta,
        headings=headings,
    )
