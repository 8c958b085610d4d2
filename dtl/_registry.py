"""The function registry: every DTL expression and transform function is registered here by name.

How to add a function family
============================
Create ``dtl/_fn_<family>.py`` (it is imported automatically: any module named ``_fn_*`` is loaded by
``load_families``). Import the decorators and helpers from here and from ``dtl._values``, and register
each function with ONE of these decorators. ``args``/``params`` are ``n`` or ``(min, max)``, max ``None``
for "no limit"; the compiler checks the count and reports wrong arities for you.

``@elementwise(name, params=0)`` -- element-wise value functions (``upper``, ``ni``, ``replace``...).
    The last argument is VALUES: a list gives a list (ignored elements dropped), a single value gives a
    single value (an ignored value gives null), null gives null. Return ``IGNORE`` for an element of the
    wrong type. With ``params=0`` the decorated function IS the element function ``f(value)``. With
    ``params>0`` (the leading arguments, evaluated once per call, e.g. ``["replace", OLD, NEW, VALUES]``)
    it is a factory ``f(*params) -> element_function`` (return None to make the whole result null); with
    constant params it runs once at compile time. Optional leading params: ``params=(0, 1)`` plus defaults
    in the factory's signature.

        @elementwise("upper")
        def upper(value):
            return value.upper() if type(value) is str else IGNORE

``@cast(name)`` -- like ``elementwise`` with no params, plus the optional leading DEFAULT function
    expression of the casts (``["integer", DEFAULT, VALUES]``): evaluated with ``_`` bound to an
    unconvertible (non-null) value, its result replaces it.

``@function(name, args=..., pure=True)`` -- eager functions of evaluated arguments: ``f(*values)``
    returns the result (``["list", ...]``, ``["eq", A, B]``, ``["concat", ...]``). Calls whose arguments
    are all constants are folded at compile time unless ``pure=False`` (``now``, ``uuid``).

``@expression(name, args=...)`` -- the low level: ``f(call: Call) -> Evaluator``. Use it for lazy or
    unevaluated arguments (``if``, ``and``, ``literal``), function expressions evaluated with ``_`` bound
    (``filter``, ``map``: compile with ``call.compile(i)`` and evaluate with ``with_value``/``map_values``),
    and constant-only arguments (``call.constant(i)``, ``call.string(i)``). Raise compile errors with
    ``call.error(message, i)``. The evaluator is ``f(ctx) -> value``; avoid per-call overhead (no
    exceptions for control flow, resolve everything you can at compile time).

``@transform(name, args=..., stops=False)`` -- transform functions: ``f(call) -> Step`` where the step
    mutates ``ctx.T`` and returns None. Steps that may return FILTERED/DISCARDED to stop the rule must be
    registered with ``stops=True``. ``call.steps(i)`` compiles a THEN argument (one transform or a list).

Semantics helpers live in ``dtl._values``: ``as_list``, ``truthy``, ``is_null``, ``first``, ``equal``,
``order_key``/``compare`` (mixed-type ordering), ``is_number``, ``to_decimal``, ``json_text``. Raise
``DTLRuntimeError`` for run-time failures. Every function needs tests in ``tests/dtl/test_fn_<family>.py``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._context import Ctx, Evaluator, Step
from ._errors import DTLCompileError
from ._values import IGNORE

if TYPE_CHECKING:
    from ._compiler import Compiler

__all__ = [
    "EXPRESSIONS",
    "IGNORE",
    "TRANSFORMS",
    "Call",
    "FunctionSpec",
    "cast",
    "constant",
    "elementwise",
    "expression",
    "function",
    "function_compiler",
    "is_constant",
    "load_families",
    "map_values",
    "transform",
    "with_value",
]

Arity = int | tuple[int, int | None]


@dataclass(frozen=True)
class FunctionSpec:
    """A registered function: its name, argument count range and compile function."""

    name: str
    min_args: int
    max_args: int | None
    compile: Callable[[Call], Any]

    def accepts(self, count: int) -> bool:
        return count >= self.min_args and (self.max_args is None or count <= self.max_args)

    def describe_arity(self) -> str:
        if self.max_args == self.min_args:
            return f"{self.min_args} argument{'s' if self.min_args != 1 else ''}"
        if self.max_args is None:
            return f"at least {self.min_args} argument{'s' if self.min_args != 1 else ''}"
        return f"{self.min_args} to {self.max_args} arguments"


EXPRESSIONS: dict[str, FunctionSpec] = {}
TRANSFORMS: dict[str, FunctionSpec] = {}


def _arity(args: Arity) -> tuple[int, int | None]:
    return (args, args) if isinstance(args, int) else args


def _register(table: dict[str, FunctionSpec], name: str, args: Arity, compile_fn: Callable[[Call], Any]) -> None:
    if name in table:
        first = getattr(table[name].compile, "__module__", "?")
        raise RuntimeError(f"DTL function {name!r} registered twice (first by {first}, again by "
                           f"{getattr(compile_fn, '__module__', '?')}); remove one of them")
    low, high = _arity(args)
    table[name] = FunctionSpec(name, low, high, compile_fn)


class Call:
    """A function call being compiled: its raw arguments, its location and the compiler."""

    __slots__ = ("args", "compiler", "name", "where")

    def __init__(self, name: str, args: list[Any], where: str, compiler: Compiler) -> None:
        self.name = name
        self.args = args
        self.where = where
        self.compiler = compiler

    def arg_where(self, index: int) -> str:
        """The location of argument ``index`` (0-based; the function name is element 0)."""
        return f"{self.where}[{index + 1}]"

    def error(self, message: str, index: int | None = None) -> DTLCompileError:
        """A compile error located at this call (or at one of its arguments)."""
        return DTLCompileError(self.where if index is None else self.arg_where(index),
                               f'"{self.name}": {message}')

    def compile(self, index: int) -> Evaluator:
        """Compile argument ``index`` as an expression."""
        return self.compiler.expression(self.args[index], self.arg_where(index))

    def compile_all(self, start: int = 0) -> list[Evaluator]:
        return [self.compile(i) for i in range(start, len(self.args))]

    def constant(self, index: int) -> tuple[bool, Any]:
        """``(True, value)`` when argument ``index`` is a compile-time constant, else ``(False, None)``."""
        evaluator = self.compile(index)
        if is_constant(evaluator):
            return True, evaluator.dtl_constant  # type: ignore[attr-defined]
        return False, None

    def string(self, index: int) -> str:
        """Argument ``index``, which must be a constant string."""
        ok, value = self.constant(index)
        if not ok or type(value) is not str:
            raise self.error("argument must be a constant string", index)
        return value

    def steps(self, index: int) -> Step:
        """Compile a THEN/ELSE argument: one transform function or a list of them."""
        return self.compiler.branch(self.args[index], self.arg_where(index))


def constant(value: Any) -> Evaluator:
    """An evaluator that always returns ``value`` (recognised by ``is_constant``)."""

    def evaluate(c: Ctx) -> Any:
        return value

    evaluate.dtl_constant = value  # type: ignore[attr-defined]
    return evaluate


def is_constant(evaluator: Evaluator) -> bool:
    return hasattr(evaluator, "dtl_constant")


def with_value(c: Ctx, evaluator: Evaluator, value: Any) -> Any:
    """Evaluate a function expression with ``_`` bound to ``value``."""
    saved = c.u
    c.u = value
    result = evaluator(c)
    c.u = saved
    return result


def map_values(c: Ctx, evaluator: Evaluator, values: Sequence[Any]) -> list[Any]:
    """Evaluate a function expression once per value with ``_`` bound to it."""
    saved = c.u
    out = []
    append = out.append
    for value in values:
        c.u = value
        append(evaluator(c))
    c.u = saved
    return out


# ---------------------------------------------------------------------------------------------------
# decorators
# ---------------------------------------------------------------------------------------------------


def expression(name: str, *, args: Arity) -> Callable[[Callable[[Call], Evaluator]], Callable[[Call], Evaluator]]:
    """Register a low-level expression compile function ``f(call) -> Evaluator``."""

    def decorate(compile_fn: Callable[[Call], Evaluator]) -> Callable[[Call], Evaluator]:
        _register(EXPRESSIONS, name, args, compile_fn)
        return compile_fn

    return decorate


def transform(name: str, *, args: Arity, stops: bool = False) -> Callable[[Callable[[Call], Step]],
                                                                         Callable[[Call], Step]]:
    """Register a transform function compile function ``f(call) -> Step``.

    With ``stops=False`` (the default) the step must always return None; it is marked so that rules call
    it without checking for FILTERED/DISCARDED. Steps that may stop the rule need ``stops=True``.
    """

    def decorate(compile_fn: Callable[[Call], Step]) -> Callable[[Call], Step]:
        if stops:
            _register(TRANSFORMS, name, args, compile_fn)
            return compile_fn

        def compile_never_stopping(call: Call) -> Step:
            step = compile_fn(call)
            if getattr(step, "dtl_never_stops", False) or hasattr(step, "dtl_assign"):
                return step
            try:
                step.dtl_never_stops = True  # type: ignore[attr-defined]
            except AttributeError:  # a builtin or bound method: wrap it
                inner = step

                def step(c: Ctx) -> None:
                    inner(c)

                step.dtl_never_stops = True  # type: ignore[attr-defined]
            return step

        compile_never_stopping.__module__ = compile_fn.__module__
        _register(TRANSFORMS, name, args, compile_never_stopping)
        return compile_fn

    return decorate


def _fold(impl: Callable[..., Any], values: list[Any]) -> tuple[bool, Any]:
    try:
        return True, impl(*values)
    except Exception:  # leave the failure to run time
        return False, None


def function(name: str, *, args: Arity, pure: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register an eager function ``f(*values) -> value`` of its evaluated arguments."""

    def decorate(impl: Callable[..., Any]) -> Callable[..., Any]:
        eager = function_compiler(impl, pure=pure)

        def compile_call(call: Call) -> Evaluator:
            return eager(call, call.compile_all())

        _register(EXPRESSIONS, name, args, compile_call)
        return impl

    return decorate


