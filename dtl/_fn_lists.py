"""List and set functions (dtl-spec 6.7, 6.8)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ._context import Ctx, Evaluator
from ._fn_math import _multiply, _subtract, add_numbers
from ._registry import Call, expression, function, function_compiler, map_values, with_value
from ._values import DEC, as_list, equal, is_number, json_text, order_key

# -- construction and access -----------------------------------------------------------------------


@expression("list", args=(0, None))
def _list(call: Call) -> Evaluator:
    evaluators = tuple(call.compile_all())
    count = len(evaluators)
    if count == 0:
        return lambda c: []
    if count == 1:
        (a,) = evaluators

        def evaluate(c: Ctx) -> list[Any]:
            return [a(c)]
    elif count == 2:
        a, b = evaluators

        def evaluate(c: Ctx) -> list[Any]:
            return [a(c), b(c)]
    else:
        def evaluate(c: Ctx) -> list[Any]:
            return [e(c) for e in evaluators]

    evaluate.dtl_items = evaluators  # type: ignore[attr-defined]  # for fused callers (coalesce, concat)
    return evaluate


@function("combine", args=(1, None))
def _combine(*values: Any) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if type(value) is list:
            out.extend(value)
        elif value is not None:
            out.append(value)
    return out


@function("flatten", args=1)
def _flatten(values: Any) -> Any:
    if type(values) is not list:
        return values
    out: list[Any] = []
    for value in values:
        if type(value) is list:
            out.extend(value)
        else:
            out.append(value)
    return out


def _count(values: Any) -> int:
    if type(values) is list:
        return len(values)
    return 0 if values is None else 1


_count_eager = function_compiler(_count)


@expression("count", args=1)
def _count_call(call: Call) -> Evaluator:
    values = call.compile(0)
    from_s, key = getattr(values, "dtl_key", (False, None))
    if key is None:
        return _count_eager(call, [values])

    def count_key(c: Ctx) -> int:  # ["count", "_T.KEY"]: the path read in place
        root = c.S if from_s else c.T
        value = root.get(key) if type(root) is dict else values(c)
        if type(value) is list:
            return len(value)
        return 0 if value is None else 1

    return count_key


@function("first", args=1)
def _first(values: Any) -> Any:
    if type(values) is list:
        return values[0] if values else None
    return values


@function("last", args=1)
def _last(values: Any) -> Any:
    if type(values) is list:
        return values[-1] if values else None
    return values


@function("nth", args=2)
def _nth(index: Any, values: Any) -> Any:
    index = index[0] if type(index) is list and index else index
    if type(index) is not int:
        return None
    if type(values) is not list:
        return values if index == 0 else None
    if -len(values) <= index < len(values):
        return values[index]
    return None


@function("is-list", args=1)
def _is_list(value: Any) -> bool:
    return type(value) is list


@function("is-empty", args=1)
def _is_empty(value: Any) -> bool:
    return not as_list(value)


@function("is-not-empty", args=1)
def _is_not_empty(value: Any) -> bool:
    return bool(as_list(value))


@function("in", args=2)
def _in(values: Any, items: Any) -> bool:
    needles = as_list(values)
    if not needles:
        return False
    haystack = as_list(items)
    return all(any(equal(n, h) for h in haystack) for n in needles)


@function("reversed", args=1)
def _reversed(values: Any) -> Any:
    return values[::-1] if type(values) is list else values


@function("range", args=(2, 3))
def _range(start: Any, stop: Any, step: Any = 1) -> Any:
    if not all(type(v) is int for v in (start, stop, step)) or step == 0:
        return None
    return list(range(start, stop, step))


@function("slice", args=(2, 4))
def _slice(*args: Any) -> Any:
    *bounds, values = args
    if any(b is not None and type(b) is not int for b in bounds) or (len(bounds) == 3 and bounds[2] == 0):
        return None
    start, end, stride = ([*bounds, None, None])[:3]
    if type(values) is not list and type(values) is not str:
        return values
    return values[start:end:stride]


@function("insert", args=3)
def _insert(index: Any, values: Any, item: Any) -> Any:
    if type(index) is not int:
        return None
    out = list(as_list(values))
    out.insert(index, item)
    return out


@function("tuples", args=(0, None))
def _tuples(*values: Any) -> list[list[Any]]:
    if not values:
        return []
    lists = [[v for v in as_list(value) if v is not None] for value in values]
    return [list(t) for t in itertools.product(*lists)]


@expression("enumerate", args=(1, 2))
def _enumerate(call: Call) -> Evaluator:
    values = call.compile(len(call.args) - 1)
    start_of = call.compile(0) if len(call.args) == 2 else (lambda c: 0)

    def evaluate(c: Ctx) -> Any:
        start = start_of(c)
        if type(start) is not int:
            return None
        value = values(c)
        if type(value) is not list:
            return None if value is None else {"key": start, "value": value}
        return [{"key": start + i, "value": v} for i, v in enumerate(value)]

    return evaluate


# -- function-expression list functions ------------------------------------------------------------


def _optional_function(call: Call) -> tuple[Evaluator | None, Evaluator]:
    """``[FUNCTION,] VALUES``: the compiled function (or None) and the values."""
    if len(call.args) == 1:
        return None, call.compile(0)
    return call.compile(0), call.compile(1)


@expression("filter", args=2)
def _filter(call: Call) -> Evaluator:
    predicate = call.compile(0)
    values = call.compile(1)

    def evaluate(c: Ctx) -> list[Any]:
        items = as_list(values(c))
        saved = c.u
        out = []
        for item in items:
            c.u = item
            result = predicate(c)
            if not (result is None or result is False or (type(result) is list and not result)):
                out.append(item)
        c.u = saved
        return out

    return evaluate


@expression("map", args=2)
def _map(call: Call) -> Evaluator:
    mapper = call.compile(0)
    values = call.compile(1)

    def evaluate(c: Ctx) -> Any:
        value = values(c)
        if type(value) is not list:
            return None if value is None else with_value(c, mapper, value)
        return map_values(c, mapper, value)

    evaluate.dtl_map = (mapper, values)  # type: ignore[attr-defined]
    return evaluate


def _sort_key(values: list[Any]) -> Callable[[Any], Any] | None:
    """A fast key when all values are str or all are numbers, else None (use order_key)."""
    kinds = {type(v) for v in values}
    if kinds == {str} or (kinds and all(is_number(v) for v in values)):
        return None
    return order_key


def _sorted(call: Call, reverse: bool) -> Evaluator:
    key_fn, values = _optional_function(call)

    def evaluate(c: Ctx) -> Any:
        items = values(c)
        if type(items) is not list:
            return items
        if key_fn is None:
            return sorted(items, key=_sort_key(items), reverse=reverse)
        keys = map_values(c, key_fn, items)
        order = sorted(range(len(items)), key=lambda i: order_key(keys[i]), reverse=reverse)
        return [items[i] for i in order]

    return evaluate


@expression("sorted", args=(1, 2))
def _sorted_ascending(call: Call) -> Evaluator:
    return _sorted(call, False)


@expression("sorted-descending", args=(1, 2))
def _sorted_descending(call: Call) -> Evaluator:
    return _sorted(call, True)


def _extreme(call: Call, pick: Any) -> Evaluator:
    key_fn, values = _optional_function(call)

    def evaluate(c: Ctx) -> Any:
        items = [v for v in as_list(values(c)) if v is not None]
        if not items:
            return None
        if key_fn is None:
            return pick(items, key=order_key)
        keys = map_values(c, key_fn, items)
        best = pick(range(len(items)), key=lambda i: order_key(keys[i]))
        return items[best]

    return evaluate


@expression("min", args=(1, 2))
def _min(call: Call) -> Evaluator:
    return _extreme(call, min)


@expression("max", args=(1, 2))
def _max(call: Call) -> Evaluator:
    return _extreme(call, max)


class _Seen:
    """Membership by DTL equality (hashable values fast, others by scan)."""

    def __init__(self) -> None:
        self.hashed: set[Any] = set()
        self.other: list[Any] = []

    def add(self, value: Any) -> bool:
        """Add ``value``; False when an equal value was already there."""
        key = _hash_key(value)
        if key is not None:
            if key in self.hashed:
                return False
            self.hashed.add(key)
            return True
        if any(equal(value, o) for o in self.other):
            return False
        self.other.append(value)
        return True

    def __contains__(self, value: Any) -> bool:
        key = _hash_key(value)
        if key is not None:
            return key in self.hashed
        return any(equal(value, o) for o in self.other)


def _hash_key(value: Any) -> Any:
    kind = type(value)
    if kind is bool:
        return (bool, value)
    if kind is list or kind is dict:
        return None
    return value


@expression("distinct", args=(1, 2))
def _distinct(call: Call) -> Evaluator:
    key_fn, values = _optional_function(call)

    def evaluate(c: Ctx) -> Any:
        items = values(c)
        if type(items) is not list:
            return items
        keys = items if key_fn is None else map_values(c, key_fn, items)
        seen = _Seen()
        return [item for item, key in zip(items, keys, strict=True) if seen.add(key)]

    return evaluate


@expression("sum", args=1)
def _sum_call(call: Call) -> Evaluator:
    values = call.compile(0)
    fused = getattr(values, "dtl_map", None)
    if fused is None:
        return _sum_eager(call, [values])
    mapper, items = fused  # ["sum", ["map", F, VALUES]]: the mapped list is summed without a map call
    generic = _sum_of_map(mapper, items)
    key = getattr(mapper, "dtl_u_key", None)
    if key is not None:
        return _sum_of_keys(key, items, generic)
    binary = getattr(mapper, "dtl_binary", None)
    if binary is not None:
        operation, operand_fn, values_fn = binary
        operand_key = getattr(operand_fn, "dtl_u_key", None)
        values_key = getattr(values_fn, "dtl_u_key", None)
        if operand_key is not None and values_key is not None:
            return _sum_of_binary(operation, values_key, operand_key, items, generic)
    return generic


def _sum_of_map(mapper: Evaluator, items: Evaluator) -> Evaluator:
    def sum_of_map(c: Ctx) -> Any:
        value = items(c)
        if type(value) is not list:
            return _sum(None if value is None else with_value(c, mapper, value))
        saved = c.u
        mapped = []
        append = mapped.append
        for item in value:
            c.u = item
            append(mapper(c))
        c.u = saved
        return _sum(mapped)

    return sum_of_map


def _sum_of_keys(key: str, items: Evaluator, generic: Evaluator) -> Evaluator:
    """``["sum", ["map", "_.KEY", VALUES]]``: decimals of dict items added in place (``generic`` otherwise)."""
    add = DEC.add
    from_s, items_key = getattr(items, "dtl_key", (False, None))

    def sum_of_keys(c: Ctx) -> Any:
        if items_key is None:
            value = items(c)
        else:
            root = c.S if from_s else c.T
            value = root.get(items_key) if type(root) is dict else items(c)
        if type(value) is list and value:
            total: Any = _ZERO
            for item in value:
                if type(item) is not dict:
                    break
                v = item.get(key)
                if type(v) is not Decimal:
                    break
                total = add(total, v)
            else:
                return total
        return generic(c)

    return sum_of_keys


def _sum_of_binary(operation: Callable[[Any, Any], Any], values_key: str, operand_key: str, items: Evaluator,
                   generic: Evaluator) -> Evaluator:
    """``["sum", ["map", [OP, "_.B", "_.A"], VALUES]]`` with decimal results: no per-item calls.

    Per dict item ``operation(item.get(A), item.get(B))`` as the map-style operator computes it; any other
    item or result (non-dict, null, list, non-decimal) falls back to ``generic``, from the start.
    """
    add = DEC.add
    direct = {add_numbers: DEC.add, _subtract: DEC.subtract, _multiply: DEC.multiply}.get(operation)
    numbers = _NUMBERS
    from_s, items_key = getattr(items, "dtl_key", (False, None))

    def sum_of_binary(c: Ctx) -> Any:
        if items_key is None:
            value = items(c)
        else:
            root = c.S if from_s else c.T
            value = root.get(items_key) if type(root) is dict else items(c)
        if type(value) is list and value:
            total: Any = _ZERO
            for item in value:
                if type(item) is not dict:
                    break
                b = item.get(operand_key)
                a = item.get(values_key)
                ta = type(a)
                tb = type(b)
                if direct is not None and ((ta is Decimal and (tb is Decimal or tb is int))
                                           or (tb is Decimal and ta is int)):
                    r = direct(a, b)  # the context converts ints exactly, as the operator does
                elif ta in numbers and tb in numbers:
                    r = operation(a, b)
                    if type(r) is not Decimal:
                        break
                else:
                    break
                total = add(total, r)
            else:
                return total
        return generic(c)

    return sum_of_binary


def _sum(values: Any) -> Any:
    items = as_list(values)
    if items and type(items[0]) is Decimal:  # all decimals (the common case), else start again below
        total: Any = _ZERO
        add = DEC.add
        for value in items:
            if type(value) is not Decimal:
                break
            total = add(total, value)
        else:
            return total
    kinds = set(map(type, items))
    if kinds <= _INT_OR_FLOAT:
        return sum(items)
    total = 0
    for value in items:
        if is_number(value):
            total = add_numbers(total, value)
    return total


_INT_OR_FLOAT = frozenset((int, float))
_NUMBERS = frozenset((int, float, Decimal))
_sum_eager = function_compiler(_sum)
_ZERO = Decimal(0)


@expression("group", args=3)
def _group(call: Call) -> Evaluator:
    key_fn = call.compile(0)
    value_fn = call.compile(1)
    values = call.compile(2)

    def evaluate(c: Ctx) -> list[list[Any]]:
        groups: list[list[Any]] = []
        for item in as_list(values(c)):
            key = with_value(c, key_fn, item)
            mapped = with_value(c, value_fn, item)
            for group in groups:
                if equal(group[0], key):
                    group[1].append(mapped)
                    break
            else:
                groups.append([key, [mapped]])
        return groups

    return evaluate


@expression("group-by", args=(1, 3))
def _group_by(call: Call) -> Evaluator:
    count = len(call.args)
    values = call.compile(count - 1)
    key_fn = call.compile(0) if count >= 2 else None
    string_fn = call.compile(1) if count == 3 else None

    def evaluate(c: Ctx) -> dict[str, list[Any]]:
        groups: dict[str, list[Any]] = {}
        for item in as_list(values(c)):
            key = item if key_fn is None else with_value(c, key_fn, item)
            if string_fn is not None:
                text = with_value(c, string_fn, key)
                if type(text) is not str:
                    continue
            else:
                text = json_text(key, transit=True)
            groups.setdefault(text, []).append(item)
        return groups

    return evaluate


# -- sets ------------------------------------------------------------------------------------------


@function("union", args=(1, None))
def _union(*values: Any) -> list[Any]:
    seen = _Seen()
    return [v for value in values for v in as_list(value) if seen.add(v)]


def _membership(values: Any) -> _Seen:
    seen = _Seen()
    for v in as_list(values):
        seen.add(v)
    return seen


@function("intersection", args=(2, None))
def _intersection(first: Any, *others: Any) -> list[Any]:
    sets = [_membership(o) for o in others]
    return [v for v in as_list(first) if all(v in s for s in sets)]


@function("difference", args=(2, None))
def _difference(first: Any, *others: Any) -> list[Any]:
    sets = [_membership(o) for o in others]
    return [v for v in as_list(first) if not any(v in s for s in sets)]


@function("intersects", args=(2, None))
def _intersects(first: Any, *others: Any) -> bool:
    return bool(_intersection(first, *others))

