"""The 20 transform functions (dtl-spec section 5)."""

from __future__ import annotations

import copy as _copy
import time
from collections.abc import Callable
from typing import Any

from ._context import DISCARDED, FILTERED, Ctx, Evaluator, Step
from ._errors import DTLRuntimeError, DTLTripError
from ._fn_lists import _Seen
from ._fn_logic import values_equal
from ._registry import Call, is_constant, transform, with_value
from ._values import NI, as_list, truthy


def _noop(c: Ctx) -> None:
    return None


_noop.dtl_never_stops = True  # type: ignore[attr-defined]


def _mark_if_branches_never_stop(step: Step, branches: list[Step]) -> Step:
    if all(getattr(b, "dtl_never_stops", False) or hasattr(b, "dtl_assign") or hasattr(b, "dtl_copy")
           for b in branches):
        step.dtl_never_stops = True  # type: ignore[attr-defined]
    return step


def _names(value: Any) -> list[str]:
    """Property names from an evaluated PROPERTY argument (a string or a list of strings)."""
    if type(value) is str:
        return [value]
    if type(value) is list:
        return [v for v in value if type(v) is str]
    return []


def _property_setter(call: Call, *, only_if_missing: bool) -> Callable[[Ctx, Any], None]:
    """``set(ctx, value)`` for the PROPERTY argument of add/add-if/default (namespace-aware)."""
    ns = call.compiler.ns
    names_of = call.compile(0)

    def convert(name: str, value: Any) -> Any:
        return ns.identity_value(value) if name == "_id" else value

    if is_constant(names_of):
        targets = [ns.target_name(n) for n in _names(names_of.dtl_constant)]  # type: ignore[attr-defined]
        if len(targets) == 1 and not (ns.enabled and targets[0] == "_id"):
            (name,) = targets
            if only_if_missing:
                def set_default(c: Ctx, value: Any) -> None:
                    if name not in c.T:
                        c.T[name] = value

                return set_default

            def set_one(c: Ctx, value: Any) -> None:
                c.T[name] = value

            set_one.dtl_name = name  # type: ignore[attr-defined]
            return set_one

        def set_many(c: Ctx, value: Any) -> None:
            for name in targets:
                if not (only_if_missing and name in c.T):
                    c.T[name] = convert(name, value)

        return set_many

    def set_dynamic(c: Ctx, value: Any) -> None:
        for raw in _names(names_of(c)):
            name = ns.target_name(raw)
            if not (only_if_missing and name in c.T):
                c.T[name] = convert(name, value)

    return set_dynamic


def _value_of(call: Call, index: int) -> Evaluator:
    """VALUES; a constant list/dict is copied per use so targets never share it."""
    evaluator = call.compile(index)
    if is_constant(evaluator) and type(evaluator.dtl_constant) in (list, dict):  # type: ignore[attr-defined]
        template = evaluator.dtl_constant  # type: ignore[attr-defined]
        return lambda c: _copy.deepcopy(template)
    return evaluator


@transform("add", args=2)
def _add(call: Call) -> Step:
    setter = _property_setter(call, only_if_missing=False)
    values = _value_of(call, 1)

    def step(c: Ctx) -> None:
        setter(c, values(c))

    name = getattr(setter, "dtl_name", None)
    if name is not None:
        step.dtl_assign = (name, values)  # type: ignore[attr-defined]
    return step


@transform("default", args=2)
def _default(call: Call) -> Step:
    setter = _property_setter(call, only_if_missing=True)
    values = _value_of(call, 1)

    def step(c: Ctx) -> None:
        setter(c, values(c))

    return step


@transform("add-if", args=(2, 3))
def _add_if(call: Call) -> Step:
    setter = _property_setter(call, only_if_missing=False)
    values = _value_of(call, len(call.args) - 1)
    if len(call.args) == 2:
        def step_default(c: Ctx) -> None:
            value = values(c)
            if value is not None:
                setter(c, value)

        return step_default
    condition = call.compile(1)

    def step(c: Ctx) -> None:
        value = values(c)
        if truthy(with_value(c, condition, value)):
            setter(c, value)

    return step