def function_compiler(impl: Callable[..., Any], *, pure: bool = True) -> Callable[[Call, list[Evaluator]], Evaluator]:
    """What ``@function`` compiles a call to, from its compiled arguments (folded when all constant)."""

    def compile_eager(call: Call, evaluators: list[Evaluator]) -> Evaluator:
        if pure and all(is_constant(e) for e in evaluators):
            ok, value = _fold(impl, [e.dtl_constant for e in evaluators])  # type: ignore[attr-defined]
            if ok:
                return constant(value)
        return _eager(impl, evaluators)

    return compile_eager


def _eager(impl: Callable[..., Any], evaluators: list[Evaluator]) -> Evaluator:
    count = len(evaluators)
    if count == 0:
        return lambda c: impl()
    if count == 1:
        (a,) = evaluators
        return lambda c: impl(a(c))
    if count == 2:
        a, b = evaluators
        return lambda c: impl(a(c), b(c))
    if count == 3:
        a, b, d = evaluators
        return lambda c: impl(a(c), b(c), d(c))
    return lambda c: impl(*[e(c) for e in evaluators])


def apply_elementwise(element: Callable[[Any], Any], value: Any) -> Any:
    """Apply an element function to a value: list in, list out (ignored dropped); null gives null."""
    if type(value) is list:
        return [r for r in map(element, value) if r is not IGNORE]
    if value is None:
        return None
    result = element(value)
    return None if result is IGNORE else result


