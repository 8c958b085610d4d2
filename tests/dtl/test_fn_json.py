"""JSON functions: json, json-transit, json-parse and json-transit-parse."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest

from dtl import compile_expression
from storage import NI, URI, Datetime


def ev(expr: Any, source: Any = None) -> Any:
    return compile_expression(expr).evaluate(source)


def same(actual: Any, expected: Any) -> bool:
    """Equal with exact types (1 != 1.0 and True != 1), recursively."""
    if type(actual) is not type(expected):
        return False
    if type(expected) is list:
        return len(actual) == len(expected) and all(same(a, e) for a, e in zip(actual, expected, strict=True))
    if type(expected) is dict:
        return actual.keys() == expected.keys() and all(same(actual[k], v) for k, v in expected.items())
    return bool(actual == expected)


# -- json / json-transit ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["json", 1], "1"),
        (["json", "hello"], '"hello"'),
        (["json", ["list", "abc", ["list", 1, 2, 3], {"b": 2, "a": 1}, 124.4, 12345]],
         ['"abc"', "[1, 2, 3]", '{"a": 1, "b": 2}', "124.4", "12345"]),
        (["json", True], "true"),
        (["json", None], None),
        (["json", ["list"]], []),
        (["json", {"z": {"y": 1, "x": [None, False]}, "a": "å"}], '{"a": "å", "z": {"x": [null, false], "y": 1}}'),
        (["json", "~f1.50"], "1.50"),
        (["json", "~rhttp://www.example.org/"], '"http://www.example.org/"'),
        (["json", "~t2015-07-28T09:46:00Z"], '"2015-07-28T09:46:00Z"'),
        (["json", "~:foo:bar"], '"foo:bar"'),
    ],
)
def test_json(expr: list[Any], expected: Any) -> None:
    assert ev(expr) == expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["json-transit", 1], "1"),
        (["json-transit", "hello"], '"hello"'),
        (["json-transit", ["list", "abc", ["list", 1, 2, 3], {"b": 2, "a": 1}, 124.4, 12345]],
         ['"abc"', "[1, 2, 3]", '{"a": 1, "b": 2}', "124.4", "12345"]),
        (["json-transit", "~f1.5"], '"~f1.5"'),
        (["json-transit", "~rhttp://www.example.org/"], '"~rhttp://www.example.org/"'),
        (["json-transit", "~t2015-07-28T09:46:00.5Z"], '"~t2015-07-28T09:46:00.5Z"'),
        (["json-transit", "~bYWJj"], '"~bYWJj"'),
        (["json-transit", "~:foo:bar"], '"~:foo:bar"'),
        (["json-transit", {"b": "~u531a379e-31bb-4ce1-8690-158dceb64be6", "a": None}],
         '{"a": null, "b": "~u531a379e-31bb-4ce1-8690-158dceb64be6"}'),
        (["json-transit", None], None),
    ],
)
def test_json_transit(expr: list[Any], expected: Any) -> None:
    assert ev(expr) == expected


def test_json_transit_roundtrips_through_json_transit_parse() -> None:
    value = {"d": Decimal("1.50"), "t": Datetime(2015, 7, 28, 9, 46, nanosecond=5), "r": URI("http://x/"),
             "u": uuid.UUID("531a379e-31bb-4ce1-8690-158dceb64be6"), "n": NI("foo:bar"), "b": b"\x00\xff",
             "l": [1, 2.5, "s", None, True]}
    assert same(ev(["json-transit-parse", ["json-transit", "_S.v"]], {"v": value}), value)


# -- json-parse ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["json-parse", "1"], 1),
        (["json-parse", "1.0"], 1.0),
        (["json-parse", '"hello"'], "hello"),
        (["is-uri", ["json-parse", '"~rhttp://www.example.org/"']], False),
        (["json-parse", '{"a": 1, "b": 2}'], {"a": 1, "b": 2}),
        (["json-parse", "hello"], None),
        (["json-parse", ["list", "hello", "123", "null", '"abc"']], [123, None, "abc"]),
        (["json-parse", "no-value", "hello"], "no-value"),
        (["json-parse", "no-value", "null"], None),
        (["json-parse", " [1, [2]] "], [1, [2]]),
        (["json-parse", "NaN"], None),
        (["json-parse", "[Infinity]"], None),
        (["json-parse", "{'a': 1}"], None),
        (["json-parse", 12], None),
        (["json-parse", None], None),
        (["json-parse", "no-value", None], None),
        (["json-parse", ["concat", "bad:", ["string", "_."]], ["list", "x", "2", 3]], ["bad:x", 2, "bad:3"]),
    ],
)
def test_json_parse(expr: list[Any], expected: Any) -> None:
    assert same(ev(expr), expected)


def test_json_parse_does_not_transit_decode() -> None:
    assert ev(["json-parse", '"~rhttp://example.org/"']) == "~rhttp://example.org/"
    assert ev(["json-parse", '{"t": "~t2015-01-01T00:00:00Z"}']) == {"t": "~t2015-01-01T00:00:00Z"}


# -- json-transit-parse ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["json-transit-parse", "1"], 1),
        (["json-transit-parse", '"hello"'], "hello"),
        (["is-uri", ["json-transit-parse", '"~rhttp://www.example.org/"']], True),
        (["json-transit-parse", "hello"], None),
        (["json-transit-parse", ["list", "hello", "123", "null", '"abc"', '"~rhttp://example.org/"']],
         [123, None, "abc", URI("http://example.org/")]),
        (["json-transit-parse", "no-value", "~rhttp://example.org/"], "no-value"),
        (["is-uri", ["json-transit-parse", "no-value", '"~rhttp://example.org/"']], True),
        (["json-transit-parse", "no-value", "null"], None),
        (["json-transit-parse", '{"p": "~f2.50", "l": ["~:a:b"]}'], {"p": Decimal("2.50"), "l": [NI("a:b")]}),
        (["json-transit-parse", '"~xunknown"'], "~xunknown"),
        (["json-transit-parse", "NaN"], None),
    ],
)
def test_json_transit_parse(expr: list[Any], expected: Any) -> None:
    assert same(ev(expr), expected)
