"""String functions (dtl-spec 6.9)."""

from __future__ import annotations

import datetime as _dt
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ._context import Ctx, Evaluator
from ._namespaces import wildcard_matcher
from ._registry import IGNORE, Call, constant, elementwise, expression, function, is_constant
from ._values import NI, URI, as_list, decimal_text, encode_value, json_text


@expression("concat", args=(1, None))
def _concat(call: Call) -> Evaluator:
    evaluators = tuple(call.compile_all())
    items = getattr(evaluators[0], "dtl_items", None) if len(evaluators) == 1 else None
    if items:  # ["concat", ["list", ...]]: the list's string elements, without building the list
        pieces = tuple(e.dtl_constant if is_constant(e) else None for e in items)  # type: ignore[attr-defined]
        if all(p is None or type(p) is str for p in pieces):
            return _fast_concat(items, pieces, _slow_concat_items)
    if not any(is_constant(e) and type(e.dtl_constant) is list for e in evaluators):  # type: ignore[attr-defined]
        pieces = tuple(e.dtl_constant if is_constant(e) else None for e in evaluators)  # type: ignore[attr-defined]
        if all(p is None or type(p) is str for p in pieces):
            return _fast_concat(evaluators, pieces)

    def evaluate(c: Ctx) -> str:
        parts: list[str] = []
        for evaluator in evaluators:
            value = evaluator(c)
            if type(value) is str:
                parts.append(value)
            elif type(value) is list:
                parts.extend(v for v in value if type(v) is str)
        return "".join(parts)

    return evaluate


def _fast_concat(evaluators: tuple[Evaluator, ...], pieces: tuple[str | None, ...],
                 slow: Callable[[tuple[str | None, ...], tuple[Any, ...]], str] | None = None) -> Evaluator:
    """concat where the constant parts are strings, as generated code with an all-strings fast path."""
    env: dict[str, Any] = {"slow": slow or _slow_concat, "EVALUATORS": evaluators, "PIECES": pieces}
    values = []
    terms = []
    for i, (evaluator, piece) in enumerate(zip(evaluators, pieces, strict=True)):
        if piece is None:
            env[f"G{i}"] = evaluator
            values.append(f"v{i}")
            terms.append(f"v{i}")
        else:
            env[f"P{i}"] = piece
            terms.append(f"P{i}")
    if not values:
        return constant("".join(p for p in pieces if p is not None))
    lines = ["def evaluate(c):"]
    lines += [f"    {v} = G{v[1:]}(c)" for v in values]
    check = " and ".join(f"type({v}) is str" for v in values)
    lines.append(f"    if {check}: return {' + '.join(terms)}")
    lines.append(f"    return slow(PIECES, ({', '.join(values)},))")
    exec("\n".join(lines), env)
    evaluator: Evaluator = env["evaluate"]
    return evaluator


def _slow_concat(pieces: tuple[str | None, ...], values: tuple[Any, ...]) -> str:
    parts: list[str] = []
    remaining = iter(values)
    for piece in pieces:
        value = next(remaining) if piece is None else piece
        if type(value) is str:
            parts.append(value)
        elif type(value) is list:
            parts.extend(v for v in value if type(v) is str)
    return "".join(parts)


def _slow_concat_items(pieces: tuple[str | None, ...], values: tuple[Any, ...]) -> str:
    """``_slow_concat`` for the elements of one list argument: only strings count (no nested lists)."""
    parts: list[str] = []
    remaining = iter(values)
    for piece in pieces:
        value = next(remaining) if piece is None else piece
        if type(value) is str:
            parts.append(value)
    return "".join(parts)


@function("join", args=2)
def _join(separator: Any, values: Any) -> str | None:
    if type(separator) is not str:
        return None
    return separator.join(v for v in as_list(values) if type(v) is str)


