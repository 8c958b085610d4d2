"""Math functions (dtl-spec 6.12): natural-order operators, map-style operators, rounding, trigonometry."""

from __future__ import annotations

import decimal
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ._context import Ctx, Evaluator
from ._registry import IGNORE, Call, _elementwise_evaluator, constant, elementwise, expression, function, is_constant
from ._values import DEC, NUMBER_TYPES, first, is_number, to_decimal

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
    ta = type(a)
    tb = type(b)
    if ta is tb:
        return DEC.add(a, b) if ta is Decimal else a + b  # type: ignore[operator]
    if ta is Decimal or tb is Decimal:  # the context converts ints exactly
        return DEC.add(to_decimal(a) if ta is float else a, to_decimal(b) if tb is float else b)
    return float(a) + float(b)


def _subtract(a: Number, b: Number) -> Number:
    ta = type(a)
    tb = type(b)
    if ta is tb:
        return DEC.subtract(a, b) if ta is Decimal else a - b  # type: ignore[operator]
    if ta is Decimal or tb is Decimal:  # the context converts ints exactly
        return DEC.subtract(to_decimal(a) if ta is float else a, to_decimal(b) if tb is float else b)
    return float(a) - float(b)


def _multiply(a: Number, b: Number) -> Number:
    ta = type(a)
    tb = type(b)
    if ta is tb:
        return DEC.multiply(a, b) if ta is Decimal else a * b  # type: ignore[operator]
    if ta is Decimal or tb is Decimal:  # the context converts ints exactly
        return DEC.multiply(to_decimal(a) if ta is float else a, to_decimal(b) if tb is float else b)
    return float(a) * float(b)


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


_NUMBERS = frozenset(NUMBER_TYPES)


def _map_style_call(operation: Callable[[Number, Number], Number | None]) -> Callable[[Call], Evaluator]:
    """``[name, OPERAND, VALUES]``: element-wise with a constant operand, a direct evaluator otherwise."""
    factory = _map_style(operation)

    def compile_call(call: Call) -> Evaluator:
        operand_fn, values = call.compile_all()
        if is_constant(operand_fn):
            element = factory(operand_fn.dtl_constant)  # type: ignore[attr-defined]
            if element is None:
                return constant(None)
            return _elementwise_evaluator(element, values)
        numbers = _NUMBERS
        direct = _DIRECT.get(operation)  # two decimals: the context method, as ``operation`` would call it

        def evaluate(c: Ctx) -> Any:
            operand = operand_fn(c)
            kind = type(operand)
            if kind is list:
                operand = operand[0] if operand else None
                kind = type(operand)
            if kind not in numbers:
                return None
            value = values(c)
            if direct is not None and ((kind is Decimal and (type(value) is Decimal or type(value) is int))
                                       or (kind is int and type(value) is Decimal)):
                return direct(value, operand)  # the context converts ints exactly, as ``operation`` does
            kind = type(value)
            if kind in numbers:
                return operation(value, operand)
            if kind is not list:
                return None
            out = []
            for item in value:
                if type(item) in numbers:
                    result = operation(item, operand)
                    if result is not None:
                        out.append(result)
            return out

        evaluate.dtl_binary = (operation, operand_fn, values)  # type: ignore[attr-defined]  # for fused callers
        return evaluate

    return compile_call


_DIRECT: dict[Any, Callable[[Decimal, Decimal], Decimal]] = {
    add_numbers: DEC.add, _subtract: DEC.subtract, _multiply: DEC.multiply}

for _symbol, (_name, _operation) in _OPERATIONS.items():
    function(_symbol, args=2)(_natural(_operation))
    expression(_name, args=2)(_map_style_call(_operation))


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
