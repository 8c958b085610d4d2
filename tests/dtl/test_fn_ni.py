"""Namespaced identifiers: ni, ni-ns, ni-id, is-ni."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from dtl import DTLCompileError, compile_expression, compile_transform
from dtl._fn_ni import collapse_uri
from storage import NI, URI


def ev(expr: Any, source: Any = None, pipe: dict[str, Any] | None = None) -> Any:
    return compile_expression(expr, pipe=pipe).evaluate(source)


# -- ni --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["ni", "foo", "bar"], NI("foo:bar")),
        (["ni", "bar"], NI("bar")),
        (["ni", "foo", ["list", "bar", "x:y"]], [NI("foo:bar"), NI("foo:x:y")]),
        (["ni", "foo", ["uri", "http://example.org/"]], None),
        (["ni", "foo", ["list", "a", 1, "~rhttp://x/", None, "b"]], [NI("foo:a"), NI("foo:b")]),
        (["ni", "foo", None], None),
        (["ni", "foo", 12], None),
        (["ni", "foo", ["list"]], []),
        (["ni", None, "bar"], None),
        (["ni", 1, "bar"], None),
        (["ni", "", "bar"], NI(":bar")),
        (["ni", ["uri", "http://example.org/bar"]], NI("_:bar")),
        (["ni", "~:a:b"], NI("a:b")),
        (["ni", "~t2020-01-01T00:00:00Z"], None),
    ],
)
def test_ni(expr: Any, expected: Any) -> None:
    assert ev(expr) == expected


def test_ni_renders_transit() -> None:
    rules = {"default": [["copy", "_id"], ["add", "ref", ["ni", "person", "_S.code"]]]}
    transform = compile_transform({"rules": rules})
    [out] = transform.run([{"_id": "1", "code": "abc"}])
    assert out["ref"] == NI("person:abc")
    assert out["ref"].value == "person:abc"


def test_ni_computed_namespace() -> None:
    source = {"ns": "crm", "ids": ["1", "2"]}
    assert ev(["ni", "_S.ns", "_S.ids"], source) == [NI("crm:1"), NI("crm:2")]
    assert ev(["ni", "_S.missing", "_S.ids"], source) is None
    assert ev(["ni", "_S.ns", ["list", ["uri", "http://x/y"], "3"]], source) == [NI("crm:3")]


def test_ni_collapses_unknown_uri_prefix_into_generated_namespace() -> None:
    pipe = {"_id": "collapse-test-pipe"}
    first = ev(["ni", ["uri", "http://unknown.org/something/baz"]], pipe=pipe)
    assert first == NI("collapse-test-pipe-1:baz")
    # the same prefix keeps its namespace; a new prefix gets the next number
    assert ev(["ni", ["uri", "http://unknown.org/something/qux"]], pipe=pipe) == NI("collapse-test-pipe-1:qux")
    assert ev(["ni", ["uri", "http://other.org/a#frag"]], pipe=pipe) == NI("collapse-test-pipe-2:frag")
    # the declared example.org prefix maps to "_"
    assert ev(["ni", ["list", ["uri", "http://example.org/x"], "y"]], pipe=pipe) == [NI("_:x"), NI("y")]


def test_collapse_uri_without_separator_is_global() -> None:
    assert collapse_uri(URI("abc"), "p") == NI("abc")


def test_ni_arity() -> None:
    with pytest.raises(DTLCompileError):
        compile_expression(["ni"])
    with pytest.raises(DTLCompileError):
        compile_expression(["ni", "a", "b", "c"])


# -- ni-ns / ni-id ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["ni-ns", "~:foo:bar"], "foo"),
        (["ni-ns", "foo:bar"], "foo"),
        (["ni-ns", "foo"], ""),
        (["ni-ns", "~:bar"], ""),
        (["ni-ns", ["list", "~:foo:bar", "~:bar:baz"]], ["foo", "bar"]),
        (["ni-ns", ["list", "foo:bar", "bar:baz"]], ["foo", "bar"]),
        (["ni-ns", "~:a:b:c"], "a:b"),
        (["ni-ns", ["list", 1, "~rhttp://x/", "a:b"]], ["a"]),
        (["ni-ns", None], None),
        (["ni-ns", 5], None),
        (["ni-id", "~:foo:bar"], "bar"),
        (["ni-id", "foo:bar"], "bar"),
        (["ni-id", "bar"], "bar"),
        (["ni-id", "~:bar"], "bar"),
        (["ni-id", ["list", "~:foo:bar", "~:bar:baz"]], ["bar", "baz"]),
        (["ni-id", ["list", "foo:bar", "bar:baz"]], ["bar", "baz"]),
        (["ni-id", "~:a:b:c"], "c"),
        (["ni-id", ["list", True, "x:"]], [""]),
        (["ni-id", None], None),
        (["ni-id", ["ni", "foo", "x:y"]], "y"),
    ],
)
def test_ni_parts(expr: Any, expected: Any) -> None:
    assert ev(expr) == expected


def test_ni_parts_of_source_values() -> None:
    source = {"refs": [NI("crm:1"), NI("erp:2"), "hr:3", 4]}
    assert ev(["ni-ns", "_S.refs"], source) == ["crm", "erp", "hr"]
    assert ev(["ni-id", "_S.refs"], source) == ["1", "2", "3"]


# -- is-ni -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["is-ni", ["ni", "foo:bar"]], True),
        (["is-ni", "foo:bar"], False),
        (["is-ni", ["list", ["ni", "foo:bar"], 12345]], True),
        (["is-ni", ["list", 1, ["ni", "foo:bar"]]], False),
        (["is-ni", "~:foo:bar"], True),
        (["is-ni", "~rhttp://x/"], False),
        (["is-ni", None], False),
        (["is-ni", ["list"]], False),
    ],
)
def test_is_ni(expr: Any, expected: bool) -> None:
    assert ev(expr) is expected


def test_is_ni_of_source_values() -> None:
    source = {"ref": NI("a:b"), "id": uuid.uuid4(), "s": "a:b"}
    assert [ev(["is-ni", f"_S.{k}"], source) for k in source] == [True, False, False]
