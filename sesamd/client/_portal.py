"""The "portal" JSON layout of config, testdata and env files (client-spec 5.4), and a parser that keeps
numbers exactly as written so that formatting never changes a value's digits.

Keys are ordered by convention (``_id``, ``type``, ``name``, ... then the rest alphabetically, then the
internal ``_x``/``$audit`` keys); objects open on the line of their key or array, arrays stay on one line
except where an element is itself an array. :func:`dumps` gives the text, ending in one newline.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["Number", "compact", "dumps", "loads", "sort_key"]

LEADING = ("_id", "type", "name", "description", "source", "sink", "transform", "pump", "metadata", "system",
           "datasets", "where", "return", "recurse", "max_depth", "exclude_root", "track-dependencies", "trace",
           "default")
_RANK = {key: rank for rank, key in enumerate(LEADING)}
TRAILING = frozenset({"$audit", "$principals-from-user"})
INDENT = "  "


class Number(str):
    """A JSON number kept as its literal text (``22.10`` stays ``22.10``)."""

    __slots__ = ()


def loads(text: str | bytes) -> Any:
    """JSON text as Python values; non-integer numbers become :class:`Number` (a ``ValueError`` when the
    text is not JSON). A leading UTF-8 BOM is allowed."""
    if isinstance(text, bytes):
        text = text.decode("utf-8-sig")
    elif text.startswith("\ufeff"):
        text = text[1:]
    return json.loads(text, parse_float=Number, parse_constant=Number)


def sort_key(key: str) -> tuple[int, int, str]:
    """Where ``key`` goes among an object's keys."""
    if key in TRAILING or (key.startswith("_") and key != "_id"):
        return (2, 0, key)
    rank = _RANK.get(key)
    return (0, rank, "") if rank is not None else (1, 0, key)


def dumps(value: Any) -> str:
    """``value`` in portal layout (non-ASCII kept raw), ending in ``\\n``."""
    out: list[str] = []
    _value(value, out, depth=0, in_array=False)
    return "".join(out) + "\n"


def compact(value: Any) -> str:
    """``value`` on one line (``", "`` and ``": "`` separators, keys in their order, non-ASCII raw)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)}: {compact(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(compact(v) for v in value) + "]"
    return _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, Number):
        return str.__str__(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return json.dumps(value)
    return json.dumps(str(value), ensure_ascii=False)


def _value(value: Any, out: list[str], *, depth: int, in_array: bool) -> None:
    """Append ``value``; ``depth`` is the indent level of the line it starts on (for an element of an array:
    one deeper than the line that opened the array)."""
    if isinstance(value, dict):
        _object(value, out, depth=depth, in_array=in_array)
    elif isinstance(value, list | tuple):
        _array(value, out, depth=depth)
    else:
        out.append(_scalar(value))


def _object(value: dict[str, Any], out: list[str], *, depth: int, in_array: bool) -> None:
    if not value:
        out.append("{}")
        return
    inner = depth if in_array else depth + 1
    out.append("{")
    for position, key in enumerate(sorted(value, key=sort_key)):
        out.append(("," if position else "") + "\n" + INDENT * inner + json.dumps(key, ensure_ascii=False) + ": ")
        _value(value[key], out, depth=inner, in_array=False)
    out.append("\n" + INDENT * (inner - 1) + "}")


def _array(value: list[Any] | tuple[Any, ...], out: list[str], *, depth: int) -> None:
    inner = depth + 1
    out.append("[")
    for position, item in enumerate(value):
        if isinstance(item, list | tuple):
            out.append(("," if position else "") + "\n" + INDENT * inner)
        elif position:
            out.append(", ")
        _value(item, out, depth=inner, in_array=True)
    if value and isinstance(value[-1], list | tuple):
        out.append("\n" + INDENT * depth)
    out.append("]")
