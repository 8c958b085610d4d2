"""Boolean logic, comparisons, conditionals and nulls."""

import pytest

from dtl import compile_expression
from dtl.testing import InMemoryLookup, ev


@pytest.mark.parametrize(("expr", "expected"), [
    (["and", True, 1], True),
    (["and", True, ["list"]], False),
    (["and", 0, ""], True),
    (["or", False, None], False),
    (["or", None, ["list", False]], True),
    (["not", True, False], True),
    (["not", True, True], False),
    (["not", None], True),
    (["all", ["list", 1, 2]], True),
    (["all", ["gt", "_.", 1], ["list", 1, 2]], False),
    (["any", ["gt", "_.", 1], ["list", 1, 2]], True),
    (["any", ["list", None, False]], False),
])
def test_boolean_logic(expr, expected):
    assert ev(expr) is expected


def test_and_or_case_evaluate_lazily():
    lookup = InMemoryLookup({"d": [{"_id": "x"}]})
    for expr in (["and", False, ["lookup-entity", "d", "x"]], ["or", True, ["lookup-entity", "d", "x"]],
                 ["case", True, "ok", ["lookup-entity", "d", "x"]], ["if", False, ["lookup-entity", "d", "x"]],
                 ["coalesce-args", 1, ["lookup-entity", "d", "x"]]):
        compile_expression(expr, lookup=lookup).evaluate({})
    assert lookup.calls == 0
    compile_expression(["and", True, ["lookup-entity", "d", "x"]], lookup=lookup).evaluate({})
    assert lookup.calls == 1


@pytest.mark.parametrize(("expr", "expected"), [
    (["eq", 42, ["list", 42]], True),
    (["eq", ["list", "a", "b"], ["list", "b", "a"]], False),
    (["eq", None, None], True),
    (["eq", None, ["list"]], False),
    (["eq", None, ["list", None]], False),
    (["eq", 1, 1.0], True),
    (["eq", 1, True], False),
    (["eq", "~f1.5", 1.5], True),
    (["eq", {"a": [1]}, {"a": [1]}], True),
    (["neq", 1, 2], True),
    (["gt", ["list", 5, 1], ["list", 3, 10]], True),
    (["gt", "~t2020-01-02T00:00:00Z", "~t2020-01-01T23:59:59Z"], True),
    (["gt", "~f1.5", 1], True),
    (["gte", 2, 2], True),
    (["lt", "abc", "abd"], True),
    (["lt", "B", "a"], True),
    (["lt", 5, "a"], True),
    (["lte", None, 1], False),
    (["gt", 1, ["list"]], False),
])
def test_comparisons(expr, expected):
    assert ev(expr) is expected


def test_if_and_case():
    assert ev(["if", ["gt", "_S.age", 42], 1, 2], {"age": 50}) == 1
    assert ev(["if", ["gt", "_S.age", 42], 1], {"age": 3}) is None
    assert ev(["if", 0, "yes", "no"]) == "yes"
    case = ["case", ["gte", "_S.age", 18], "adult", ["gte", "_S.age", 13], "teen", "child"]
    assert [ev(case, {"age": a}) for a in (30, 13, 2)] == ["adult", "teen", "child"]
    assert ev(["case", False, 1]) is None
    case_eq = ["case-eq", "_S.c", "NO", "Norway", 47, "Dial", "Other"]
    assert [ev(case_eq, {"c": c}) for c in ("NO", 47, "DK")] == ["Norway", "Dial", "Other"]
    assert ev(["case-eq", 1, 2, "two"]) is None


def test_literal():
    assert ev(["literal", "_S.foo"], {"foo": 1}) == "_S.foo"
    assert ev(["literal", ["upper", "x"]]) == ["upper", "x"]
    assert ev(["literal", "~rhttp://x/"]) == "~rhttp://x/"


@pytest.mark.parametrize(("value", "is_null"), [
    (None, True), (1, False), (["list"], True), (["list", None], True), (["list", None, 1], True),
    (["list", 1, None], False), ("", False),
])
def test_is_null(value, is_null):
    assert ev(["is-null", value]) is is_null
    assert ev(["is-not-null", value]) is (not is_null)


def test_if_null_and_coalesce():
    assert ev(["if-null", ["list", None], 2]) == 2
    assert ev(["if-null", ["list", 1, "x"], 2]) == [1, "x"]
    assert ev(["coalesce", ["list", "_S.a", "_S.b"]], {"b": 2}) == 2
    assert ev(["coalesce", 5]) == 5
    assert ev(["coalesce", ["gt", "_.", 3], ["list", 1, 5, 7]]) == 5
    assert ev(["coalesce", ["gt", "_.", 9], ["list", 1]]) is None
    assert ev(["coalesce-args", None, ["list"], 3]) == []
    assert ev(["coalesce-args", "_S.x", "_S.y"], {"y": "y"}) == "y"
