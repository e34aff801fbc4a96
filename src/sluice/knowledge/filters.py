"""Metadata filters: which documents a search may return.

A :class:`Filter` is one condition on one metadata key; a search takes several and keeps
the documents that meet them all. Conditions:

- equality (``product=billing``); on a list value such as ``tags`` it means "contains";
- one of several values, IN (``product=billing,returns``); on a list value: "shares one";
- ranges (``updated>=2026-01-01``, ``<=``, ``>``, ``<``): numbers compare as numbers,
  other values as ISO dates or date-times (``2026-01-01``, ``2026-01-01T10:00:00+00:00``);
  a value that is neither never matches a range.

Besides the document's metadata, the keys ``source``, ``doc_id``, ``format`` and
``ingested_at`` (ISO date-time, UTC) can be filtered on.

Filters are evaluated in Python against each document's metadata, then handed to both
retrievers as a list of documents, so they mean exactly the same on SQLite and
PostgreSQL and whatever the metadata's types.

Example:
    >>> f = parse_filter("tags=refund,billing")
    >>> f.matches({"tags": ("refund", "cards")}), f.matches({"tags": ("login",)})
    (True, False)
    >>> parse_filter("updated>=2026-01-01").matches({"updated": "2026-02-03"})
    True
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from sluice.errors import InvalidFilterError
from sluice.knowledge.documents import MetadataValue

__all__ = ["Filter", "FilterOp", "matches_all", "parse_filter", "parse_filters"]

FilterOp = Literal["eq", "in", "ge", "gt", "le", "lt"]
_RANGE_OPS: dict[str, FilterOp] = {">=": "ge", "<=": "le", ">": "gt", "<": "lt"}
_SYNTAX = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(>=|<=|=|>|<)\s*(.*?)\s*$", re.DOTALL)

Scalar = str | int | float | bool


@dataclass(frozen=True)
class Filter:
    """One condition on one metadata key (module docs).

    Build one with :meth:`eq`, :meth:`any_of`, :meth:`at_least`, :meth:`at_most`, or
    :func:`parse_filter` from ``key=value`` text.

    Attributes:
        key: The metadata key.
        op: ``eq``, ``in``, ``ge``, ``gt``, ``le`` or ``lt``.
        values: The value (one), or the values of ``in``.
    """

    key: str
    op: FilterOp
    values: tuple[Scalar, ...]

    def __post_init__(self) -> None:
        if not self.key:
            raise InvalidFilterError("a filter needs a metadata key")
        if not self.values or (self.op != "in" and len(self.values) != 1):
            raise InvalidFilterError(f"filter on {self.key!r}: wrong number of values")

    @classmethod
    def eq(cls, key: str, value: Scalar) -> Filter:
        """``key`` equals ``value`` (or, for a list value, contains it)."""
        return cls(key, "eq", (value,))

    @classmethod
    def any_of(cls, key: str, values: Iterable[Scalar]) -> Filter:
        """``key`` is one of ``values`` (or, for a list value, shares one)."""
        return cls(key, "in", tuple(values))

    @classmethod
    def at_least(cls, key: str, value: Scalar, *, inclusive: bool = True) -> Filter:
        """``key >= value`` (``>`` when not inclusive)."""
        return cls(key, "ge" if inclusive else "gt", (value,))

    @classmethod
    def at_most(cls, key: str, value: Scalar, *, inclusive: bool = True) -> Filter:
        """``key <= value`` (``<`` when not inclusive)."""
        return cls(key, "le" if inclusive else "lt", (value,))

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        """Whether a document with this metadata meets the condition."""
        if self.key not in metadata:
            return False
        held = metadata[self.key]
        if self.op in ("eq", "in"):
            present = {_text(v) for v in held} if isinstance(held, list | tuple) else {_text(held)}
            return any(_text(v) in present for v in self.values)
        if isinstance(held, list | tuple):
            return False
        return _compare(held, self.values[0], self.op)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (search results echo their filters)."""
        return {"key": self.key, "op": self.op, "values": list(self.values)}

    def __str__(self) -> str:
        symbol = {"eq": "=", "in": "=", "ge": ">=", "gt": ">", "le": "<=", "lt": "<"}[self.op]
        return f"{self.key}{symbol}{','.join(_text(v) for v in self.values)}"


def _text(value: Any) -> str:
    """Equality compares text: ``2 == "2"``, ``true == "true"`` (CLI values are text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return _moment(date.fromisoformat(text))
        return _moment(datetime.fromisoformat(text))
    except ValueError:
        return None


def _compare(held: Any, bound: Any, op: FilterOp) -> bool:
    left: float | datetime | None
    right: float | datetime | None
    left, right = _number(held), _number(bound)
    if left is None or right is None:
        left, right = _moment(held), _moment(bound)
    if left is None or right is None:
        return False
    if op == "ge":
        return left >= right  # type: ignore[operator]
    if op == "gt":
        return left > right  # type: ignore[operator]
    if op == "le":
        return left <= right  # type: ignore[operator]
    return left < right  # type: ignore[operator]


def parse_filter(text: str) -> Filter:
    """A filter from ``key=value``, ``key=v1,v2`` (IN) or ``key>=value`` (``<=``, ``>``, ``<``).

    Raises:
        InvalidFilterError: Not of that form.

    Example:
        >>> parse_filter("product=billing,returns")
        Filter(key='product', op='in', values=('billing', 'returns'))
    """
    found = _SYNTAX.match(text)
    if found is None or not found.group(3):
        raise InvalidFilterError(
            f"cannot read the filter {text!r}",
            hint="write key=value, key=v1,v2 (any of), or key>=value / key<=value / "
            "key>value / key<value (numbers, ISO dates)",
        )
    key, symbol, value = found.groups()
    if symbol == "=":
        values = [v.strip() for v in value.split(",") if v.strip()]
        if len(values) > 1:
            return Filter.any_of(key, values)
        return Filter.eq(key, values[0] if values else value)
    return Filter(key, _RANGE_OPS[symbol], (value,))


def parse_filters(texts: Sequence[str]) -> tuple[Filter, ...]:
    """Each text through :func:`parse_filter`."""
    return tuple(parse_filter(t) for t in texts)


def matches_all(filters: Sequence[Filter], metadata: Mapping[str, MetadataValue | Any]) -> bool:
    """Whether ``metadata`` meets every filter (True for no filters)."""
    return all(f.matches(metadata) for f in filters)
