"""String functions."""

import pytest

from dtl.testing import ev


@pytest.mark.parametrize(("expr", "expected"), [
    (["concat", "a", ["list", "b", "c"], "d", 123, None], "abcd"),
    (["concat", 123, 3.14], ""),
    (["join", "-", ["list", "a", 1, "b"]], "a-b"),
    (["join", "-", "x"], "x"),
    (["split", "-", "a-b-c"], ["a", "b", "c"]),
    (["split", "", ["list", "ab", "c"]], ["a", "b", "c"]),
    (["split", "a b  c"], ["a", "b", "c"]),
    (["split", "-", 5], None),
    (["lower", ["list", "A", 1, "B"]], ["a", "b"]),
    (["upper", 123], None),
    (["upper", ["list"]], []),
    (["upper", None], None),
    (["strip", "  x "], "x"),
    (["strip", "xy", ["list", "xyaxy", 1]], ["a"]),
    (["lstrip", "  x "], "x "),
    (["rstrip", "  x "], "  x"),
    (["replace", "a", "b", "banana"], "bbnbnb"),
    (["replace", {"Hello": "HELLO", "world": "WORLD"}, "Hello world!"], "HELLO WORLD!"),
    (["replace", ["dict", "a", "A"], ["list", "abc", 1]], ["Abc"]),
    (["length", ["list", "", "ab", 3]], [0, 2]),
    (["ljust", 5, "0", "12"], "12000"),
    (["rjust", 5, "0", ["list", "12", "123456"]], ["00012", "123456"]),
    (["ljust", 5, "ab", "x"], None),
    (["ljust", "5", "a", "x"], None),
    (["substring", 2, 4, "abcdef"], "cd"),
    (["substring", -3, "abcdef"], "def"),
    (["matches", "a*p*a", ["list", "alpha", "alpaca"]], True),
    (["matches", "b?d", "bad"], True),
    (["matches", "*", None], False),
    (["matches", "*", ["list", "x", 1]], False),
])
def test_string_functions(expr, expected):
    assert ev(expr) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (1, "1"), ("x", "x"), (None, None), (True, "true"), (1.5, "1.5"), ("~f1E-3", "0.001"),
    (["list", 1, ["list", 2]], ["1", "[2]"]), ({"b": 2, "a": [1, "x"]}, '{"a": [1, "x"], "b": 2}'),
    ("~rhttp://x/", "http://x/"), ("~t2015-01-02T03:04:05Z", "2015-01-02T03:04:05Z"),
    ("~u531a379e-31bb-4ce1-8690-158dceb64be6", "531a379e-31bb-4ce1-8690-158dceb64be6"),
    ("~bYWJj", "abc"), ("~:foo:bar", "~:foo:bar"),
])
def test_string_cast(value, expected):
    expr = ["string", ["literal", value]] if isinstance(value, list) and value[:1] != ["list"] else ["string", value]
    assert ev(expr) == expected


def test_string_of_list_value_and_nulls_dropped():
    assert ev(["string", ["list", 1, None, "a"]]) == ["1", "a"]
