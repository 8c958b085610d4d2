"""Dictionaries, paths and apply-ns/strip-ns."""

import pytest

from dtl.testing import ev


@pytest.mark.parametrize(("expr", "source", "expected"), [
    ("_S.a.b", {"a": {"b": 1}}, 1),
    ("_S.a.b", {"a": {"c": 1}}, None),
    ("_S.a.b", {"a": [{"b": 1}, {"c": 2}, {"b": [3, 4]}]}, [1, 3, 4]),
    ("_S.m", {"m": [[1, 2], [3]]}, [[1, 2], [3]]),
    ("_S.a", {"a": None}, None),
    ("_S.a.b", {"a": "text"}, None),
    ("_S.a.b.c", {"a": {"b": [{"c": 1}, {"c": 2}]}}, [1, 2]),
    ("_S.a.b", {"a": []}, []),
    ("_S.foo.'john.doe''s'.bar", {"foo": {"john.doe's": {"bar": 7}}}, 7),
    ("_S.x:y", {"x:y": 1}, 1),
    ("_S.", {"x": 1}, {"x": 1}),
    ("_S", {"x": 1}, "_S"),
    ("S.x", {"x": 1}, "S.x"),
])
def test_path_strings(expr, source, expected):
    assert ev(expr, source) == expected


def test_variables():
    assert ev(["list", "_T.t", "_R._S.s", "_R._T.t", "_B.b", "_P._S.s"], {"s": 1}, target={"t": 2},
              bound={"b": 3}) == [2, 1, 2, 3, None]
    assert ev("_R.", {"s": 1}) == {"_S": {"s": 1}, "_T": {}}


def test_path_function():
    assert ev(["path", "age", {"age": 24}]) == 24
    assert ev(["path", ["list", 1, "age", None], {"age": 24}]) == 24
    assert ev(["path", ["list"], {"age": 24}]) == {"age": 24}
    assert ev(["path", ["list", "a", "b"], ["list", {"a": {"b": 1}}, {"a": [{"b": 2}, {"b": 3}]}]]) == [1, 2, 3]
    assert ev(["path", "a.b", {"a.b": 5}]) == 5
    assert ev(["path", "_S.dyn", {"x": 9}], {"dyn": "x"}) == 9
    assert ev(["path", "_S.dyn", {"x": {"y": 8}}], {"dyn": ["x", "y"]}) == 8


def test_dynamic_ids():
    assert ev("_S.$ids", {"_id": "a"}) == ["~:a"]
    assert ev("_S.$ids", {"_id": "a", "$ids": ["~:x:1"]}) == ["~:x:1"]
    pipe = {"id": "p", "namespaced_identifiers": True, "namespaces": {"identity": "i", "property": "p"}}
    assert ev("_S.$ids", {"_id": "a"}, pipe=pipe) == ["~:i:a"]


NS_PIPE = {"id": "mypipe", "namespaced_identifiers": True, "namespaces": {"identity": "foo", "property": "bar"}}


@pytest.mark.parametrize(("path", "expected"), [
    ("a", [1, 2, 3, 4]), ("foo:a", 2), ("::a", 1), (":a", [3, 4]),
])
def test_namespaced_paths(path, expected):
    value = {"a": 1, "foo:a": 2, "bar:a": [3, 4]}
    assert ev(["path", path, value], pipe=NS_PIPE) == expected
    assert ev("_S." + path, value, pipe=NS_PIPE) == expected


@pytest.mark.parametrize(("expr", "expected"), [
    (["dict"], {}),
    (["dict", ["list", ["list", "A", 1], ["list", "A", 2], "junk"]], {"A": 2}),
    (["dict", "a", ["upper", "a"], ["lower", "B"], "B"], {"a": "A", "b": "B"}),
    (["has-key", "a", {"a": 1}], True), (["has-key", "b", ["list", {"a": 1}]], False),
    (["has-key", "a", ["list", 1, {"a": 1}]], None),
    (["is-dict", ["list", {"a": 1}, 1]], True), (["is-dict", "x"], False),
    (["items", ["list", {"A": 1}, 2, {"B": 2}]], [["A", 1], ["B", 2]]),
    (["keys", ["list", {"A": 1, "B": 2}, {"A": 3}]], ["A", "B", "A"]),
    (["values", ["list", {"A": 1}, "x", {"A": 3}]], [1, 3]),
    (["key-values", {"h": "w"}], {"key": "h", "value": "w"}),
    (["key-values", ["list", {"h": "w"}]], [{"key": "h", "value": "w"}]),
    (["map-dict", ["upper", "_."], ["plus", 1, "_."], {"a": 1}], {"A": 2}),
    (["map-dict", ["if", ["gt", ["length", "_."], 1], "_."], "_.", ["list", {"ab": 1, "a": 2}, {"b": 3}]],
     [{"ab": 1}]),
    (["map-values", ["lower", "_."], ["list", {"k": "A"}, 1, {"k": "B"}]], ["a", "b"]),
    (["strip-ns", {"ns1:b": 1, "c": {"x:y": 2}}], {"b": 1, "c": {"y": 2}}),
    (["apply-ns", "n", {"_id": "1", "a": 1, "n:b": 2, "$c": {"d": 3}, "e": {"f": 4}}],
     {"_id": "n:1", "n:a": 1, "n:b": 2, "$c": {"d": 3}, "n:e": {"n:f": 4}}),
    (["apply-ns", {"property_namespace": "n", "identity_namespace": None, "skip_underscore": False,
                   "recursive": False}, {"_id": "1", "e": {"f": 4}}], {"n:_id": "1", "n:e": {"f": 4}}),
])
def test_dict_functions(expr, expected):
    assert ev(expr) == expected


def test_pipe_add_and_remove_namespaces():
    from dtl import add_namespaces, remove_namespaces
    from dtl.testing import typed, wire

    pipe = {"id": "crm", "namespaced_identifiers": True}
    entity = {"_id": "1", "_deleted": False, "name": "a", "$ids": ["~:crm:1"], "addr": {"city": "x"}}
    added = add_namespaces(entity, pipe)
    assert added == {"_id": "crm:1", "_deleted": False, "crm:name": "a", "$ids": ["~:crm:1"],
                     "crm:addr": {"crm:city": "x"}}
    assert wire(remove_namespaces(typed({**added, "crm:ref": "~:other:7", "crm:refs": ["~:a:b:c"]}))) == {
        "_id": "1", "_deleted": False, "name": "a", "$ids": ["~:crm:1"], "addr": {"city": "x"}, "ref": "7",
        "refs": ["b:c"]}