# -- copy / rename / remove ------------------------------------------------------------------------


def _patterns(call: Call, index: int) -> list[str] | Evaluator:
    """A pattern argument: constant strings (resolved now) or an evaluator (resolved per run)."""
    evaluator = call.compile(index)
    if is_constant(evaluator):
        value = evaluator.dtl_constant  # type: ignore[attr-defined]
        if type(value) is str:
            return [value]
        if type(value) is list and all(type(v) is str for v in value):
            return value
        raise call.error("patterns must be a string or a list of strings", index)
    return evaluator


def _matcher(call: Call, patterns: list[str]) -> Callable[[str], bool]:
    matchers = [call.compiler.ns.name_matcher(p) for p in patterns]
    if len(matchers) == 1:
        return matchers[0]
    return lambda name: any(m(name) for m in matchers)


@transform("copy", args=(1, 2))
def _copy_step(call: Call) -> Step:
    include = _patterns(call, 0)
    exclude = _patterns(call, 1) if len(call.args) == 2 else []
    if not isinstance(include, list) or not isinstance(exclude, list):
        return _dynamic_copy(call, include, exclude)
    ns = call.compiler.ns
    if not exclude and not ns.enabled and all("*" not in p and "?" not in p for p in include):
        names = tuple(include)
        if len(names) == 1:
            (name,) = names

            def copy_one(c: Ctx) -> None:
                source = c.S
                if type(source) is dict and name in source:
                    c.T[name] = source[name]

            copy_one.dtl_copy = name  # type: ignore[attr-defined]
            return copy_one

        def copy_names(c: Ctx) -> None:
            source = c.S
            if type(source) is dict:
                for name in names:
                    if name in source:
                        c.T[name] = source[name]

        return copy_names
    if include == ["*"] and not exclude:
        def copy_all(c: Ctx) -> None:
            if type(c.S) is dict:
                c.T.update(c.S)

        return copy_all
    included = _matcher(call, include)
    excluded = _matcher(call, exclude) if exclude else None

    def copy_matching(c: Ctx) -> None:
        source = c.S
        if type(source) is not dict:
            return
        target = c.T
        for key, value in source.items():
            if included(key) and not (excluded is not None and excluded(key)):
                target[key] = value

    return copy_matching


def _dynamic_copy(call: Call, include: Any, exclude: Any) -> Step:
    ns = call.compiler.ns

    def patterns(c: Ctx, spec: Any) -> list[str]:
        return _names(spec(c)) if callable(spec) else spec

    def step(c: Ctx) -> None:
        source = c.S
        if type(source) is not dict:
            return
        inc = [ns.name_matcher(p) for p in patterns(c, include)]
        exc = [ns.name_matcher(p) for p in patterns(c, exclude)]
        for key, value in source.items():
            if any(m(key) for m in inc) and not any(m(key) for m in exc):
                c.T[key] = value

    return step


@transform("rename", args=2)
def _rename(call: Call) -> Step:
    ns = call.compiler.ns
    from_of = call.compile(0)
    to_of = call.compile(1)

    def step(c: Ctx) -> None:
        source = c.S
        if type(source) is not dict:
            return
        for old, new in zip(_names(from_of(c))[:1], _names(to_of(c))[:1], strict=False):
            if not ns.enabled:
                if old in source:
                    c.T[new] = source[old]
                continue
            matches = [k for k in source if ns.name_matcher(old)(k)]
            if not matches:
                continue
            if ns.is_qualified(new) or len(matches) == 1:
                if len(matches) == 1:
                    c.T[ns.renamed(matches[0], new)] = source[matches[0]]
                else:
                    collected: list[Any] = []
                    for key in matches:
                        value = source[key]
                        collected.extend(value if type(value) is list else [value])
                    c.T[ns.renamed(matches[0], new)] = collected
            else:
                for key in matches:
                    c.T[ns.renamed(key, new)] = source[key]

    return step


