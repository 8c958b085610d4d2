"""Phone numbers: phonenumber-parse and phonenumber-format."""

from __future__ import annotations

from typing import Any

import pytest

from dtl import DTLCompileError, compile_expression
from storage import URI

OSLO = "~rtel:+47-22-22-22-22"


def ev(expr: Any, source: Any = None) -> Any:
    return compile_expression(expr).evaluate(source)


# -- phonenumber-parse -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["phonenumber-parse", "+4722222222"], URI("tel:+47-22-22-22-22")),
        (["phonenumber-parse", "NO", "22225555"], URI("tel:+47-22-22-55-55")),
        (["phonenumber-parse", "NO", ["list", "22222222", "22225555"]],
         [URI("tel:+47-22-22-22-22"), URI("tel:+47-22-22-55-55")]),
        (["phonenumber-parse", "no", "22225555"], URI("tel:+47-22-22-55-55")),
        (["phonenumber-parse", "NO", "+46 8 123 456 78"], URI("tel:+46-8-123-456-78")),
        (["phonenumber-parse", "NO", 22225555], URI("tel:+47-22-22-55-55")),
        (["phonenumber-parse", "+47 22 22 22 22 ext. 12"], URI("tel:+47-22-22-22-22;ext=12")),
        (["phonenumber-parse", OSLO], URI("tel:+47-22-22-22-22")),
    ],
)
def test_phonenumber_parse(expr: Any, expected: Any) -> None:
    assert ev(expr) == expected


@pytest.mark.parametrize(
    "expr",
    [
        ["phonenumber-parse", "22225555"],  # no country code and no REGION
        ["phonenumber-parse", "XX", "22225555"],  # unknown region
        ["phonenumber-parse", "NO", "123"],  # not a valid number
        ["phonenumber-parse", "NO", "hello"],
        ["phonenumber-parse", "NO", True],
        ["phonenumber-parse", "NO", 22.5],
        ["phonenumber-parse", "NO", None],
        ["phonenumber-parse", 47, "22225555"],  # REGION must be a string
    ],
)
def test_phonenumber_parse_ignores_invalid(expr: Any) -> None:
    assert ev(expr) is None


def test_phonenumber_parse_list_drops_invalid() -> None:
    assert ev(["phonenumber-parse", "NO", ["list", "22222222", "nope", 1, None, "+4722225555"]]) == [
        URI("tel:+47-22-22-22-22"), URI("tel:+47-22-22-55-55")]


def test_phonenumber_parse_computed_region() -> None:
    source = {"country": "NO", "phones": ["22222222"]}
    assert ev(["phonenumber-parse", "_S.country", "_S.phones"], source) == [URI("tel:+47-22-22-22-22")]
    assert ev(["phonenumber-parse", "_S.missing", "_S.phones"], source) == []


# -- phonenumber-format ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("e164", "4722222222"),
        ("national-e164", "22222222"),
        ("national", "22 22 22 22"),
        ("international", "+47 22 22 22 22"),
        ("rfc3966", "tel:+47-22-22-22-22"),
        ("isocode", "NO"),
        ("country-code", "47"),
    ],
)
def test_phonenumber_format(fmt: str, expected: str) -> None:
    assert ev(["phonenumber-format", fmt, OSLO]) == expected


def test_phonenumber_format_list() -> None:
    assert ev(["phonenumber-format", "e164", ["list", OSLO, "~rtel:+47-22-22-55-55"]]) == ["4722222222", "4722225555"]


def test_phonenumber_format_ignores_non_tel_values() -> None:
    values = ["list", OSLO, "+4722225555", "~rhttp://example.org/", "~rtel:nonsense", 4722222222, None]
    assert ev(["phonenumber-format", "international", values]) == ["+47 22 22 22 22"]
    assert ev(["phonenumber-format", "e164", "+4722222222"]) is None


def test_phonenumber_format_unknown_format_gives_null() -> None:
    assert ev(["phonenumber-format", "E164", OSLO]) is None
    assert ev(["phonenumber-format", None, OSLO]) is None


def test_parse_then_format_round_trip() -> None:
    assert ev(["phonenumber-format", "national", ["phonenumber-parse", "SE", "08-123 456 78"]]) == "08-123 456 78"


def test_phone_arity() -> None:
    with pytest.raises(DTLCompileError):
        compile_expression(["phonenumber-format", OSLO])
    with pytest.raises(DTLCompileError):
        compile_expression(["phonenumber-parse", "NO", "x", "y"])
