"""Boolean logic, comparisons, conditionals and null handling (dtl-spec 6.1-6.3, 6.13)."""

from __future__ import annotations

import operator
from typing import Any

from ._context import Ctx, Evaluator
from ._registry import Call, constant, expression, function, function_compiler, is_constant, with_value
from ._values import NUMBER_TYPES, as_list, compare, decode_literal, equal, is_null, truthy

# -- boolean logic ---------------------------------------------------------------------------------


@expression("and", args=(1, None))
def _and(call: Call) -> Evaluator:
    evaluators = tuple(call.compile_all())
    if len(evaluators) == 2:
        a, b = evaluators
        return lambda c: truthy(a(c)) and truthy(b(c))
    return lambda c: all(truthy(e(c)) for e in evaluators)


@expression("or", args=(1, None))
def _or(call: Call) -> Evaluator:
    evaluators = tuple(call.compile_all())
    if len(evaluators) == 2:
        a, b = evaluators
        return lambda c: truthy(a(c)) or truthy(b(c))
    return lambda c: any(truthy(e(c)) for e in evaluators)


@expression("not", args=(1, None))
def _not(call: Call) -> Evaluator:
    evaluators = tuple(call.compile_all())
    if len(evaluators) == 1:
        (a,) = evaluators
        return lambda c: not truthy(a(c))
    return lambda c: not all(truthy(e(c)) for e in evaluators)


def _quantifier(call: Call, quantify: Any) -> Evaluator:
    values = call.compile(len(call.args) - 1)
    if len(call.args) == 1:
        return lambda c: quantify(truthy(v) for v in as_list(values(c)))
    predicate = call.compile(0)
    return lambda c: quantify(truthy(with_value(c, predicate, v)) for v in as_list(values(c)))


@expression("all", args=(1, 2))
def _all(call: Call) -> Evaluator:
    return _quantifier(call, all)


@expression("any", args=(1, 2))
def _any(call: Call) -> Evaluator:
    return _quantifier(call, any)


# -- comparisons -----------------------------------------------------------------------------------


def values_equal(a: Any, b: Any) -> bool:
    """``eq``: both sides coerced to lists and compared exactly; null equals only null."""
    ta = type(a)
    if ta is type(b) and (ta is str or ta is int):
        return bool(a == b)
    if a is None or b is None:
        return a is None and b is None
    return equal(a if ta is list else [a], b if type(b) is list else [b])


def _compile_equality(call: Call, negate: bool) -> Evaluator:
    """eq/neq; comparing with a constant string, integer or boolean gets a direct fast path."""
    a, b = call.compile(0), call.compile(1)
    if is_constant(a) and not is_constant(b):
        a, b = b, a
    if is_constant(a):
        result = values_equal(a.dtl_constant, b.dtl_constant) != negate  # type: ignore[attr-defined]
        return constant(result)
    if is_constant(b):
        value = b.dtl_constant  # type: ignore[attr-defined]
        kind = type(value)
        if kind in (str, int, bool):
            def equals_constant(c: Ctx) -> bool:
                x = a(c)
                if type(x) is kind:
                    return (x == value) != negate
                return values_equal(x, value) != negate

            return equals_constant
    if negate:
        return lambda c: not values_equal(a(c), b(c))
    return lambda c: values_equal(a(c), b(c))


@expression("eq", args=2)
def _eq(call: Call) -> Evaluator:
    return _compile_equality(call, False)


@expression("neq", args=2)
def _neq(call: Call) -> Evaluator:
    return _compile_equality(call, True)


_FAST_ORDER = frozenset((int, float, str))


def _ordering(operator_fn: Any) -> Any:
    """gt/gte/lt/lte: compare the first values by mixed-type ordering; false when a side has no value."""

    def test(a: Any, b: Any) -> bool:
        ta = type(a)
        if ta is type(b) and ta in _FAST_ORDER:
            return bool(operator_fn(a, b))
        if ta is list:
            a = a[0] if a else None
        if type(b) is list:
            b = b[0] if b else None
        if a is None or b is None:
            return False
        return bool(operator_fn(compare(a, b), 0))

    return test


_NUMBERS = frozenset(NUMBER_TYPES)