@transform("remove", args=1)
def _remove(call: Call) -> Step:
    patterns = _patterns(call, 0)
    if not isinstance(patterns, list):
        ns = call.compiler.ns

        def remove_dynamic(c: Ctx) -> None:
            matchers = [ns.name_matcher(p) for p in _names(patterns(c))]  # type: ignore[operator]
            for key in [k for k in c.T if any(m(k) for m in matchers)]:
                del c.T[key]

        return remove_dynamic
    if len(patterns) == 1 and not call.compiler.ns.enabled and "*" not in patterns[0] and "?" not in patterns[0]:
        (name,) = patterns

        def remove_one(c: Ctx) -> None:
            c.T.pop(name, None)

        return remove_one
    matches = _matcher(call, patterns)

    def remove_matching(c: Ctx) -> None:
        target = c.T
        for key in [k for k in target if matches(k)]:
            del target[key]

    return remove_matching


# -- flow ------------------------------------------------------------------------------------------


def _stopper(call: Call, outcome: Any) -> Step:
    if not call.args:
        return lambda c: outcome
    condition = call.compile(0)
    if is_constant(condition):
        return _noop if truthy(condition.dtl_constant) else (lambda c: outcome)  # type: ignore[attr-defined]

    def step(c: Ctx) -> Any:
        result = condition(c)
        if result is None or result is False or (type(result) is list and not result):
            return outcome
        return None

    step.dtl_stop_unless = (condition, outcome)  # type: ignore[attr-defined]  # inlined by ``sequence``
    return step


@transform("filter", args=(0, 1), stops=True)
def _filter(call: Call) -> Step:
    return _stopper(call, FILTERED)


@transform("discard", args=(0, 1), stops=True)
def _discard(call: Call) -> Step:
    return _stopper(call, DISCARDED)


@transform("comment", args=(0, None))
def _comment(call: Call) -> Step:
    return _noop


@transform("if", args=(2, 3), stops=True)
def _if(call: Call) -> Step:
    condition = call.compile(0)
    then = call.steps(1)
    otherwise = call.steps(2) if len(call.args) == 3 else _noop

    def step(c: Ctx) -> Any:
        return then(c) if truthy(condition(c)) else otherwise(c)

    return _mark_if_branches_never_stop(step, [then, otherwise])


@transform("case", args=(2, None), stops=True)
def _case(call: Call) -> Step:
    count = len(call.args)
    pairs = tuple((call.compile(i), call.steps(i + 1)) for i in range(0, count - 1, 2))
    otherwise = call.steps(count - 1) if count % 2 else _noop

    def step(c: Ctx) -> Any:
        for condition, then in pairs:
            if truthy(condition(c)):
                return then(c)
        return otherwise(c)

    return _mark_if_branches_never_stop(step, [p[1] for p in pairs] + [otherwise])


@transform("case-eq", args=(3, None), stops=True)
def _case_eq(call: Call) -> Step:
    subject = call.compile(0)
    count = len(call.args) - 1
    pairs = tuple((call.compile(i), call.steps(i + 1)) for i in range(1, count, 2))
    otherwise = call.steps(count) if count % 2 else _noop

    def step(c: Ctx) -> Any:
        value = subject(c)
        for candidate, then in pairs:
            if values_equal(value, candidate(c)):
                return then(c)
        return otherwise(c)

    return _mark_if_branches_never_stop(step, [p[1] for p in pairs] + [otherwise])


# -- emission --------------------------------------------------------------------------------------


