"""A small subset of JSON Schema, enough to state the shape of a model's JSON output.

Why not the ``jsonschema`` package: it is not a dependency of Sluice, and evaluation
cases need a few keywords only. A keyword outside :data:`KEYWORDS` is refused when the
case is read (:func:`unsupported_keywords`), never ignored: an ignored keyword would
make a check pass that states something it does not check.

Supported: ``type`` (a name or a list of names), ``enum``, ``const``, ``properties``,
``required``, ``additionalProperties`` (true or false), ``items``, ``minItems``,
``maxItems``, ``minLength``, ``maxLength``, ``pattern`` (searched), ``minimum``,
``maximum``; ``title``, ``description`` and ``$comment`` are notes.

Example:
    >>> schema = {"type": "object", "required": ["label"],
    ...           "properties": {"label": {"enum": ["refund", "other"]}}}
    >>> schema_problems({"label": "refund"}, schema)
    []
    >>> schema_problems({"label": "spam"}, schema)
    ["$.label: 'spam' is not one of ['refund', 'other']"]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["KEYWORDS", "schema_problems", "unsupported_keywords"]

KEYWORDS = frozenset(
    {
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "title",
        "description",
        "$comment",
    }
)

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "null": (type(None),),
}


def unsupported_keywords(schema: Any, path: str = "$") -> list[str]:
    """Where ``schema`` uses a keyword this module does not check (or a bad type name)."""
    if not isinstance(schema, Mapping):
        return [f"{path}: a schema must be a table, not {type(schema).__name__}"]
    found = [f"{path}: unsupported keyword {k!r}" for k in schema if k not in KEYWORDS]
    types = schema.get("type")
    for name in [types] if isinstance(types, str) else types or []:
        if name not in _TYPES:
            found.append(f"{path}: unknown type {name!r}")
    for key, sub in (schema.get("properties") or {}).items():
        found += unsupported_keywords(sub, f"{path}.{key}")
    if "items" in schema:
        found += unsupported_keywords(schema["items"], f"{path}[]")
    return found


def _is(value: Any, name: str) -> bool:
    if isinstance(value, bool) and name in ("number", "integer"):
        return False  # JSON booleans are not numbers, although Python's are ints
    return isinstance(value, _TYPES[name])


def schema_problems(value: Any, schema: Mapping[str, Any], path: str = "$") -> list[str]:
    """What in ``value`` (parsed JSON) does not fit ``schema``; empty when it fits."""
    problems: list[str] = []
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_is(value, n) for n in names):
            return [f"{path}: {type(value).__name__} is not {' or '.join(names)}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: {value!r} is not one of {list(schema['enum'])}")
    if "const" in schema and value != schema["const"]:
        problems.append(f"{path}: {value!r} is not {schema['const']!r}")
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        problems += [f"{path}: missing {k!r}" for k in schema.get("required", ()) if k not in value]
        if schema.get("additionalProperties") is False:
            problems += [f"{path}: unexpected {k!r}" for k in value if k not in properties]
        for key, sub in properties.items():
            if key in value:
                problems += schema_problems(value[key], sub, f"{path}.{key}")
    if isinstance(value, list):
        problems += _bounds(len(value), schema, "minItems", "maxItems", path, "items")
        if "items" in schema:
            for i, item in enumerate(value):
                problems += schema_problems(item, schema["items"], f"{path}[{i}]")
    if isinstance(value, str):
        problems += _bounds(len(value), schema, "minLength", "maxLength", path, "characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(f"{path}: does not match /{schema['pattern']}/")
    if _is(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{path}: {value} > maximum {schema['maximum']}")
    return problems


def _bounds(
    size: int, schema: Mapping[str, Any], low: str, high: str, path: str, unit: str
) -> list[str]:
    out = []
    if low in schema and size < schema[low]:
        out.append(f"{path}: {size} {unit}, fewer than {schema[low]}")
    if high in schema and size > schema[high]:
        out.append(f"{path}: {size} {unit}, more than {schema[high]}")
    return out
