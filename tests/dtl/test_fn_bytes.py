"""Bytes functions: bytes, base64-encode, base64-decode, is-bytes (and string of bytes)."""

from __future__ import annotations

from typing import Any

import pytest

from dtl import compile_expression


def ev(expr: Any, source: Any = None) -> Any:
    return compile_expression(expr).evaluate(source)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["bytes", "abc"], b"abc"),
        (["bytes", "blåbær"], "blåbær".encode()),
        (["bytes", ""], b""),
        (["bytes", ["list", "a", 1, None, "b"]], [b"a", b"b"]),
        (["bytes", 12], None),
        (["bytes", None], None),
        (["bytes", "~bYWJj"], b"abc"),  # bytes pass through
    ],
)
def test_bytes(expr: list[Any], expected: Any) -> None:
    assert ev(expr) == expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["base64-encode", ["bytes", "abc"]], "YWJj"),
        (["base64-encode", ["list", 1, ["bytes", "abc"], 2, ["bytes", "def"], 3]], ["YWJj", "ZGVm"]),
        (["base64-encode", "abc"], None),  # only bytes are accepted
        (["base64-encode", "~bAAECAwQF"], "AAECAwQF"),
        (["base64-encode", None], None),
    ],
)
def test_base64_encode(expr: list[Any], expected: Any) -> None:
    assert ev(expr) == expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["base64-decode", "YWJj"], b"abc"),
        (["base64-decode", ["list", 1, "YWJj", 2, "ZGVm", 3]], [b"abc", b"def"]),
        (["base64-decode", "not base64!"], None),
        (["base64-decode", "YWJ"], None),  # bad padding
        (["base64-decode", 12], None),
        (["base64-decode", ["bytes", "YWJj"]], None),  # only strings are accepted
        (["base64-decode", ""], b""),
    ],
)
def test_base64_decode(expr: list[Any], expected: Any) -> None:
    assert ev(expr) == expected


def test_base64_roundtrip() -> None:
    data = bytes(range(256))
    assert ev(["base64-decode", ["base64-encode", "_S.b"]], {"b": data}) == data


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["is-bytes", ["bytes", "abc"]], True),
        (["is-bytes", "~bYWJj"], True),
        (["is-bytes", "some-string"], False),
        (["is-bytes", ["list", "~bYWJj", "12345"]], True),
        (["is-bytes", ["list", "12345", "~bYWJj"]], False),
        (["is-bytes", None], False),
        (["is-bytes", ["list"]], False),
    ],
)
def test_is_bytes(expr: list[Any], expected: bool) -> None:
    assert ev(expr) is expected


def test_string_of_bytes_decodes_utf8() -> None:
    assert ev(["string", ["bytes", "blåbær"]]) == "blåbær"
