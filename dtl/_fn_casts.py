"""Booleans, numbers and other casts, and the ``is-*`` type predicates (dtl-spec 6.4, 3.7).

The casts (``boolean``, ``integer``, ``decimal``, ``float``) are element-wise with an optional leading
DEFAULT function expression (see ``dtl._registry.cast``). The predicates test the first element of a
list (the "first-element rule"); ``is-dict`` lives with the dictionaries, ``is-ni`` with the NIs,
``is-uri``/``is-uuid`` with the URIs and ``is-datetime`` with the date/time functions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from ._registry import IGNORE, cast, elementwise, function
from ._values import first, to_decimal

__all__ = ["to_boolean", "to_decimal_value", "to_float", "to_hex", "to_integer", "type_predicate"]

_INTEGER_TEXT = re.compile(r"\s*[+-]?[0-9]+\s*\Z")
_HEX_TEXT = re.compile(r"0[xX]([0-9a-fA-F]+)\Z")
_NUMBER_TEXT = re.compile(r"\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*\Z")


def to_boolean(value: Any) -> Any:
    """The ``boolean`` cast: booleans pass, "true"/"false" in any case parse; the rest is IGNORE."""
    if type(value) is bool:
        return value
    if type(value) is str:
        lowered = value.lower()
        if lowered == "true":
            return True
        if lowered == "false":
            return False
    return IGNORE


def _twos_complement(digits: str) -> int:
    """``ff`` -> -1, ``00ff`` -> 255: the hex digits read as a two's complement number of their width."""
    number = int(digits, 16)
    bits = 4 * len(digits)
    return number - (1 << bits) if number >> (bits - 1) else number


def to_integer(value: Any) -> Any:
    """The ``integer`` cast: decimal and ``0x`` (two's complement) strings parse; numbers truncate."""
    kind = type(value)
    if kind is int:
        return value
    if kind is str:
        if _INTEGER_TEXT.match(value):
            return int(value)
        match = _HEX_TEXT.match(value)
        return _twos_complement(match.group(1)) if match else IGNORE
    if kind is float:
        return int(value) if math.isfinite(value) else IGNORE
    if kind is Decimal:
        return int(value) if value.is_finite() else IGNORE
    return IGNORE


def to_decimal_value(value: Any) -> Any:
    """The ``decimal`` cast: numbers and numeric strings (scientific notation allowed) become decimals."""
    kind = type(value)
    if kind is Decimal:
        return value
    if kind is int:
        return Decimal(value)
    if kind is float:
        return to_decimal(value) if math.isfinite(value) else IGNORE
    if kind is str and _NUMBER_TEXT.match(value):
        try:
            return Decimal(value.strip())
        except InvalidOperation:  # pragma: no cover - the pattern only admits valid numbers
            return IGNORE
    return IGNORE


def to_float(value: Any) -> Any:
    """The ``float`` cast: numbers and numeric strings become floats (a decimal may lose precision)."""
    kind = type(value)
    if kind is float:
        return value
    if not (kind is int or kind is Decimal or (kind is str and _NUMBER_TEXT.match(value))):
        return IGNORE
    try:
        result = float(value)
    except OverflowError:
        return IGNORE
    return result if math.isfinite(result) else IGNORE


cast("boolean")(to_boolean)
cast("integer")(to_integer)
cast("decimal")(to_decimal_value)
cast("float")(to_float)


@elementwise("hex")
def to_hex(value: Any) -> Any:
    """An integer as the minimal whole-byte two's complement hex string (1 -> ``0x01``, -1 -> ``0xff``)."""
    if type(value) is not int:
        return IGNORE
    size = 1
    while not -(1 << (8 * size - 1)) <= value < (1 << (8 * size - 1)):
        size += 1
    return f"0x{value % (1 << (8 * size)):0{2 * size}x}"


def type_predicate(name: str, test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """Register ``name`` as a first-element-rule type predicate and return its implementation."""

    def predicate(value: Any) -> bool:
        return test(first(value))

    predicate.__name__ = name.replace("-", "_")
    predicate.__doc__ = f"``{name}``: the type test on the value, or on the first element of a list."
    function(name, args=1)(predicate)
    return predicate


is_boolean = type_predicate("is-boolean", lambda v: type(v) is bool)
is_integer = type_predicate("is-integer", lambda v: type(v) is int)
is_float = type_predicate("is-float", lambda v: type(v) is float)
is_decimal = type_predicate("is-decimal", lambda v: type(v) is Decimal)
is_string = type_predicate("is-string", lambda v: type(v) is str)
is_bytes = type_predicate("is-bytes", lambda v: isinstance(v, bytes | bytearray))
