r"""HTML: the visible text, with headings and paragraphs kept as structure.

Parsed with selectolax (the Lexbor HTML5 parser: it builds the tree a browser would, so
unclosed tags and stray markup do not lose text). Script, style, navigation and other
non-content elements are dropped. What remains is laid out the way the Markdown reader's
text looks, so the chunker treats both alike: each heading ``<hN>`` becomes a line
``#... title`` recorded in :attr:`Document.headings`, each block (paragraph, list item,
table row with its cells joined by `` | ``, ...) its own paragraph, ``<pre>`` keeps its lines.

The title is ``<title>``, else the first heading, else the file name; ``<html lang>``
gives ``language``, ``<meta name="keywords">`` gives ``tags``.

Example:
    >>> doc = read_html(
    ...     b"<html lang='en'><title>Refunds</title><nav>Home</nav>"
    ...     b"<h2>Timing</h2><p>Refunds take <b>5</b> days.</p><script>x()</script>",
    ...     source="refunds.html",
    ... )
    >>> doc.title, doc.metadata["language"], doc.text
    ('Refunds', 'en', '## Timing\n\nRefunds take 5 days.')
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from selectolax.lexbor import LexborHTMLParser, LexborNode

from sluice.knowledge.documents import Document, DocumentFormat, Heading, MetadataValue
from sluice.knowledge.documents import normalize_text as _normalize
from sluice.knowledge.readers.common import merge_metadata, title_from_source

__all__ = ["read_html"]

# Elements whose content is never visible text of the page.
_DROP = frozenset(
    {
        "head", "script", "style", "noscript", "template", "nav", "svg", "math", "iframe",
        "object", "embed", "canvas", "select", "button", "input", "textarea",
    }
)  # fmt: skip
# Elements that start a new block (paragraph) of text.
_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "dd", "details",
        "dialog", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form",
        "header", "hgroup", "hr", "li", "main", "ol", "p", "section", "summary", "table",
        "tbody", "tfoot", "thead", "tr", "ul",
    }
)  # fmt: skip
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_CELLS = frozenset({"td", "th"})
_SPACES = re.compile(r"\s+")


class _Layout:
    """Collects blocks of text as the tree is walked, then joins them."""

    def __init__(self) -> None:
        self.blocks: list[tuple[str, int]] = []  # (text, heading level or 0)
        self._inline: list[str] = []
        self._prefix = ""

    def text(self, value: str) -> None:
        self._inline.append(value)

    def line_break(self) -> None:
        self._inline.append("\n")

    def flush(self) -> None:
        lines = ("".join(self._inline)).split("\n")
        text = "\n".join(" ".join(_SPACES.sub(" ", line).split()) for line in lines).strip()
        text = re.sub(r"\n{2,}", "\n", text).rstrip(" |")  # a row's last cell separator
        if text:
            self.blocks.append((self._prefix + text, 0))
        self._inline, self._prefix = [], ""

    def start_item(self) -> None:
        self.flush()
        self._prefix = "- "

    def heading(self, level: int, title: str) -> None:
        self.flush()
        title = " ".join(title.split())
        if title:
            self.blocks.append((title, level))

    def preformatted(self, text: str) -> None:
        self.flush()
        text = _normalize(text)
        if text:
            self.blocks.append((text, 0))


def _layout(body: LexborNode) -> _Layout:
    layout = _Layout()
    # Iterative walk (deeply nested pages must not hit the recursion limit): a stack of
    # (node, leaving) events in document order.
    stack: list[tuple[LexborNode, bool]] = [(body, False)]
    while stack:
        node, leaving = stack.pop()
        tag = node.tag or ""
        if leaving:
            if tag in _BLOCKS:
                layout.flush()
            elif tag in _CELLS:
                layout.text(" | ")
            continue
        if node.is_text_node:
            layout.text(node.text_content or "")
            continue
        if node.is_comment_node or tag in _DROP or "hidden" in node.attributes:
            continue
        if tag in _HEADINGS:
            layout.heading(_HEADINGS[tag], node.text(deep=True, separator=" "))
            continue
        if tag == "pre":
            layout.preformatted(node.text(deep=True))
            continue
        if tag == "br":
            layout.line_break()
            continue
        if tag == "li":
            layout.start_item()
        elif tag in _BLOCKS:
            layout.flush()
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(list(node.iter(include_text=True))))
    layout.flush()
    return layout


def _parse(data: bytes) -> LexborHTMLParser:
    try:
        return LexborHTMLParser(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        # Not UTF-8: let Lexbor find the charset (<meta charset>, BOM, or a guess).
        return LexborHTMLParser(data, encoding=True)


def read_html(
    data: bytes, *, source: str, metadata: Mapping[str, MetadataValue] | None = None
) -> Document:
    """One HTML page as a document (module docs).

    Args:
        data: The file's bytes; UTF-8, or the charset the page declares.
        source: Its source URI.
        metadata: The caller's key=value metadata.
    """
    tree = _parse(data)
    found: dict[str, object] = {}
    if tree.root is not None and (lang := tree.root.attributes.get("lang")):
        found["language"] = lang
    keywords = tree.css_first('meta[name="keywords" i]')
    if keywords is not None and (content := keywords.attributes.get("content")):
        found["tags"] = content
    title_node = tree.css_first("title")
    title = " ".join(title_node.text().split()) if title_node is not None else ""

    parts: list[str] = []
    headings: list[Heading] = []
    offset = 0
    body = tree.body
    for text, level in _layout(body).blocks if body is not None else []:
        if level:
            line = "#" * level + " " + text
            headings.append(Heading(level, text, offset, offset + len(line)))
            text = line
        parts.append(text)
        offset += len(text) + 2  # the blank line that joins blocks
    if not title:
        title = headings[0].title if headings else title_from_source(source)
    return Document.create(
        source=source,
        format=DocumentFormat.HTML,
        text="\n\n".join(parts),
        raw=data,
        title=title,
        metadata=merge_metadata(found, metadata),
        headings=tuple(headings),
    )
