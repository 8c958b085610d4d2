"""List and set functions."""

import pytest

from dtl.testing import ev


@pytest.mark.parametrize(("expr", "expected"), [
    (["list"], []),
    (["list", "a", ["list", "b"]], ["a", ["b"]]),
    (["combine", None], []),
    (["combine", 1, ["list", 2, ["list", 3]], None], [1, 2, [3]]),
    (["flatten", ["list", 1, ["list", 2, ["list", 3]]]], [1, 2, [3]]),
    (["flatten", 5], 5),
    (["count", None], 0), (["count", 7], 1), (["count", ["list", 1, ["list", 2, 3]]], 2),
    (["first", ["list"]], None), (["first", 3], 3), (["last", ["list", 1, 2]], 2),
    (["nth", 1, ["list", "a", "b"]], "b"), (["nth", 5, ["list", "a"]], None),
    (["nth", 0, "a"], "a"), (["nth", 1, "a"], None), (["nth", -1, ["list", "a", "b"]], "b"),
    (["is-list", ["list"]], True), (["is-list", "x"], False),
    (["is-empty", None], True), (["is-empty", ["list", None]], False), (["is-not-empty", 0], True),
    (["in", "a", ["list", "a", "b"]], True), (["in", ["list", "a", "c"], ["list", "a", "b"]], False),
    (["in", ["list"], 1], False), (["in", None, ["list", None]], False),
    (["in", ["list", None], ["list", 1, None]], True), (["in", ["list", 10], 10], True),
    (["reversed", ["list", 1, 3, 2]], [2, 3, 1]),
    (["range", 0, 3], [0, 1, 2]), (["range", 4, 0, -2], [4, 2]), (["range", 0, 3, 0], None),
    (["slice", 2, -2, 2, ["list", 0, 1, 2, 3, 4, 5, 6]], [2, 4]),
    (["slice", 2, ["list", 0, 1, 2, 3]], [2, 3]),
    (["slice", 1, 3, ["list", 0, 1, 2, 3]], [1, 2]),
    (["insert", 1, 2, 3], [2, 3]), (["insert", -2, ["list", 1, 2, 3], 4], [1, 4, 2, 3]),
    (["insert", 1, ["list", 1, 2], ["list", 3]], [1, [3], 2]),
    (["tuples"], []), (["tuples", "a", "b"], [["a", "b"]]),
    (["tuples", ["list", 1, 2], ["list", 3, None, 4]], [[1, 3], [1, 4], [2, 3], [2, 4]]),
    (["enumerate", "a"], {"key": 0, "value": "a"}),
    (["enumerate", 2, ["list", "x", "y"]], [{"key": 2, "value": "x"}, {"key": 3, "value": "y"}]),
    (["sum", ["list", 1, "a", 2.5, None]], 3.5), (["sum", ["list"]], 0), (["sum", ["list", "~f0.1", "~f0.2"]], "~f0.3"),
])
def test_list_functions(expr, expected):
    assert ev(expr) == expected


def test_function_expression_list_functions():
    people = [{"n": "a", "age": 30}, {"n": "b", "age": 50}, {"n": "c", "age": 20}]
    assert ev(["filter", ["gt", "_.age", 25], "_S.p"], {"p": people}) == people[:2]
    assert ev(["filter", "_.", ["list", 0, None, "", False, ["list"]]]) == [0, ""]
    assert ev(["map", ["upper", "_."], ["list", "a", "b"]]) == ["A", "B"]
    assert ev(["map", ["upper", "_."], "a"]) == "A"
    assert ev(["map", ["distinct", "_."], ["list", ["list", "A", "A"]]]) == [["A"]]
    assert ev(["sorted", "_.age", "_S.p"], {"p": people}) == [people[2], people[0], people[1]]
    assert ev(["sorted-descending", "_.age", "_S.p"], {"p": people}) == [people[1], people[0], people[2]]
    assert ev(["min", "_.age", "_S.p"], {"p": people}) == people[2]
    assert ev(["max", "_.age", "_S.p"], {"p": people}) == people[1]
    assert ev(["distinct", ["upper", "_."], ["list", "a", "A", "b"]]) == ["a", "b"]
    assert ev(["distinct", ["list", 1, True, 1.0, {"a": 1}, {"a": 1}]]) == [1, True, {"a": 1}]


def test_mixed_type_ordering():
    assert ev(["sorted", ["list", 1.5, "b", 1, "a", 2, None, True, {"x": 1}, ["list", 1], "~f0.5"]]) == [
        None, True, "~f0.5", 1, 1.5, 2, "a", "b", {"x": 1}, [1]]
    assert ev(["sorted", ["list", "B", "b", "A", "a"]]) == ["A", "B", "a", "b"]
    uid = "~u531a379e-31bb-4ce1-8690-158dceb64be6"
    assert ev(["sorted", ["list", "~:b", "~rhttp://a", "~t2020-01-01T00:00:00Z", uid, "~bYQ==", "s"]]) == [
        "~t2020-01-01T00:00:00Z", uid, "~:b", "~rhttp://a", "s", "~bYQ=="]
    assert ev(["sorted", ["list", {"x": 1}, {"x": "abc"}, {"x": 2}]]) == [{"x": 1}, {"x": 2}, {"x": "abc"}]
    assert ev(["sorted", 5]) == 5
    assert ev(["max", ["list", {"x": 1}, "b", 2]]) == {"x": 1}
    assert ev(["min", ["list"]]) is None


def test_group_and_group_by():
    pairs = ["list", ["list", "k1", "A"], ["list", "k2", "B"], ["list", "k2", "C"]]
    assert ev(["group", ["first", "_."], ["nth", 1, "_."], pairs]) == [["k1", ["A"]], ["k2", ["B", "C"]]]
    assert ev(["group-by", ["length", "_."], ["list", "ab", "c", "de"]]) == {"2": ["ab", "de"], "1": ["c"]}
    assert ev(["group-by", ["upper", "_."], ["list", "a"]]) == {'"A"': ["a"]}
    assert ev(["group-by", ["upper", "_."], ["string", "_."], ["list", "a"]]) == {"A": ["a"]}
    assert ev(["group-by", ["list", None, 1]]) == {"null": [None], "1": [1]}


@pytest.mark.parametrize(("expr", "expected"), [
    (["union", ["list", "A", "B"], ["list", "B", "C"]], ["A", "B", "C"]),
    (["union", "A", ["list", "B"]], ["A", "B"]),
    (["intersection", ["list", "B", "C", "B", "A"], ["list", "A", "B"]], ["B", "B", "A"]),
    (["difference", ["list", "D", "A", "D", "B"], ["list", "A"]], ["D", "D", "B"]),
    (["intersects", "B", ["list", "B", "C"]], True),
    (["intersects", "A", ["list", "B", "C"]], False),
])
def test_sets(expr, expected):
    assert ev(expr) == expected
