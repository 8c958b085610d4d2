"""Dictionaries, paths, apply and namespaces of keys (dtl-spec 6.6)."""

from __future__ import annotations

from typing import Any

from ._context import Ctx, Evaluator
from ._namespaces import apply_namespaces, strip_namespaces
from ._paths import resolve_steps, walk
from ._registry import Call, expression, function, is_constant, with_value
from ._values import as_list

_SKIP: Any = object()


@expression("apply", args=2)
def _apply(call: Call) -> Evaluator:
    rule = call.string(0)
    compiler = call.compiler
    slot = compiler.rule_slot(rule, call.arg_where(0))
    compiler.info(rule).applied_at.append(call.where)
    values = call.compile(1)

    def run(c: Ctx, value: Any) -> Any:
        child = Ctx(value, {}, c.env, c, c.root, c.h)
        return child.T if slot[0](child) is None else _SKIP

    def evaluate(c: Ctx) -> Any:
        value = values(c)
        if type(value) is list:
            out: list[Any] = []
            if not value:
                return out
            step = slot[0]
            child = Ctx(None, None, c.env, c, c.root, c.h)  # one context, reset per element
            for v in value:
                child.S = v
                child.T = {}
                child.u = None
                if step(child) is None:
                    out.append(child.T)
            return out
        if value is None:
            return None
        result = run(c, value)
        return None if result is _SKIP else result

    return evaluate


@expression("dict", args=(0, None))
def _dict(call: Call) -> Evaluator:
    count = len(call.args)
    if count == 0:
        return lambda c: {}
    if count == 1:
        items = call.compile(0)

        def from_items(c: Ctx) -> dict[Any, Any]:
            out: dict[Any, Any] = {}
            for item in as_list(items(c)):
                if type(item) is list and len(item) == 2 and type(item[0]) is str:
                    out[item[0]] = item[1]
            return out

        return from_items
    if count % 2:
        raise call.error("takes no argument, one list of pairs, or KEY, VALUE pairs")
    pairs = tuple((call.compile(i), call.compile(i + 1)) for i in range(0, count, 2))

    def from_pairs(c: Ctx) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key_of, value_of in pairs:
            key = key_of(c)
            if type(key) is str:
                out[key] = value_of(c)
        return out

    return from_pairs


@expression("path", args=2)
def _path(call: Call) -> Evaluator:
    path_of = call.compile(0)
    values = call.compile(1)
    ns = call.compiler.ns

    def steps_of(path: Any) -> list[Any]:
        return resolve_steps([p for p in as_list(path) if type(p) is str], ns)

    if is_constant(path_of):
        steps = steps_of(path_of.dtl_constant)  # type: ignore[attr-defined]
        if len(steps) == 1 and type(steps[0]) is str:
            (key,) = steps

            def single(c: Ctx) -> Any:
                value = values(c)
                if type(value) is dict:
                    return value.get(key)
                return walk(value, steps)

            return single
        return lambda c: walk(values(c), steps)
    return lambda c: walk(values(c), steps_of(path_of(c)))


@function("has-key", args=2)
def _has_key(key: Any, values: Any) -> Any:
    value = values[0] if type(values) is list and values else values
    if type(value) is not dict:
        return None
    return key in value if type(key) is str else False


@function("is-dict", args=1)
def _is_dict(value: Any) -> bool:
    value = value[0] if type(value) is list and value else value
    return type(value) is dict


def _dicts(values: Any) -> list[dict[str, Any]]:
    return [v for v in as_list(values) if type(v) is dict]


@function("items", args=1)
def _items(values: Any) -> list[list[Any]]:
    return [[k, v] for d in _dicts(values) for k, v in d.items()]


@function("keys", args=1)
def _keys(values: Any) -> list[str]:
    return [k for d in _dicts(values) for k in d]


@function("values", args=1)
def _values(values: Any) -> list[Any]:
    return [v for d in _dicts(values) for v in d.values()]


@function("key-values", args=1)
def _key_values(values: Any) -> Any:
    out = [{"key": k, "value": v} for d in _dicts(values) for k, v in d.items()]
    if type(values) is dict and len(out) == 1:
        return out[0]
    return out


@expression("map-dict", args=3)
def _map_dict(call: Call) -> Evaluator:
    key_fn = call.compile(0)
    value_fn = call.compile(1)
    values = call.compile(2)

    def map_one(c: Ctx, value: dict[str, Any]) -> dict[str, Any] | None:
        out = {}
        for k, v in value.items():
            key = with_value(c, key_fn, k)
            if type(key) is list and len(key) == 1:  # ``["filter", COND, "_."]`` keeps a key as ``[key]``
                key = key[0]
            if type(key) is str:
                out[key] = with_value(c, value_fn, v)
        return out or None

    def evaluate(c: Ctx) -> Any:
        value = values(c)
        if type(value) is dict:
            return map_one(c, value)
        return [r for r in (map_one(c, d) for d in _dicts(value)) if r is not None]

    return evaluate


@expression("map-values", args=2)
def _map_values(call: Call) -> Evaluator:
    value_fn = call.compile(0)
    values = call.compile(1)

    def evaluate(c: Ctx) -> list[Any]:
        return [with_value(c, value_fn, v) for d in _dicts(values(c)) for v in d.values()]

    return evaluate


# -- namespaces of keys ----------------------------------------------------------------------------


@expression("apply-ns", args=2)
def _apply_ns_expression(call: Call) -> Evaluator:
    ns = call.compiler.ns
    ok, spec = call.constant(0)
    if not ok or not (type(spec) is str or type(spec) is dict or spec is None):
        raise call.error("NAMESPACE must be a constant string or a config dict", 0)
    if type(spec) is dict:
        prop = spec.get("property_namespace", ns.property)
        ident = spec.get("identity_namespace", ns.identity)
        options = (spec.get("skip_underscore", True), spec.get("skip_dollar", True), spec.get("recursive", True))
    else:
        prop = ident = spec
        options = (True, True, True)
    values = call.compile(1)
    skip_underscore, skip_dollar, recursive = options
    return lambda c: apply_namespaces(values(c), prop, ident, skip_underscore=skip_underscore,
                                      skip_dollar=skip_dollar, recursive=recursive)


function("strip-ns", args=1)(strip_namespaces)

