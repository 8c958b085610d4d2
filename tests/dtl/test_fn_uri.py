"""URIs and UUIDs: uri, is-uri, url-quote, url-unquote, uuid, is-uuid."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from dtl import DTLCompileError, compile_expression
from storage import NI, URI

UUID_A = uuid.UUID("abc98f65-ddf5-1234-a8f5-82f6d8e69726")


def ev(expr: Any, source: Any = None) -> Any:
    return compile_expression(expr).evaluate(source)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["uri", "http://www.example.org/"], URI("http://www.example.org/")),
        (["uri", ["list", "http://www.example.org/", "http://www.sesam.io/", 12345]],
         [URI("http://www.example.org/"), URI("http://www.sesam.io/")]),
        (["uri", "a b/ø"], URI("a b/ø")),
        (["uri", "~rhttp://x/"], URI("http://x/")),
        (["uri", 12345], None),
        (["uri", None], None),
        (["uri", ["list"]], []),
        (["uri", ["concat", "http://example.org/", "abc"]], URI("http://example.org/abc")),
    ],
)
def test_uri(expr: Any, expected: Any) -> None:
    assert ev(expr) == expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["is-uri", ["uri", "foo:bar"]], True),
        (["is-uri", "foo:bar"], False),
        (["is-uri", ["list", ["uri", "foo:bar"], 12345]], True),
        (["is-uri", ["list", 1, ["uri", "foo:bar"]]], False),
        (["is-uri", "~rhttp://x/"], True),
        (["is-uri", "~:foo:bar"], False),
        (["is-uri", None], False),
        (["is-uuid", ["uuid"]], True),
        (["is-uuid", "~u9f598f65-eea5-4906-a8f5-82f6d8e69726"], True),
        (["is-uuid", "some-string"], False),
        (["is-uuid", "9f598f65-eea5-4906-a8f5-82f6d8e69726"], False),
        (["is-uuid", ["list", ["uuid"], "12345"]], True),
        (["is-uuid", ["list", "12345", ["uuid"]]], False),
        (["is-uuid", ["list"]], False),
    ],
)
def test_is_uri_and_is_uuid(expr: Any, expected: bool) -> None:
    assert ev(expr) is expected


def test_predicates_on_source_values() -> None:
    source = {"u": URI("http://x/"), "id": UUID_A, "n": NI("a:b"), "s": "x"}
    assert [ev(["is-uri", f"_S.{k}"], source) for k in source] == [True, False, False, False]
    assert [ev(["is-uuid", f"_S.{k}"], source) for k in source] == [False, True, False, False]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["url-quote", "/foo bar/baz"], "%2Ffoo%20bar%2Fbaz"),
        (["url-quote", "/", "/foo bar/baz"], "/foo%20bar/baz"),
        (["url-quote", ["list", "å", 1, 2, ["uri", "http://example.com"], "foo bar"]], ["%C3%A5", "foo%20bar"]),
        (["url-quote", "a~b_c.d-e"], "a~b_c.d-e"),
        (["url-quote", "/:", "http://x/a b?c=d"], "http://x/a%20b%3Fc%3Dd"),
        (["url-quote", "a+b&c"], "a%2Bb%26c"),
        (["url-quote", 1, "x y"], None),
        (["url-quote", None], None),
        (["url-unquote", "%2Ffoo%20bar%2Fbaz"], "/foo bar/baz"),
        (["url-unquote", ["list", 1, "%C3%A5", ["uri", "http://example.com"], "foo%20bar"]], ["å", "foo bar"]),
        (["url-unquote", "a+b"], "a+b"),
        (["url-unquote", "100%"], "100%"),
        (["url-unquote", None], None),
        (["url-unquote", ["url-quote", "æ ø/å?"]], "æ ø/å?"),
    ],
)
def test_url_quote_and_unquote(expr: Any, expected: Any) -> None:
    assert ev(expr) == expected


def test_uuid_without_arguments_is_random_v4() -> None:
    first = ev(["uuid"])
    assert type(first) is uuid.UUID
    assert first.version == 4
    assert ev(["eq", ["uuid"], ["uuid"]]) is False
    expression = compile_expression(["uuid"])
    assert expression.evaluate() != expression.evaluate()


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["uuid", "abc98f65-ddf5-1234-a8f5-82f6d8e69726"], UUID_A),
        (["uuid", ["list", "abc98f65-ddf5-1234-a8f5-82f6d8e601a8", 2, "9f598f65-eea5-4906-a8f5-82f6d8e69726"]],
         [uuid.UUID("abc98f65-ddf5-1234-a8f5-82f6d8e601a8"), uuid.UUID("9f598f65-eea5-4906-a8f5-82f6d8e69726")]),
        (["uuid", "~uabc98f65-ddf5-1234-a8f5-82f6d8e69726"], UUID_A),
        (["uuid", "not-a-uuid"], None),
        (["uuid", 12], None),
        (["uuid", None], None),
    ],
)
def test_uuid_cast(expr: Any, expected: Any) -> None:
    assert ev(expr) == expected


def test_uuid_cast_of_source_value() -> None:
    assert ev(["uuid", "_S.u"], {"u": "531a379e-31bb-4ce1-8690-158dceb64be6"}) == uuid.UUID(
        "531a379e-31bb-4ce1-8690-158dceb64be6")


def test_arity() -> None:
    with pytest.raises(DTLCompileError):
        compile_expression(["uuid", "a", "b"])
    with pytest.raises(DTLCompileError):
        compile_expression(["url-quote", "/", "a", "b"])
    with pytest.raises(DTLCompileError):
        compile_expression(["uri"])
