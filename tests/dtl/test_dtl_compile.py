"""Compile errors, the registry decorators and the public API."""

import pytest

from dtl import DTLCompileError, compile_expression, compile_transform
from dtl._registry import EXPRESSIONS, IGNORE, Call, cast, elementwise, expression, function, transform
from dtl.testing import ev


def transform_of(rules, **extra):
    return compile_transform({"type": "dtl", "rules": rules, **extra})


@pytest.mark.parametrize(("rules", "where", "message"), [
    ({"default": [["copy", "_id"], ["add", "x", "_S.a"], ["add", "y", "_S.b"], ["add", "z", ["concatt", "a"]]]},
     "rules.default[3][2]", 'unknown function "concatt"'),
    ({"default": [["add", "x", ["upper"]]]}, "rules.default[0][2]", '"upper" takes 1 argument, got 0'),
    ({"default": [["add", "x", ["if", 1, 2, 3, 4]]]}, "rules.default[0][2]", "2 to 3 arguments, got 4"),
    ({"default": [["add", "x"]]}, "rules.default[0]", '"add" takes 2 arguments, got 1'),
    ({"default": [["addd", "x", 1]]}, "rules.default[0]", 'unknown transform function "addd"'),
    ({"default": [["upper", "x"]]}, "rules.default[0]", "is an expression, not a transform"),
    ({"default": [["add", "x", ["copy", "x"]]]}, "rules.default[0][2]", "is a transform function"),
    ({"default": [["add", "x", [1, 2]]]}, "rules.default[0][2]", "must start with a function name"),
    ({"default": ["copy"]}, "rules.default[0]", "must be a list"),
    ({"default": [["add", "x", ["apply", "nope", "_S."]]]}, "rules.default[0][2][1]", 'unknown rule "nope"'),
    ({"default": [["add", "x", ["apply", 5, "_S."]]]}, "rules.default[0][2][1]", "constant string"),
    ({"default": [["copy", 5]]}, "rules.default[0][1]", "patterns must be"),
    ({"default": [["make-ni", "_S.x", "a"]]}, "rules.default[0][1]", "constant string"),
    ({"default": [["add", "x", ["dict", "a", 1, "b"]]]}, "rules.default[0][2]", "KEY, VALUE pairs"),
    ({"other": []}, "rules", '"default" rule is missing'),
    ({"default": [["if", True, [["nope"]]]]}, "rules.default[0][2][0]", 'unknown transform function "nope"'),
    ({"default": [["add", "x", ["hops", {"datasets": ["a a"], "where": ["eq", "_S.x", "a.x"], "return": "a.y"},
                                 {"datasets": ["b b"], "where": ["eq", "_S.x", "b.x"]}]]]},
     "rules.default[0][2][1].return", "only the last hops spec"),
])
def test_compile_errors_name_where(rules, where, message):
    with pytest.raises(DTLCompileError) as info:
        transform_of(rules)
    assert info.value.where == where
    assert message in str(info.value)
    assert str(info.value).startswith(where + ": ")


def test_transform_config_errors():
    with pytest.raises(DTLCompileError, match="not a DTL transform"):
        compile_transform({"type": "http", "rules": {}})
    with pytest.raises(DTLCompileError, match="id_required"):
        transform_of({"default": []}, id_required="yes")
    with pytest.raises(DTLCompileError, match="trigger_on"):
        transform_of({"default": []}, trigger_on={"value": 5})


def test_compile_expression_errors_and_literals():
    with pytest.raises(DTLCompileError, match=r"^expr\[1\]: unknown function"):
        compile_expression(["list", ["nope"]])
    assert ev(["list", "~f1.50", "~:a:b", "~rhttp://x", "~zz", 1.0, {"a": "~f2"}]) == [
        "~f1.50", "~:a:b", "~rhttp://x", "~zz", 1.0, {"a": "~f2"}]
    assert ev(["is-float", 1.0]) is True


def test_constant_folding_and_purity():
    assert ev(["eq", ["uuid"], ["uuid"]]) is False
    expression = compile_expression(["upper", ["concat", "a", "b"]])
    assert expression.evaluate() == "AB"


def test_registry_decorators():
    @elementwise("test-double")
    def double(value):
        return value * 2 if type(value) is int else IGNORE

    @elementwise("test-scale", params=(1, 2))
    def scale(factor, offset=0):
        if type(factor) is not int:
            return None
        return lambda value: value * factor + offset if type(value) is int else IGNORE

    @function("test-pair", args=2)
    def pair(a, b):
        return [b, a]

    @cast("test-int")
    def to_int(value):
        return value if type(value) is int else IGNORE

    @expression("test-second", args=2)
    def second(call: Call):
        return call.compile(1)

    @transform("test-mark", args=1)
    def mark(call: Call):
        name = call.string(0)

        def step(c):
            c.T[name] = True

        return step

    try:
        assert ev(["test-double", ["list", 1, "a", 3]]) == [2, 6]
        assert ev(["test-double", "a"]) is None
        assert ev(["test-scale", 3, ["list", 1, 2]]) == [3, 6]
        assert ev(["test-scale", 3, 1, "_S.x"], {"x": 2}) == 7
        assert ev(["test-scale", "_S.f", 2], {"f": "bad"}) is None
        assert ev(["test-pair", 1, "_S.x"], {"x": 2}) == [2, 1]
        assert ev(["test-int", ["concat", "x", "_."], ["list", 1, "a", None]]) == [1, "xa"]
        assert ev(["test-second", 1, 2]) == 2
        assert transform_of({"default": [["copy", "_id"], ["test-mark", "m"]]}).run([{"_id": "a"}]) == [
            {"_id": "a", "m": True}]
        with pytest.raises(DTLCompileError, match="takes 2 to 3 arguments"):
            compile_expression(["test-scale", 1])
        with pytest.raises(RuntimeError, match="registered twice"):
            function("test-pair", args=1)(pair)
    finally:
        for name in ("test-double", "test-scale", "test-pair", "test-int", "test-second"):
            EXPRESSIONS.pop(name, None)
        from dtl._registry import TRANSFORMS

        TRANSFORMS.pop("test-mark", None)


def test_an_expression_tells_whether_it_is_a_constant_and_its_value():
    assert compile_expression(["eq", 1, 1]).constant is True  # folded at compile time
    assert compile_expression("a").is_constant and compile_expression("a").constant == "a"
    assert compile_expression("~t2024-01-01T00:00:00Z").is_constant
    varying = compile_expression("_S.name")
    assert not varying.is_constant
    with pytest.raises(ValueError, match="not a constant"):
        _ = varying.constant
