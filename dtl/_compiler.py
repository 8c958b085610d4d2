"""The compiler: DTL JSON -> Python closures, compiled once per transform."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._context import Ctx, Evaluator, Step
from ._errors import DTLCompileError
from ._namespaces import Namespaces
from ._paths import compile_path, parse_path
from ._registry import EXPRESSIONS, TRANSFORMS, Call, constant, is_constant, load_families
from ._values import decode_literal

__all__ = ["Compiler", "RuleInfo"]


def _noop(c: Ctx) -> None:
    return None


_noop.dtl_never_stops = True  # type: ignore[attr-defined]


@dataclass
class RuleInfo:
    """What the compiler learned about one rule (for the apply/hops checks and the join plan)."""

    name: str
    has_hops: bool = False
    applied_at: list[str] = field(default_factory=list)
    hops_applied: list[tuple[str, Any]] = field(default_factory=list)


class Compiler:
    """Compiles expressions, transform steps and rules of one transform (or a standalone expression)."""

    def __init__(self, *, namespaces: Namespaces | None = None, rules: Mapping[str, Any] | None = None,
                 secrets: Mapping[str, Any] | None = None) -> None:
        load_families()
        self.ns = namespaces or Namespaces()
        self.secrets = secrets  # for "$SECRET(name)" key and password arguments of the crypto functions
        self.rules_raw: Mapping[str, Any] = rules or {}
        self.rule_slots: dict[str, list[Step]] = {}
        self.rule_infos: dict[str, RuleInfo] = {}
        self.current_rule: str | None = None
        self.aliases: tuple[str, ...] = ()
        self.hops_sites: list[Any] = []
        self.datasets_read: set[str] = set()

    # -- expressions -------------------------------------------------------------------------------

    def expression(self, expr: Any, where: str) -> Evaluator:
        """Compile one DTL expression."""
        kind = type(expr)
        if kind is str:
            if expr and (expr[0] == "_" or self.aliases):
                parsed = parse_path(expr, self.aliases)
                if parsed is not None:
                    return compile_path(parsed[0], parsed[1], self.ns)
            return constant(decode_literal(expr))
        if kind is list:
            if not expr:
                return constant([])
            head = expr[0]
            if type(head) is not str:
                raise DTLCompileError(where, "a list expression must start with a function name")
            spec = _resolve(EXPRESSIONS, TRANSFORMS, expr, where, "function", "a transform function, not an expression")
            evaluator: Evaluator = spec.compile(Call(head, expr[1:], where, self))
            return evaluator
        if kind is dict:
            return constant(decode_literal(expr))
        if expr is None or kind in (bool, int, float):
            return constant(expr)
        raise DTLCompileError(where, f"unsupported expression of type {kind.__name__}")

    # -- transform functions -----------------------------------------------------------------------

    def step(self, spec_json: Any, where: str) -> Step:
        """Compile one transform function (``["add", ...]``)."""
        if type(spec_json) is not list or not spec_json or type(spec_json[0]) is not str:
            raise DTLCompileError(where, "a transform function must be a list starting with its name")
        head = spec_json[0]
        spec = _resolve(TRANSFORMS, EXPRESSIONS, spec_json, where, "transform function",
                        "an expression, not a transform function")
        step: Step = spec.compile(Call(head, spec_json[1:], where, self))
        return step

    def steps(self, steps_json: Any, where: str) -> Step:
        """Compile a list of transform functions into one step that stops at FILTERED/DISCARDED."""
        if type(steps_json) is not list:
            raise DTLCompileError(where, "expected a list of transform functions")
        steps = [self.step(s, f"{where}[{i}]") for i, s in enumerate(steps_json)]
        return sequence(steps)

    def branch(self, arg: Any, where: str) -> Step:
        """A THEN/ELSE argument: one transform function or a (possibly empty) list of them."""
        if type(arg) is list and arg and type(arg[0]) is str:
            return self.step(arg, where)
        return self.steps(arg, where)

    # -- rules -------------------------------------------------------------------------------------

    def rule_slot(self, name: str, where: str) -> list[Step]:
        """A one-element list that holds the compiled rule once it is compiled (rules may recurse)."""
        if name not in self.rules_raw:
            raise DTLCompileError(where, f'unknown rule "{name}"')
        slot = self.rule_slots.get(name)
        if slot is None:
            slot = self.rule_slots[name] = [_noop]
        return slot

    def info(self, name: str) -> RuleInfo:
        info = self.rule_infos.get(name)
        if info is None:
            info = self.rule_infos[name] = RuleInfo(name)
        return info

    def compile_rules(self) -> dict[str, Step]:
        """Compile every rule; check the apply/hops restriction."""
        if not isinstance(self.rules_raw, Mapping):
            raise DTLCompileError("rules", "rules must be a dict of named rules")
        if "default" not in self.rules_raw:
            raise DTLCompileError("rules", 'the "default" rule is missing')
        compiled: dict[str, Step] = {}
        for name, body in self.rules_raw.items():
            self.current_rule = name
            self.info(name)
            compiled[name] = self.steps(body, f"rules.{name}")
            self.rule_slot(name, "rules")[0] = compiled[name]
        self.current_rule = None
        for info in self.rule_infos.values():
            if info.has_hops and info.applied_at:
                raise DTLCompileError(info.applied_at[0], f'rule "{info.name}" uses hops and must be run with '
                                      '"apply-hops", not "apply"')
        return compiled


def never_stops(step: Step) -> Step:
    """Mark a step that always returns None (lets ``sequence`` skip the stop check)."""
    step.dtl_never_stops = True  # type: ignore[attr-defined]
    return step


def sequence(steps: list[Step]) -> Step:
    """Run steps in order; the first FILTERED/DISCARDED ends the sequence and is returned.

    The sequence is generated as straight-line code: simple ``add``/``copy`` steps are inlined (their
    ``dtl_assign``/``dtl_copy`` attributes) and steps marked ``dtl_never_stops`` are called without a check.
    """
    if not steps:
        return never_stops(_noop)
    if len(steps) == 1:
        return steps[0]
    env: dict[str, Any] = {}
    lines = ["def run(c):", "    T = c.T", "    S = c.S", "    is_dict = type(S) is dict"]
    for i, step in enumerate(steps):
        assign = getattr(step, "dtl_assign", None)
        copy_name = getattr(step, "dtl_copy", None)
        if assign is not None and is_constant(assign[1]):  # the same value object the evaluator returns
            env[f"K{i}"], env[f"V{i}"] = assign[0], assign[1].dtl_constant
            lines.append(f"    T[K{i}] = V{i}")
        elif assign is not None:
            env[f"K{i}"], env[f"E{i}"] = assign
            lines.append(f"    T[K{i}] = E{i}(c)")
        elif copy_name is not None:
            env[f"K{i}"] = copy_name
            lines.append(f"    if is_dict and K{i} in S: T[K{i}] = S[K{i}]")
        elif getattr(step, "dtl_stop_unless", None) is not None:  # filter/discard with a condition
            env[f"C{i}"], env[f"O{i}"] = step.dtl_stop_unless  # type: ignore[attr-defined]
            lines += [f"    r = C{i}(c)", f"    if r is None or r is False or (type(r) is list and not r): return O{i}"]
        elif getattr(step, "dtl_never_stops", False):
            env[f"S{i}"] = step
            lines.append(f"    S{i}(c)")
        else:
            env[f"S{i}"] = step
            lines += [f"    r = S{i}(c)", "    if r is not None: return r"]
    lines.append("    return None")
    exec("\n".join(lines), env)
    run: Step = env["run"]
    if all(getattr(s, "dtl_never_stops", False) or hasattr(s, "dtl_assign") or hasattr(s, "dtl_copy")
           for s in steps):
        never_stops(run)
    return run


def _resolve(table: dict[str, Any], other: dict[str, Any], call: list[Any], where: str, kind: str,
             misplaced: str) -> Any:
    """The spec of ``call``'s function in ``table``, its argument count checked (compile errors name where)."""
    head = call[0]
    spec = table.get(head)
    if spec is None:
        if head in other:
            raise DTLCompileError(where, f'"{head}" is {misplaced}')
        raise DTLCompileError(where, f'unknown {kind} "{head}"')
    count = len(call) - 1
    if not spec.accepts(count):
        raise DTLCompileError(where, f'"{head}" takes {spec.describe_arity()}, got {count}')
    return spec
