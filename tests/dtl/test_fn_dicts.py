"""Dictionary functions: dict, has-key, is-dict, items, key-values, keys, values, map-dict, map-values, path,
apply-ns, strip-ns (``apply``/``apply-hops`` are tested with the rules)."""

from __future__ import annotations

from typing import Any

import pytest

from dtl import DTLCompileError, compile_expression

NS_PIPE = {"_id": "p", "namespaced_identifiers": True, "namespaces": {"identity": "foo", "property": "bar"}}
NS_SOURCE = {"a": 1, "foo:a": 2, "bar:a": [3, 4]}


def ev(expr: Any, source: Any = None, pipe: dict[str, Any] | None = None) -> Any:
    return compile_expression(expr, pipe=pipe).evaluate(source)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["dict"], {}),
        (["dict", ["list", ["list", "A", 1], ["list", "B", 2], ["list", "C", 3]]], {"A": 1, "B": 2, "C": 3}),
        (["dict", ["list", "X", 123, ["list", "A", 1]]], {"A": 1}),
        (["dict", "a", ["upper", "a"], ["lower", "B"], "B"], {"a": "A", "b": "B"}),
        (["dict", ["list", ["list", "A", 1], ["list", "A", 2]]], {"A": 2}),
        (["dict", "a", 1, "a", 2], {"a": 2}),
        (["dict", ["list", ["list", "A", 1, 2], ["list", 1, 2], ["list", "B"]]], {}),
        (["dict", ["items", {"x": 1, "y": [2]}]], {"x": 1, "y": [2]}),
        (["dict", None], {}),
    ],
)
def test_dict(expr: Any, expected: Any) -> None:
    assert ev(expr) == expected


def test_dict_odd_argument_count_is_a_compile_error() -> None:
    with pytest.raises(DTLCompileError):
        compile_expression(["dict", "a", 1, "b"])


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["has-key", "a", {"a": 1}], True),
        (["has-key", "b", {"a": 1}], False),
        (["has-key", "a", ["list", {"a": 1}, 123]], True),
        (["has-key", "b", ["list", {"a": 1}, {"b": 1}]], False),
        (["has-key", "a", ["list", 123, {"a": 1}]], None),
        (["has-key", "a", None], None),
        (["has-key", "a", {"a": None}], True),
        (["is-dict", ["list", {"a": 1}, 123]], True),
        (["is-dict", ["list", 123, {"a": 1}]], False),
        (["is-dict", "abc"], False),
        (["is-dict", None], False),
        (["is-dict", ["list"]], False),
    ],
)
def test_has_key_and_is_dict(expr: Any, expected: Any) -> None:
    assert ev(expr) is expected


def test_has_key_and_is_dict_on_source() -> None:
    source = {"_id": "e1", "x": 1}
    assert ev(["is-dict", "_S."], source) is True
    assert ev(["has-key", "x", "_S."], source) is True
    assert ev(["has-key", "_S._id", {"e1": 0}], source) is True


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["items", ["list", {"A": 1, "B": 2}, {"C": 3}]], [["A", 1], ["B", 2], ["C", 3]]),
        (["items", ["list", "X", 123, {"A": 1}]], [["A", 1]]),
        (["items", None], []),
        (["key-values", ["list", {"A": 1, "B": 2}, 123, {"C": 3, "A": 1}]],
         [{"key": "A", "value": 1}, {"key": "B", "value": 2}, {"key": "C", "value": 3}, {"key": "A", "value": 1}]),
        (["key-values", {"hello": "world"}], {"key": "hello", "value": "world"}),
        (["key-values", {"a": 1, "b": 2}], [{"key": "a", "value": 1}, {"key": "b", "value": 2}]),
        (["key-values", ["list", {"hello": "world"}]], [{"key": "hello", "value": "world"}]),
        (["keys", ["list", {"A": 1, "B": 2}, {"A": 1, "C": 3}]], ["A", "B", "A", "C"]),
        (["keys", ["list", "X", 123, {"A": 1}]], ["A"]),
        (["values", ["list", {"A": 1, "B": 2}, {"A": 1, "C": 3}]], [1, 2, 1, 3]),
        (["values", ["list", "X", 123, {"A": 1}]], [1]),
        (["values", "X"], []),
    ],
)
def test_items_keys_values(expr: Any, expected: Any) -> None:
    assert ev(expr) == expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["map-dict", ["upper", "_."], ["string", "_."], {"a": 1, "b": 2}], {"A": "1", "B": "2"}),
        (["map-dict", ["upper", "_."], "_.", ["list", {"a": 1}, 3, {}]], [{"A": 1}]),
        (["map-dict", ["if", ["eq", "_.", "drop"], 1, "_."], "_.", {"drop": 1, "keep": 2}], {"keep": 2}),
        (["map-dict", 1, "_.", {"a": 1}], None),
        # a key result that is a one-element list of a string is that string; an empty list drops the key
        (["map-dict", ["filter", ["not", ["matches", "tmp_*", "_."]], "_."], "_.",
          {"sku": "X-9", "tmp_row": 4, "qty": 2, "tmp_file": "a.csv"}], {"sku": "X-9", "qty": 2}),
        (["map-dict", ["filter", ["neq", "_.", "secret"], "_."], ["upper", "_."],
          ["list", {"secret": "s", "who": "ann"}, {"secret": "t"}]], [{"who": "ANN"}]),
        (["map-dict", ["list", "_.", "_."], "_.", {"a": 1}], None),
        (["map-dict", ["list", 7], "_.", {"a": 1}], None),
        (["map-values", ["+", "_.", 1], ["list", {"a": 1, "b": 2}, {"c": 3}, 4]], [2, 3, 4]),
        (["map-values", ["+", "_.", 1], {"a": 1}], [2]),
        (["map-values", "_.", None], []),
    ],
)
def test_map_dict_and_map_values(expr: Any, expected: Any) -> None:
    assert ev(expr) == expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["path", "age", ["list", {"age": 23}, {"age": 24}]], [23, 24]),
        (["path", "age", {"age": 24}], 24),
        (["path", ["list", 1, "age", None], {"age": 24}], 24),
        (["path", ["list", 1], {"age": 24}], {"age": 24}),
        (["path", ["list"], {"age": 24}], {"age": 24}),
        (["path", "foo", {"bar": 123}], None),
        (["path", ["list", "a", "b"], ["list", {"a": {"b": 1}}, {"a": [{"b": 2}, {"b": 3}]}]], [1, 2, 3]),
        (["path", "a", {"a": [[1], [2]]}], [[1], [2]]),
        (["path", "a:b", {"a:b": 1}], 1),
    ],
)
def test_path(expr: Any, expected: Any) -> None:
    assert ev(expr) == expected