def elementwise(name: str, *, params: Arity = 0) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register an element-wise function (see the module docstring)."""
    low, high = _arity(params)

    def decorate(impl: Callable[..., Any]) -> Callable[..., Any]:
        def compile_call(call: Call) -> Evaluator:
            evaluators = call.compile_all()
            values = evaluators[-1]
            param_evaluators = evaluators[:-1]
            if high == 0:
                return _elementwise_evaluator(impl, values)
            if all(is_constant(p) for p in param_evaluators):
                element = impl(*[p.dtl_constant for p in param_evaluators])  # type: ignore[attr-defined]
                if element is None:
                    return constant(None)
                return _elementwise_evaluator(element, values)

            def evaluate(c: Ctx) -> Any:
                element = impl(*[p(c) for p in param_evaluators])
                if element is None:
                    return None
                return apply_elementwise(element, values(c))

            return evaluate

        _register(EXPRESSIONS, name, (low + 1, None if high is None else high + 1), compile_call)
        return impl

    return decorate


def _elementwise_evaluator(element: Callable[[Any], Any], values: Evaluator) -> Evaluator:
    if is_constant(values):
        return constant(apply_elementwise(element, values.dtl_constant))  # type: ignore[attr-defined]

    def evaluate(c: Ctx) -> Any:
        value = values(c)
        if type(value) is list:
            return [r for r in map(element, value) if r is not IGNORE]
        if value is None:
            return None
        result = element(value)
        return None if result is IGNORE else result

    return evaluate


def cast(name: str) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
    """Register a cast: element-wise conversion with an optional leading DEFAULT function expression."""

    def decorate(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def compile_call(call: Call) -> Evaluator:
            if len(call.args) == 1:
                return _elementwise_evaluator(convert, call.compile(0))
            default = call.compile(0)
            values = call.compile(1)

            def replace(c: Ctx, value: Any) -> Any:
                result = convert(value)
                if result is IGNORE:
                    return IGNORE if value is None else with_value(c, default, value)
                return result

            def evaluate(c: Ctx) -> Any:
                value = values(c)
                if type(value) is list:
                    return [r for r in (replace(c, v) for v in value) if r is not IGNORE]
                if value is None:
                    return None
                return replace(c, value)

            return evaluate

        _register(EXPRESSIONS, name, (1, 2), compile_call)
        return convert

    return decorate


_loaded = False


def load_families() -> None:
    """Import every ``dtl._fn_*`` module, which registers its functions (idempotent)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    package = importlib.import_module("dtl")
    for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if module.name.startswith("_fn_"):
            importlib.import_module(f"dtl.{module.name}")
