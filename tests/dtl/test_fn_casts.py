"""Casts (boolean, integer, decimal, float, hex) and the is-boolean/-integer/-float/-decimal/-string/-bytes tests."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest

from dtl import DTLCompileError, compile_expression
from storage import NI, URI

EXAMPLE_URI = "~rhttp://www.example.org/"


def ev(expr: Any, source: Any = None) -> Any:
    return compile_expression(expr).evaluate(source)


def same(actual: Any, expected: Any) -> bool:
    """Equal with exact types (so 1 != 1.0 != Decimal(1) and True != 1)."""
    if type(actual) is not type(expected):
        return False
    if type(expected) is list:
        return len(actual) == len(expected) and all(same(a, e) for a, e in zip(actual, expected, strict=True))
    return bool(actual == expected)


# -- boolean ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["boolean", "false"], False),
        (["boolean", "TRUE"], True),
        (["boolean", True], True),
        (["boolean", None], None),
        (["boolean", "yes"], None),
        (["boolean", 1], None),
        (["boolean", ["list"]], []),
        (["boolean", ["list", "true", EXAMPLE_URI, "True", False, 1234]], [True, True, False]),
        (["boolean", ["boolean", False], ["list", "true", EXAMPLE_URI, "124.4", "FALSE"]], [True, False, False, False]),
        (["boolean", ["string", "n/a"], ["list", "true", EXAMPLE_URI, "124.4"]], [True, "n/a", "n/a"]),
        (["boolean", ["string", "_."], ["list", "true", EXAMPLE_URI, "False"]],
         [True, "http://www.example.org/", False]),
        (["boolean", "x", None], None),
        (["boolean", "x", 0], "x"),
    ],
)
def test_boolean(expr: Any, expected: Any) -> None:
    assert same(ev(expr), expected)


def test_boolean_default_not_used_for_null_in_list() -> None:
    assert ev(["boolean", "x", ["list", None, "true"]]) == [True]


# -- integer ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["integer", "1"], 1),
        (["integer", "-42"], -42),
        (["integer", " 7 "], 7),
        (["integer", 124.4], 124),
        (["integer", -124.9], -124),
        (["integer", "~f3.99"], 3),
        (["integer", 5], 5),
        (["integer", "0xff"], -1),
        (["integer", "0x00ff"], 255),
        (["integer", "0x01"], 1),
        (["integer", "0x80"], -128),
        (["integer", "abc"], None),
        (["integer", "1.5"], None),
        (["integer", "1_000"], None),
        (["integer", "10^2"], None),
        (["integer", True], None),
        (["integer", None], None),
        (["integer", ["list", "1", EXAMPLE_URI, 124.4, 12345]], [1, 124, 12345]),
        (["integer", ["integer", 0], ["list", "1", EXAMPLE_URI, "10^2", 12345]], [1, 0, 0, 12345]),
        (["integer", ["string", "n/a"], ["list", "1", EXAMPLE_URI, "10^2", 12345]], [1, "n/a", "n/a", 12345]),
        (["integer", ["string", "_."], ["list", "1", EXAMPLE_URI, "10^2", 12345]],
         [1, "http://www.example.org/", "10^2", 12345]),
    ],
)
def test_integer(expr: Any, expected: Any) -> None:
    assert same(ev(expr), expected)


def test_integer_of_source_values() -> None:
    assert ev(["integer", "_S.n"], {"n": ["3", "x", 4.0]}) == [3, 4]


def test_integer_non_finite_float_is_ignored() -> None:
    assert ev(["integer", "_S.n"], {"n": [float("inf"), float("nan"), 2]}) == [2]


# -- decimal ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["decimal", "1.0"], Decimal("1.0")),
        (["decimal", 2.2], Decimal("2.2")),
        (["decimal", 3], Decimal(3)),
        (["decimal", "1E-3"], Decimal("0.001")),
        (["decimal", "-.5"], Decimal("-0.5")),
        (["decimal", "~f1.50"], Decimal("1.50")),
        (["decimal", "one"], None),
        (["decimal", "NaN"], None),
        (["decimal", "Infinity"], None),
        (["decimal", False], None),
        (["decimal", None], None),
        (["decimal", ["list", "1.0", EXAMPLE_URI, 2.2, "one"]], [Decimal("1.0"), Decimal("2.2")]),
        (["decimal", ["boolean", False], ["list", "1.0", 2.1, EXAMPLE_URI, "124.4", "FALSE"]],
         [Decimal("1.0"), Decimal("2.1"), False, Decimal("124.4"), False]),
        (["decimal", ["string", "n/a"], ["list", "1.0", 2.0, EXAMPLE_URI, "124.4"]],
         [Decimal("1.0"), Decimal("2.0"), "n/a", Decimal("124.4")]),
        (["decimal", ["string", "_."], ["list", "1.0", 2.0, EXAMPLE_URI, "2.5"]],
         [Decimal("1.0"), Decimal("2.0"), "http://www.example.org/", Decimal("2.5")]),
    ],
)
def test_decimal(expr: Any, expected: Any) -> None:
    assert same(ev(expr), expected)


def test_decimal_keeps_precision_and_string_expands_exponent() -> None:
    assert ev(["decimal", "12345678901234567890.1234567890"]) == Decimal("12345678901234567890.1234567890")
    assert ev(["string", ["decimal", "1E-3"]]) == "0.001"


# -- float -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["float", "1.0"], 1.0),
        (["float", "1e3"], 1000.0),
        (["float", 2], 2.0),
        (["float", "~f2.5"], 2.5),
        (["float", 1.5], 1.5),
        (["float", "one"], None),
        (["float", "nan"], None),
        (["float", "inf"], None),
        (["float", True], None),
        (["float", None], None),
        (["float", ["list", "1.0", EXAMPLE_URI, 2.2, "one"]], [1.0, 2.2]),
        (["float", ["boolean", False], ["list", "1.0", 2.1, EXAMPLE_URI, "124.4", "FALSE"]],
         [1.0, 2.1, False, 124.4, False]),
        (["float", ["string", "n/a"], ["list", "1.0", 2.0, EXAMPLE_URI, "124.4"]], [1.0, 2.0, "n/a", 124.4]),
        (["float", ["string", "_."], ["list", "1.0", 2.0, EXAMPLE_URI, "2.5"]],
         [1.0, 2.0, "http://www.example.org/", 2.5]),
        (["list", ["is-float", ["float", "1.5"]], ["is-decimal", ["float", "1.5"]]], [True, False]),
    ],
)
def test_float(expr: Any, expected: Any) -> None:
    assert same(ev(expr), expected)


def test_float_overflow_is_ignored() -> None:
    assert ev(["float", "_S.n"], {"n": [10**400, "1e400", 1]}) == [1.0]


def test_cast_arity() -> None:
    with pytest.raises(DTLCompileError):
        compile_expression(["integer", 0, 1, 2])
    with pytest.raises(DTLCompileError):
        compile_expression(["float"])


# -- hex -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, "0x00"), (1, "0x01"), (127, "0x7f"), (128, "0x0080"), (255, "0x00ff"), (-1, "0xff"), (-128, "0x80"),
     (-129, "0xff7f"), (12345, "0x3039"), (65535, "0x00ffff")],
)
def test_hex(value: int, expected: str) -> None:
    assert ev(["hex", value]) == expected


def test_hex_round_trips_through_integer() -> None:
    for value in (0, 1, -1, 255, -129, 2**70, -(2**70)):
        assert ev(["integer", ["hex", value]]) == value


def test_hex_ignores_non_integers() -> None:
    assert ev(["hex", ["list", 1, EXAMPLE_URI, 124.4, 12345]]) == ["0x01", "0x3039"]
    assert ev(["hex", True]) is None
    assert ev(["hex", "12"]) is None
    assert ev(["hex", None]) is None


# -- type predicates (first-element rule) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["is-boolean", False], True),
        (["is-boolean", "True"], False),
        (["is-boolean", ["list", True, "12345"]], True),
        (["is-boolean", ["list", "12345", True]], False),
        (["is-boolean", ["list", ["boolean", "FALSE"], 1234]], True),
        (["is-boolean", 0], False),
        (["is-integer", 1], True),
        (["is-integer", "1"], False),
        (["is-integer", ["list", 1, "12345"]], True),
        (["is-integer", ["list", "1", 2]], False),
        (["is-integer", ["list", ["integer", "1"], 2]], True),
        (["is-integer", True], False),
        (["is-integer", 1.0], False),
        (["is-float", 1.0], True),
        (["is-float", ["decimal", "1.23"]], False),
        (["is-float", 1], False),
        (["is-float", ["list", 1.0, "12345"]], True),
        (["is-float", ["list", "1.0", 2.0]], False),
        (["is-float", ["list", ["decimal", "-1.0"], 123.4]], False),
        (["is-decimal", 1.0], False),
        (["is-decimal", ["decimal", "1.23"]], True),
        (["is-decimal", 1], False),
        (["is-decimal", ["list", 1.0, "12345"]], False),
        (["is-decimal", ["list", "1.0", 2.0]], False),
        (["is-decimal", ["list", ["decimal", "-1.0"], 1234]], True),
        (["is-decimal", "~f12345678901234567890.1234567890"], True),
        (["is-string", "foo:bar"], True),
        (["is-string", 1], False),
        (["is-string", ["list", "foo:bar", 12345]], True),
        (["is-string", ["list", 1, "foo:bar"]], False),
        (["is-string", "~rhttp://x/"], False),
        (["is-bytes", "~bYWJj"], True),
        (["is-bytes", "some-string"], False),
        (["is-bytes", ["list", "~bYWJj", "12345"]], True),
        (["is-bytes", ["list", "12345", "~bYWJj"]], False),
    ],
)
def test_predicates(expr: Any, expected: bool) -> None:
    assert ev(expr) is expected


@pytest.mark.parametrize("name", ["is-boolean", "is-integer", "is-float", "is-decimal", "is-string", "is-bytes"])
def test_predicates_on_null_and_empty(name: str) -> None:
    assert ev([name, None]) is False
    assert ev([name, ["list"]]) is False
    assert ev([name, ["list", None, 1]]) is False


def test_predicates_on_source_values() -> None:
    source = {"b": True, "i": 3, "f": 1.5, "d": Decimal("1.5"), "s": "x", "y": b"x", "n": NI("a:b"),
              "u": URI("http://x/"), "id": uuid.uuid4()}
    expected = {"is-boolean": "b", "is-integer": "i", "is-float": "f", "is-decimal": "d", "is-string": "s",
                "is-bytes": "y"}
    for name, key in expected.items():
        for other in source:
            assert ev([name, f"_S.{other}"], source) is (other == key), (name, other)