def test_path_over_source() -> None:
    source = {"orders": [{"order_lines": [{"item_name": "x"}, {"item_name": "y"}]},
                         {"order_lines": {"item_name": "z"}}]}
    assert ev(["path", ["list", "order_lines", "item_name"], "_S.orders"], source) == ["x", "y", "z"]
    assert ev(["path", "_S.key", {"k": 5}], {"key": "k"}) == 5


@pytest.mark.parametrize(
    ("path", "expected"),
    [("foo:a", 2), ("a", [1, 2, 3, 4]), ("::a", 1), (":a", [3, 4])],
)
def test_path_with_namespaced_identifiers(path: str, expected: Any) -> None:
    assert ev(["path", path, NS_SOURCE], pipe=NS_PIPE) == expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["apply-ns", "myns", {"_id": "123", "foo": 1, "$bar": {"baz": 2}}],
         {"_id": "myns:123", "myns:foo": 1, "$bar": {"baz": 2}}),
        (["apply-ns", {"property_namespace": "myns", "identity_namespace": "myns", "skip_underscore": False,
                       "skip_dollar": False, "recursive": True}, {"_id": "123", "foo": 1, "$bar": {"baz": 2}}],
         {"myns:_id": "myns:123", "myns:foo": 1, "myns:$bar": {"myns:baz": 2}}),
        (["apply-ns", {"property_namespace": "myns", "identity_namespace": None, "skip_underscore": False,
                       "skip_dollar": False, "recursive": False}, {"_id": "123", "myns:foo": 1, "$bar": {"baz": 2}}],
         {"myns:_id": "123", "myns:foo": 1, "myns:$bar": {"baz": 2}}),
        (["apply-ns", "n", {"a": {"b": [{"c": 1}]}}], {"n:a": {"n:b": [{"n:c": 1}]}}),
        (["apply-ns", "n", {"_id": "n:1", "n:a": 1}], {"_id": "n:1", "n:a": 1}),
        (["strip-ns", {"ns1:b": 1, "ns2:c": 2}], {"b": 1, "c": 2}),
        (["strip-ns", {"a:b": {"c:d": [{"e:f": 1}]}, "g": 2}], {"b": {"d": [{"f": 1}]}, "g": 2}),
        (["strip-ns", ["list", {"a:b": 1}, 2]], [{"b": 1}, 2]),
    ],
)
def test_apply_ns_and_strip_ns(expr: Any, expected: Any) -> None:
    assert ev(expr) == expected


def test_apply_ns_defaults_to_pipe_namespaces() -> None:
    result = ev(["apply-ns", {}, {"_id": "1", "x": 1}], pipe=NS_PIPE)
    assert result == {"_id": "foo:1", "bar:x": 1}


def test_apply_ns_namespace_must_be_constant() -> None:
    with pytest.raises(DTLCompileError):
        compile_expression(["apply-ns", "_S.ns", {"a": 1}])
