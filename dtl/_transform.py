"""Compiled transforms and expressions: the objects the rest of the node uses."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._compiler import Compiler
from ._context import FILTERED, Ctx, Env, Evaluator, Step
from ._errors import DTLCompileError, DTLError, DTLRuntimeError
from ._hops import JoinPlan, build_join_plan
from ._lookup import Lookup
from ._namespaces import Namespaces, wildcard_matcher
from ._paths import split_elements, walk

__all__ = ["Expression", "Transform", "compile_expression", "compile_transform"]


class Transform:
    """A compiled DTL transform. ``run(batch)`` returns the emitted entities (see ``run``)."""

    def __init__(self, config: Mapping[str, Any], *, pipe: Mapping[str, Any] | None = None,
                 lookup: Lookup | None = None, emit_filtered: bool = False,
                 secrets: Mapping[str, Any] | None = None, clock: Callable[[], int] | None = None) -> None:
        if not isinstance(config, Mapping):
            raise DTLCompileError("", "a DTL transform must be a dict")
        kind = config.get("type", "dtl")
        if kind != "dtl":
            raise DTLCompileError("type", f'not a DTL transform: "{kind}"')
        self.config = config
        self.namespaces = Namespaces.from_pipe(pipe)
        self.id_required = config.get("id_required", True)
        if type(self.id_required) is not bool:
            raise DTLCompileError("id_required", "must be true or false")
        self.emit_filtered = emit_filtered
        self.lookup = lookup
        self.clock = clock  # the time of ``now``, epoch nanoseconds (None: the wall clock)
        self._trigger = _trigger(config.get("trigger_on"))
        compiler = Compiler(namespaces=self.namespaces, rules=config.get("rules"), secrets=secrets)
        self.rules: dict[str, Step] = compiler.compile_rules()
        self._default = self.rules["default"]
        self.join_plan: JoinPlan = build_join_plan(compiler)
        self.datasets_read: frozenset[str] = frozenset(compiler.datasets_read)
        """Every dataset the transform reads (hops, apply-hops and lookup-entity; tracked or not)."""

    def run(self, batch: Iterable[dict[str, Any]], *, lookup: Lookup | None = None,
            bound: dict[str, Any] | None = None, sleep: Callable[[float], None] | None = None) -> list[Any]:
        """Transform source entities; return every emitted entity, in order.

        For each source entity: the target (unless ``filter``/``discard`` stopped it; with
        ``emit_filtered`` a filtered target is emitted with ``_filtered: true``), then the entities
        ``create`` emitted. Entities that ``trigger_on`` does not select pass through unchanged.
        Raises ``DTLRuntimeError`` naming the source entity's ``_id``.
        """
        env = Env(bound=bound, lookup=lookup or self.lookup, id_required=self.id_required, sleep=sleep,
                  clock=self.clock)
        out: list[Any] = []
        append = out.append
        default = self._default
        trigger = self._trigger
        c = Ctx(None, None, env)
        for entity in batch:
            if trigger is not None and not trigger(entity):
                append(entity)
                continue
            env.entity_id = entity.get("_id") if type(entity) is dict else None
            created = env.created = []
            c.S = entity
            c.T = target = {}
            try:
                result = default(c)
            except DTLError:
                raise
            except Exception as error:  # a bug or an unexpected value: report it with the entity
                raise DTLRuntimeError(f"{type(error).__name__}: {error}", env.entity_id) from error
            if result is None:
                if "_id" not in target and type(env.entity_id) is str:  # the guide's default: the source's _id
                    target = {"_id": env.entity_id, **target}
                if type(target.get("_id")) is str:
                    append(target)
                elif self.id_required:
                    raise DTLRuntimeError('the target entity has no string "_id"', env.entity_id)
            elif result is FILTERED and self.emit_filtered:
                filtered = dict(target)
                if type(filtered.get("_id")) is not str:
                    filtered["_id"] = env.entity_id
                if type(filtered["_id"]) is str:
                    filtered["_filtered"] = True
                    out.append(filtered)
            if created:
                out.extend(created)
        return out

    def apply_rule(self, name: str, source: Any, *, target: dict[str, Any] | None = None,
                   lookup: Lookup | None = None) -> dict[str, Any]:
        """Run one rule once on ``source`` (target default ``{}``) and return the target; no ``_id`` checks."""
        env = Env(lookup=lookup or self.lookup, id_required=self.id_required, clock=self.clock)
        env.entity_id = source.get("_id") if type(source) is dict else None
        c = Ctx(source, {} if target is None else target, env)
        self.rules[name](c)
        return c.T  # type: ignore[no-any-return]


def _trigger(spec: Any) -> Callable[[Any], bool] | None:
    """The ``trigger_on`` predicate: the key's value must be a string matching the wildcard pattern."""
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise DTLCompileError("trigger_on", "must be a dict with key and value")
    key = spec.get("key", "_trigger")
    pattern = spec.get("value")
    if type(key) is not str or type(pattern) is not str:
        raise DTLCompileError("trigger_on", "key and value must be strings")
    steps = split_elements(key)
    matches = wildcard_matcher(pattern)

    def triggered(entity: Any) -> bool:
        value = walk(entity, steps)
        return type(value) is str and matches(value)

    return triggered


