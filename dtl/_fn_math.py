"""Math functions (dtl-spec 6.12): natural-order operators, map-style operators, rounding, trigonometry."""

from __future__ import annotations

import decimal
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ._registry import IGNORE, elementwise, function
from ._values import DEC, first, is_number, to_decimal

Number = int | float | Decimal


def _coerce(a: Number, b: Number) -> tuple[Any, Any, type]:
    """Both operands in the most precise type involved (decimal > float > int)."""
    ta = type(a)
    tb = type(b)
    if ta is tb:
        return a, b, ta
    if ta is Decimal or tb is Decimal:
        return to_decimal(a), to_decimal(b), Decimal
    return float(a), float(b), float


def add_numbers(a: Number, b: Number) -> Number:
    x, y, kind = _coerce(a, b)
    return DEC.add(x, y) if kind is Decimal else x + y


def _subtract(a: Number, b: Number) -> Number:
    x, y, kind = _coerce(a, b)
    return DEC.subtract(x, y) if kind is Decimal else x - y


def _multiply(a: Number, b: Number) -> Number:
    x, y, kind = _coerce(a, b)
    return DEC.multiply(x, y) if kind is Decimal else x * y


def _divide(a: Number, b: Number) -> Number | None:
    x, y, kind = _coerce(a, b)
    if not y:
        return None
    if kind is float:
        return x / y  # type: ignore[no-any-return]
    return DEC.divide(to_decimal(x), to_decimal(y))


def _modulo(a: Number, b: Number) -> Number | None:
    x, y, kind = _coerce(a, b)
    if not y:
        return None
    if kind is Decimal:
        return DEC.remainder(x, y)
    return x % y  # type: ignore[no-any-return]


def _power(a: Number, b: Number) -> Number | None:
    x, y, kind = _coerce(a, b)
    try:
        if kind is Decimal:
            return DEC.power(x, y)
        result = x**y
    except (ZeroDivisionError, OverflowError, decimal.InvalidOperation, ValueError):
        return None
    return result if type(result) is not complex else None


_OPERATIONS: dict[str, tuple[str, Callable[[Number, Number], Number | None]]] = {
    "+": ("plus", add_numbers),
    "-": ("minus", _subtract),
    "*": ("multiply", _multiply),
    "/": ("divide", _divide),
    "%": ("mod", _modulo),
    "^": ("pow", _power),
}


def _natural(operation: Callable[[Number, Number], Number | None]) -> Callable[[Any, Any], Any]:
    def natural(a: Any, b: Any) -> Any:
        a = first(a)
        b = first(b)
        if not (is_number(a) and is_number(b)):
            return None
        return operation(a, b)

    return natural


def _map_style(operation: Callable[[Number, Number], Number | None]) -> Callable[[Any], Any]:
    def factory(operand: Any) -> Any:
        operand = first(operand)
        if not is_number(operand):
            return None

        def element(value: Any) -> Any:
            if not is_number(value):
                return IGNORE
            result = operation(value, operand)
            return IGNORE if result is None else result

        return element

    return factory


for _symbol, (_name, _operation) in _OPERATIONS.items():
    function(_symbol, args=2)(_natural(_operation))
    elementwise(_name, params=1)(_map_style(_operation))


@elementwise("abs")
def _abs(value: Any) -> Any:
    return abs(value) if is_number(value) else IGNORE


def _rounder(mode: str, integer: Callable[[float], int]) -> Callable[..., Any]:
    def factory(digits: Any = None) -> Any:
        if digits is not None and type(digits) is not int:
            return None
        if not digits:
            def to_integer(value: Any) -> Any:
                kind = type(value)
                if kind is int:
                    return value
                if kind is float:
                    return integer(value) if math.isfinite(value) else IGNORE
                if kind is Decimal:
                    return int(value.to_integral_value(rounding=mode))
                return IGNORE

            return to_integer
        exponent = Decimal(1).scaleb(-digits)

        def to_digits(value: Any) -> Any:
            kind = type(value)
            if kind is int:
                return value
            if kind is float:
                if not math.isfinite(value):
                    return IGNORE
                return float(to_decimal(value).quantize(exponent, rounding=mode))
            if kind is Decimal:
                return value.quantize(exponent, rounding=mode)
            return IGNORE

        return to_digits

    return factory


elementwise("round", params=(0, 1))(_rounder(decimal.ROUND_HALF_EVEN, round))
elementwise("ceil", params=(0, 1))(_rounder(decimal.ROUND_CEILING, math.ceil))
elementwise("floor", params=(0, 1))(_rounder(decimal.ROUND_FLOOR, math.floor))


def _float_function(fn: Callable[[float], float]) -> Callable[[Any], Any]:
    def element(value: Any) -> Any:
        if not is_number(value):
            return IGNORE
        try:
            result = fn(float(value))
        except (ValueError, OverflowError):
            return IGNORE
        return result if math.isfinite(result) else IGNORE

    return element


elementwise("sqrt")(_float_function(math.sqrt))
elementwise("sin")(_float_function(math.sin))
elementwise("cos")(_float_function(math.cos))
elementwise("tan")(_float_function(math.tan))