def _ordering_call(operator_fn: Any) -> Any:
    """Compile gt/gte/lt/lte; with a constant numeric side, numbers on the other side compare directly.

    For two numbers ``compare`` is ``(a > b) - (a < b)`` (order keys ``(2, a)``, ``(2, b)``) and two
    floats go through ``operator_fn`` itself, as in ``test``.
    """
    test = _ordering(operator_fn)
    eager = function_compiler(test)

    def compile_call(call: Call) -> Evaluator:
        left, right = call.compile_all()
        if is_constant(left) == is_constant(right):
            return eager(call, [left, right])
        numbers = _NUMBERS
        if is_constant(right):
            b = right.dtl_constant  # type: ignore[attr-defined]
            tb = type(b)
            if tb not in numbers:
                return eager(call, [left, right])

            from_s, key = getattr(left, "dtl_key", (False, None))
            if key is not None:

                def evaluate_key_right(c: Ctx) -> Any:  # ["gt", "_T.KEY", NUMBER]: the path read in place
                    root = c.S if from_s else c.T
                    a = root.get(key) if type(root) is dict else left(c)
                    ta = type(a)
                    if ta in numbers:
                        if ta is float and tb is float:
                            return operator_fn(a, b)
                        return operator_fn((a > b) - (a < b), 0)
                    return test(a, b)

                return evaluate_key_right

            def evaluate_right(c: Ctx) -> Any:
                a = left(c)
                ta = type(a)
                if ta in numbers:
                    if ta is float and tb is float:
                        return operator_fn(a, b)
                    return operator_fn((a > b) - (a < b), 0)
                return test(a, b)

            return evaluate_right
        a = left.dtl_constant  # type: ignore[attr-defined]
        ta = type(a)
        if ta not in numbers:
            return eager(call, [left, right])

        def evaluate_left(c: Ctx) -> Any:
            b = right(c)
            tb = type(b)
            if tb in numbers:
                if ta is float and tb is float:
                    return operator_fn(a, b)
                return operator_fn((a > b) - (a < b), 0)
            return test(a, b)

        return evaluate_left

    return compile_call


expression("gt", args=2)(_ordering_call(operator.gt))
expression("gte", args=2)(_ordering_call(operator.ge))
expression("lt", args=2)(_ordering_call(operator.lt))
expression("lte", args=2)(_ordering_call(operator.le))


# -- conditionals ----------------------------------------------------------------------------------


@expression("if", args=(2, 3))
def _if(call: Call) -> Evaluator:
    condition = call.compile(0)
    then = call.compile(1)
    otherwise = call.compile(2) if len(call.args) == 3 else constant(None)
    if is_constant(condition):
        return then if truthy(condition.dtl_constant) else otherwise  # type: ignore[attr-defined]
    return lambda c: then(c) if truthy(condition(c)) else otherwise(c)


@expression("case", args=(2, None))
def _case(call: Call) -> Evaluator:
    count = len(call.args)
    pairs = tuple((call.compile(i), call.compile(i + 1)) for i in range(0, count - 1, 2))
    otherwise = call.compile(count - 1) if count % 2 else constant(None)

    def evaluate(c: Ctx) -> Any:
        for condition, value in pairs:
            if truthy(condition(c)):
                return value(c)
        return otherwise(c)

    return evaluate


@expression("case-eq", args=(3, None))
def _case_eq(call: Call) -> Evaluator:
    subject = call.compile(0)
    count = len(call.args) - 1
    pairs = tuple((call.compile(i), call.compile(i + 1)) for i in range(1, count, 2))
    otherwise = call.compile(count) if count % 2 else constant(None)

    def evaluate(c: Ctx) -> Any:
        value = subject(c)
        for candidate, result in pairs:
            if values_equal(value, candidate(c)):
                return result(c)
        return otherwise(c)

    return evaluate


@expression("literal", args=1)
def _literal(call: Call) -> Evaluator:
    return constant(decode_literal(call.args[0]))


# -- nulls -----------------------------------------------------------------------------------------


@function("is-null", args=1)
def _is_null(value: Any) -> bool:
    return is_null(value)


@function("is-not-null", args=1)
def _is_not_null(value: Any) -> bool:
    return not is_null(value)


@expression("if-null", args=2)
def _if_null(call: Call) -> Evaluator:
    value_of = call.compile(0)
    fallback = call.compile(1)

    def evaluate(c: Ctx) -> Any:
        value = value_of(c)
        return fallback(c) if is_null(value) else value

    return evaluate


@expression("coalesce", args=(1, 2))
def _coalesce(call: Call) -> Evaluator:
    values = call.compile(len(call.args) - 1)
    if len(call.args) == 1:
        pair = getattr(values, "dtl_items", None)  # ["coalesce", ["list", A, B]]: no list built
        if pair is not None and len(pair) == 2:
            a, b = pair
            if is_constant(b):
                fallback = b.dtl_constant  # type: ignore[attr-defined]
                from_s, key = getattr(a, "dtl_key", (False, None))
                if key is not None:

                    def key_or_constant(c: Ctx) -> Any:
                        root = c.S if from_s else c.T
                        x = root.get(key) if type(root) is dict else a(c)
                        return fallback if x is None else x

                    return key_or_constant

                def first_or_constant(c: Ctx) -> Any:
                    x = a(c)
                    return fallback if x is None else x

                return first_or_constant

            def first_of_two(c: Ctx) -> Any:
                x = a(c)
                y = b(c)
                return y if x is None else x

            return first_of_two

        def first_non_null(c: Ctx) -> Any:
            value = values(c)
            if type(value) is not list:
                return value
            for item in value:
                if item is not None:
                    return item
            return None

        return first_non_null
    predicate = call.compile(0)

    def first_matching(c: Ctx) -> Any:
        for item in as_list(values(c)):
            if truthy(with_value(c, predicate, item)):
                return item
        return None

    return first_matching


@expression("coalesce-args", args=(1, None))
def _coalesce_args(call: Call) -> Evaluator:
    evaluators = tuple(call.compile_all())

    def evaluate(c: Ctx) -> Any:
        for evaluator in evaluators:
            value = evaluator(c)
            if value is not None:
                return value
        return None

    return evaluate