def _entities(c: Ctx, values: Any, function: str) -> list[dict[str, Any]]:
    """The valid entities among VALUES; invalid ones fail (id_required) or are skipped."""
    out = []
    for value in as_list(values):
        if type(value) is dict and type(value.get("_id")) is str:
            out.append(value)
        elif c.env.id_required:
            raise DTLRuntimeError(f'"{function}" needs entities with a string "_id", got {value!r}',
                                  c.env.entity_id)
    return out


@transform("create", args=1)
def _create(call: Call) -> Step:
    values = call.compile(0)

    def step(c: Ctx) -> None:
        c.env.created.extend(dict(e) for e in _entities(c, values(c), "create"))

    return step


@transform("create-child", args=1)
def _create_child(call: Call) -> Step:
    values = call.compile(0)

    def step(c: Ctx) -> None:
        children = _entities(c, values(c), "create-child")
        seen = _Seen()
        merged = [v for v in as_list(c.T.get("$children")) + children if seen.add(v)]
        c.T["$children"] = merged

    return step


@transform("merge", args=1)
def _merge(call: Call) -> Step:
    values = call.compile(0)

    def step(c: Ctx) -> None:
        target = c.T
        for value in as_list(values(c)):
            if type(value) is dict:
                for key, item in value.items():
                    if not key.startswith("_"):
                        target[key] = item

    return step


@transform("merge-union", args=1)
def _merge_union(call: Call) -> Step:
    values = call.compile(0)

    def step(c: Ctx) -> None:
        target = c.T
        for value in as_list(values(c)):
            if type(value) is not dict:
                continue
            for key, item in value.items():
                if key.startswith("_"):
                    continue
                if key not in target:
                    target[key] = item
                    continue
                seen = _Seen()
                merged = [v for v in as_list(target[key]) + as_list(item) if seen.add(v)]
                target[key] = merged[0] if len(merged) == 1 and type(target[key]) is not list else merged

    return step


@transform("make-ni", args=(2, 3))
def _make_ni(call: Call) -> Step:
    ns = call.compiler.ns
    namespace = call.string(0)
    source_name = call.string(1)
    target_name = call.string(2) if len(call.args) == 3 else None

    def convert(value: Any) -> Any:
        if type(value) is str:
            return NI(f"{namespace}:{value}")
        if type(value) is list:
            converted = sorted((NI(f"{namespace}:{v}") for v in value if type(v) is str), key=lambda n: n.value)
            return converted or None
        return None

    if not ns.enabled:
        to = target_name or source_name + "-ni"

        def step(c: Ctx) -> None:
            source = c.S
            if type(source) is dict and source_name in source:
                converted = convert(source[source_name])
                if converted is not None:
                    c.T[to] = converted

        return step
    matches = ns.name_matcher(source_name)

    def step_ns(c: Ctx) -> None:
        source = c.S
        if type(source) is not dict:
            return
        for key in [k for k in source if matches(k)]:
            converted = convert(source[key])
            if converted is None:
                continue
            to = target_name or key.rpartition(":")[2] + "-ni"
            c.T[ns.renamed(key, to)] = converted

    return step_ns


# -- failure and pacing ----------------------------------------------------------------------------


def _raising(error: type[DTLRuntimeError]) -> Callable[[Call], Step]:
    """``["fail!", MESSAGE]``/``["trip!", MESSAGE]``: raise ``error`` with the message and the source ``_id``."""

    def compile_call(call: Call) -> Step:
        message = call.compile(0)

        def step(c: Ctx) -> None:
            raise error(f"{call.name}: {message(c)}", c.env.entity_id)

        return step

    return compile_call


transform("fail!", args=1)(_raising(DTLRuntimeError))
transform("trip!", args=1)(_raising(DTLTripError))


@transform("sleep!", args=1)
def _sleep(call: Call) -> Step:
    period = call.compile(0)

    def step(c: Ctx) -> None:
        seconds = period(c)
        if type(seconds) in (int, float) and seconds > 0:
            (c.env.sleep or time.sleep)(seconds)

    return step