@expression("split", args=(1, 2))
def _split(call: Call) -> Evaluator:
    values = call.compile(len(call.args) - 1)
    separator_of = call.compile(0) if len(call.args) == 2 else constant(None)

    def split_one(text: str, separator: Any) -> list[str]:
        if separator is None:
            return text.split()
        if separator == "":
            return list(text)
        return text.split(separator)

    def evaluate(c: Ctx) -> Any:
        separator = separator_of(c)
        if separator is not None and type(separator) is not str:
            return None
        value = values(c)
        if type(value) is str:
            return split_one(value, separator)
        if type(value) is list:
            out: list[str] = []
            for item in value:
                if type(item) is str:
                    out.extend(split_one(item, separator))
            return out
        return None

    return evaluate


@elementwise("lower")
def _lower(value: Any) -> Any:
    return value.lower() if type(value) is str else IGNORE


@elementwise("upper")
def _upper(value: Any) -> Any:
    return value.upper() if type(value) is str else IGNORE


def to_string(value: Any) -> Any:
    """The ``string`` cast of one value (IGNORE for null)."""
    kind = type(value)
    if kind is str:
        return value
    if value is None:
        return IGNORE
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        return repr(value)
    if kind is Decimal:
        return decimal_text(value)
    if kind is list or kind is dict:
        return json_text(value)
    if kind is URI:
        return value.value
    if kind is NI:
        return "~:" + value.value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if kind is uuid.UUID:
        return str(value)
    if isinstance(value, _dt.date):
        return encode_value(value)[2:]
    return str(value)


elementwise("string")(to_string)


def _strip_factory(method: str) -> Callable[..., Any]:
    def factory(characters: Any = None) -> Any:
        if characters is not None and type(characters) is not str:
            return None
        strip = getattr(str, method)
        return lambda value: strip(value, characters) if type(value) is str else IGNORE

    return factory


elementwise("strip", params=(0, 1))(_strip_factory("strip"))
elementwise("lstrip", params=(0, 1))(_strip_factory("lstrip"))
elementwise("rstrip", params=(0, 1))(_strip_factory("rstrip"))


@expression("replace", args=(2, 3))
def _replace(call: Call) -> Evaluator:
    from ._registry import apply_elementwise

    values = call.compile(len(call.args) - 1)
    params = call.compile_all()[:-1]

    def make(*args: Any) -> Any:
        if len(args) == 1:
            mapping = args[0]
            if type(mapping) is not dict or not all(type(v) is str for v in mapping.values()):
                return None
            pairs = list(mapping.items())

            def replace_all(value: Any) -> Any:
                if type(value) is not str:
                    return IGNORE
                for old, new in pairs:
                    value = value.replace(old, new)
                return value

            return replace_all
        old, new = args
        if type(old) is not str or type(new) is not str:
            return None
        return lambda value: value.replace(old, new) if type(value) is str else IGNORE

    if all(is_constant(p) for p in params):
        element = make(*[p.dtl_constant for p in params])  # type: ignore[attr-defined]
        if element is None:
            return constant(None)
        return lambda c: apply_elementwise(element, values(c))

    def evaluate(c: Ctx) -> Any:
        element = make(*[p(c) for p in params])
        return None if element is None else apply_elementwise(element, values(c))

    return evaluate


@elementwise("length")
def _length(value: Any) -> Any:
    return len(value) if type(value) is str else IGNORE


def _justify(method: str) -> Callable[..., Any]:
    def factory(width: Any, fill: Any) -> Any:
        if type(width) is not int or type(fill) is not str or len(fill) != 1:
            return None
        justify = getattr(str, method)
        return lambda value: justify(value, width, fill) if type(value) is str else IGNORE

    return factory


elementwise("ljust", params=2)(_justify("ljust"))
elementwise("rjust", params=2)(_justify("rjust"))


@elementwise("substring", params=(1, 2))
def _substring(start: Any, end: Any = None) -> Any:
    if type(start) is not int or (end is not None and type(end) is not int):
        return None
    return lambda value: value[start:end] if type(value) is str else IGNORE


@function("matches", args=2)
def _matches(pattern: Any, values: Any) -> bool:
    if type(pattern) is not str:
        return False
    items = as_list(values)
    if not items:
        return False
    match = wildcard_matcher(pattern)
    return all(type(v) is str and match(v) for v in items)