def compile_transform(config: Mapping[str, Any], *, pipe: Mapping[str, Any] | None = None,
                      lookup: Lookup | None = None, emit_filtered: bool = False,
                      secrets: Mapping[str, Any] | None = None, clock: Callable[[], int] | None = None) -> Transform:
    """Compile a ``{"type": "dtl", "rules": ...}`` transform config (raises ``DTLCompileError``).

    ``secrets`` resolves ``"$SECRET(name)"`` in the key and password arguments of the crypto functions;
    ``clock`` (epoch nanoseconds) is the time ``now`` gives (default: the wall clock)."""
    return Transform(config, pipe=pipe, lookup=lookup, emit_filtered=emit_filtered, secrets=secrets, clock=clock)


class Expression:
    """A compiled standalone expression; ``evaluate`` runs it with ``_S``, ``_T`` and ``_B``."""

    def __init__(self, expr: Any, *, pipe: Mapping[str, Any] | None = None, rules: Mapping[str, Any] | None = None,
                 lookup: Lookup | None = None, where: str = "expr", clock: Callable[[], int] | None = None) -> None:
        self.expr = expr
        self.lookup = lookup
        self.clock = clock
        compiler = Compiler(namespaces=Namespaces.from_pipe(pipe), rules=rules)
        self._evaluate: Evaluator = compiler.expression(expr, where)
        if rules:
            for name in rules:
                compiler.rule_slot(name, "rules")[0] = compiler.steps(rules[name], f"rules.{name}")

    @property
    def is_constant(self) -> bool:
        """Whether the expression is a constant (folded at compile time): its value is :attr:`constant`."""
        return hasattr(self._evaluate, "dtl_constant")

    @property
    def constant(self) -> Any:
        """The value of a constant expression; ValueError for one that depends on its input."""
        if not self.is_constant:
            raise ValueError(f"the DTL expression {self.expr!r} is not a constant")
        return self._evaluate.dtl_constant  # type: ignore[attr-defined]

    def evaluate(self, source: Any = None, *, target: dict[str, Any] | None = None,
                 bound: dict[str, Any] | None = None, lookup: Lookup | None = None) -> Any:
        """Evaluate with ``_S = source`` (default ``{}``), ``_T = target`` (default ``{}``)."""
        env = Env(bound=bound, lookup=lookup or self.lookup, clock=self.clock)
        c = Ctx({} if source is None else source, {} if target is None else target, env)
        return self._evaluate(c)

    def __call__(self, source: Any = None) -> Any:
        return self.evaluate(source)


def compile_expression(expr: Any, *, pipe: Mapping[str, Any] | None = None,
                       lookup: Lookup | None = None, clock: Callable[[], int] | None = None) -> Expression:
    """Compile one DTL expression (raises ``DTLCompileError``); ``clock`` as for :func:`compile_transform`."""
    return Expression(expr, pipe=pipe, lookup=lookup, clock=clock)
