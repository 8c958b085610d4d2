"""Hops (dtl-spec section 7): ``hops``, ``apply-hops``, ``lookup-entity`` and the join plan (section 8)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._context import Ctx, Evaluator
from ._errors import DTLCompileError, DTLRuntimeError
from ._lookup import IndexExpression, Lookup, flat_values, index_key
from ._paths import VARIABLES, parse_path
from ._registry import Call, expression
from ._values import truthy

if TYPE_CHECKING:
    from ._compiler import Compiler

__all__ = ["JoinEdge", "JoinPlan", "build_join_plan"]

CONTEXT = "_S"
"""The node name of the hops' input entity (``_S``) in the join graph."""


# ---------------------------------------------------------------------------------------------------
# compiled hops specs
# ---------------------------------------------------------------------------------------------------


@dataclass
class Hop:
    """One join step: bind ``alias`` to the entities of ``dataset`` whose ``index`` meets ``source``."""

    alias: str
    dataset: str
    source_node: str
    source: Evaluator
    source_json: Any
    index: IndexExpression
    subset: tuple[IndexExpression, list[Any]] | None


@dataclass
class Spec:
    """One compiled HOPS_SPEC."""

    aliases: dict[str, str]
    hops: list[Hop]
    checks: list[tuple[Evaluator, Evaluator]]
    filters: list[Evaluator]
    returns: Evaluator | list[str]
    output_dataset: str | None
    recurse: bool
    max_depth: int | None
    exclude_root: bool
    tracked: bool


@dataclass
class HopsSite:
    """A ``hops``/``apply-hops`` call: where it is, in which rule, and its specs."""

    where: str
    rule: str | None
    specs: list[Spec]
    applies: str | None = None
    contexts: set[str | None] = field(default_factory=set)


def _refs(expr: Any, aliases: Iterable[str]) -> set[str]:
    """The variables and aliases an expression references (paths only; ``literal`` is skipped)."""
    found: set[str] = set()
    aliases = tuple(aliases)

    def visit(node: Any) -> None:
        if type(node) is str:
            parsed = parse_path(node, aliases)
            if parsed is not None:
                found.add(parsed[0])
        elif type(node) is list and node:
            if node[0] in ("literal", "comment"):
                return
            for item in node[1:] if type(node[0]) is str else node:
                visit(item)

    visit(expr)
    return found


def _rebase(expr: Any, alias: str) -> Any:
    """Rewrite an expression on ``alias`` into an index expression on ``_S``."""
    if type(expr) is str:
        parsed = parse_path(expr, (alias,))
        if parsed is not None and parsed[0] == alias:
            return "_S." + expr[len(alias) + 1:]
        return expr
    if type(expr) is list and expr and expr[0] != "literal":
        return [_rebase(item, alias) for item in expr]
    return expr


def _side(expr: Any, aliases: dict[str, str]) -> str | None:
    """A join side's node: an alias (only that alias referenced), CONTEXT (no alias), or None."""
    refs = _refs(expr, aliases)
    named = refs & aliases.keys()
    if len(named) == 1 and refs == named:
        return next(iter(named))
    if not named and refs:
        return CONTEXT
    return None


def _parse_datasets(call: Call, raw: Any, where: str) -> dict[str, str]:
    items = raw if type(raw) is list else [raw]
    aliases: dict[str, str] = {}
    for item in items:
        parts = item.split() if type(item) is str else []
        if len(parts) != 2:
            raise DTLCompileError(where, f'"{call.name}": datasets entries must be "<dataset-id> <alias>"')
        dataset, alias = parts
        if alias in aliases or alias in VARIABLES:
            raise DTLCompileError(where, f'"{call.name}": duplicate or reserved alias "{alias}"')
        aliases[alias] = dataset
    if not aliases:
        raise DTLCompileError(where, f'"{call.name}": datasets must name at least one dataset')
    return aliases


def _compile_spec(call: Call, raw: Any, where: str, last: bool) -> Spec:
    compiler = call.compiler
    if type(raw) is not dict:
        raise DTLCompileError(where, f'"{call.name}": a hops spec must be a dict')
    aliases = _parse_datasets(call, raw.get("datasets"), f"{where}.datasets")
    where_raw = raw.get("where", [])
    clauses = [where_raw] if type(where_raw) is list and where_raw and type(where_raw[0]) is str else where_raw
    if type(clauses) is not list:
        raise DTLCompileError(f"{where}.where", f'"{call.name}": where must be an expression or a list')
    saved = compiler.aliases
    compiler.aliases = tuple(dict.fromkeys(saved + tuple(aliases)))
    try:
        edges: list[tuple[str, Any, str, Any, int]] = []
        filters: list[Evaluator] = []
        linked: set[frozenset[str]] = set()
        for i, clause in enumerate(clauses):
            clause_where = f"{where}.where[{i}]"
            if type(clause) is list and len(clause) == 3 and clause[0] == "eq":
                left, right = _side(clause[1], aliases), _side(clause[2], aliases)
                pair = frozenset((left, right))
                if left is not None and right is not None and left != right and pair not in linked:
                    linked.add(pair)
                    edges.append((left, clause[1], right, clause[2], i))
                    continue
            filters.append(compiler.expression(clause, clause_where))
        hops, checks = _plan(call, aliases, edges, raw.get("subsets") or {}, where)
        returns, output_dataset = _returns(call, raw, aliases, where, last)
    finally:
        compiler.aliases = saved
    max_depth = raw.get("max_depth", 10)
    if max_depth is not None and type(max_depth) is not int:
        raise DTLCompileError(f"{where}.max_depth", f'"{call.name}": max_depth must be an integer or null')
    recurse = bool(raw.get("recurse", False))
    if recurse and "return" in raw:
        raise DTLCompileError(f"{where}.return", f'"{call.name}": return cannot be used with recurse')
    return Spec(aliases, hops, checks, filters, returns, output_dataset, recurse, max_depth,
                bool(raw.get("exclude_root", False)), raw.get("track-dependencies", True) is not False)


def _plan(call: Call, aliases: dict[str, str], edges: list[tuple[str, Any, str, Any, int]],
          subsets: Any, where: str) -> tuple[list[Hop], list[tuple[Evaluator, Evaluator]]]:
    """Order the joins as a walk from ``_S`` through every alias; the other joins become overlap checks."""
    compiler = call.compiler
    pipe = _pipe(compiler)
    subset_specs = _subsets(call, subsets, aliases, where, pipe)
    bound = {CONTEXT}
    hops: list[Hop] = []
    pending = list(edges)
    progress = True
    while progress:
        progress = False
        for edge in pending:
            left, left_json, right, right_json, index = edge
            if (left in bound) == (right in bound):
                continue
            if right in bound:
                left, left_json, right, right_json = right, right_json, left, left_json
            clause_where = f"{where}.where[{index}]"
            hops.append(Hop(
                alias=right,
                dataset=aliases[right],
                source_node=left,
                source=compiler.expression(left_json, clause_where),
                source_json=left_json if left == CONTEXT else _rebase(left_json, left),
                index=IndexExpression(_rebase(right_json, right), pipe=pipe),
                subset=subset_specs.get(right),
            ))
            bound.add(right)
            pending.remove(edge)
            progress = True
            break
    missing = [a for a in aliases if a not in bound]
    if missing:
        raise DTLCompileError(f"{where}.where", f'"{call.name}": alias "{missing[0]}" is not joined to the '
                              'source by an "eq" join')
    checks = [(compiler.expression(e[1], f"{where}.where[{e[4]}]"),
               compiler.expression(e[3], f"{where}.where[{e[4]}]")) for e in pending]
    return hops, checks


def _pipe(compiler: Compiler) -> dict[str, Any]:
    ns = compiler.ns
    return {"id": ns.pipe_id, "namespaced_identifiers": ns.enabled,
            "namespaces": {"identity": ns.identity, "property": ns.property}}


def _subsets(call: Call, subsets: Any, aliases: dict[str, str], where: str,
             pipe: dict[str, Any]) -> dict[str, tuple[IndexExpression, list[Any]]]:
    if type(subsets) is not dict:
        raise DTLCompileError(f"{where}.subsets", f'"{call.name}": subsets must be a dict')
    out = {}
    for alias, spec in subsets.items():
        if alias not in aliases or type(spec) is not list or len(spec) != 3 or spec[0] != "eq":
            raise DTLCompileError(f"{where}.subsets", f'"{call.name}": subsets maps an alias to '
                                  '["eq", INDEX_EXPRESSION, VALUE]')
        value = call.compiler.expression(spec[2], f"{where}.subsets.{alias}")
        if not hasattr(value, "dtl_constant"):
            raise DTLCompileError(f"{where}.subsets", f'"{call.name}": a subset value must be a constant')
        out[alias] = (IndexExpression(spec[1], pipe=pipe), flat_values(value.dtl_constant))  # type: ignore[attr-defined]
    return out


def _returns(call: Call, raw: dict[str, Any], aliases: dict[str, str], where: str,
             last: bool) -> tuple[Evaluator | list[str], str | None]:
    names = list(aliases)
    if "return" not in raw:
        return [names[-1]], aliases[names[-1]]
    if not last:
        raise DTLCompileError(f"{where}.return", f'"{call.name}": only the last hops spec may have return')
    spec = raw["return"]
    if type(spec) is str:
        parts = [p.strip() for p in spec.split(",")]
        if all(p in aliases for p in parts):
            return parts, aliases[parts[0]] if len(parts) == 1 else None
    if type(spec) is dict:
        return _template(call, spec, f"{where}.return"), None
    return call.compiler.expression(spec, f"{where}.return"), None


def _template(call: Call, spec: dict[str, Any], where: str) -> Evaluator:
    """A dict ``return`` template: each value is an expression over the aliases, interpolated per row."""
    fields = tuple((key, call.compiler.expression(value, f"{where}.{key}")) for key, value in spec.items())

    def evaluate(c: Ctx) -> dict[str, Any]:
        return {key: value(c) for key, value in fields}

    return evaluate


# ---------------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------------


def _lookup(c: Ctx) -> Lookup:
    lookup = c.env.lookup
    if lookup is None:
        raise DTLRuntimeError("hops need a dataset lookup, but none was given", c.env.entity_id)
    return lookup  # type: ignore[no-any-return]


def _rows(c: Ctx, spec: Spec, entity: Any) -> list[dict[str, Any]]:
    """The joined rows (alias -> entity) for one input entity."""
    lookup = _lookup(c)
    saved_s, saved_h = c.S, c.h
    outer = dict(saved_h) if saved_h else {}
    c.S = entity
    try:
        rows = [outer]
        for hop in spec.hops:
            grown = []
            for row in rows:
                c.h = row
                values = flat_values(hop.source(c))
                if not values:
                    continue
                for candidate in lookup.lookup(hop.dataset, hop.index, values):
                    if hop.subset is not None and not _overlap(hop.subset[0].values(candidate), hop.subset[1]):
                        continue
                    grown.append({**row, hop.alias: candidate})
            rows = grown
            if not rows:
                return rows
        if spec.checks or spec.filters:
            kept = []
            for row in rows:
                c.h = row
                if all(_overlap(flat_values(a(c)), flat_values(b(c))) for a, b in spec.checks) and \
                        all(truthy(f(c)) for f in spec.filters):
                    kept.append(row)
            rows = kept
        return rows
    finally:
        c.S, c.h = saved_s, saved_h


def _overlap(left: list[Any], right: list[Any]) -> bool:
    keys = {index_key(v) for v in left}
    return any(index_key(v) in keys for v in right)


def _entity_key(entity: Any) -> Any:
    return entity.get("_id") if type(entity) is dict else id(entity)


def _project(c: Ctx, spec: Spec, rows: list[dict[str, Any]], out: list[Any], seen: set[Any]) -> None:
    returns = spec.returns
    if isinstance(returns, list):
        for row in rows:
            for alias in returns:
                entity = row[alias]
                key = (alias, _entity_key(entity))
                if key not in seen:
                    seen.add(key)
                    out.append(entity)
        return
    saved = c.h
    for row in rows:
        c.h = row
        value = returns(c)
        if type(value) is list:
            out.extend(value)
        elif value is not None:
            out.append(value)
    c.h = saved


def _single_hop(spec: Spec) -> Hop | None:
    """The hop of a spec that is one plain join returning its alias (rows need not be built)."""
    if spec.recurse or len(spec.hops) != 1 or spec.checks or spec.filters:
        return None
    hop = spec.hops[0]
    if hop.subset is not None or spec.returns != [hop.alias]:
        return None
    return hop


def _run_single_hop(c: Ctx, hop: Hop, inputs: list[Any]) -> list[Any]:
    """``_run_spec`` for a ``_single_hop`` spec: the same lookups, order and de-duplication."""
    if len(inputs) == 1:
        return _run_one_hop(c, hop, inputs[0])
    out: list[Any] = []
    alias = hop.alias
    saved_s, saved_h = c.S, c.h
    seen: set[Any] = set()
    try:
        for entity in inputs:
            lookup = _lookup(c)
            c.S = entity
            c.h = dict(saved_h) if saved_h else {}
            values = flat_values(hop.source(c))
            if not values:
                continue
            for candidate in lookup.lookup(hop.dataset, hop.index, values):
                key = (alias, _entity_key(candidate))
                if key not in seen:
                    seen.add(key)
                    out.append(candidate)
    finally:
        c.S, c.h = saved_s, saved_h
    return out


def _run_one_hop(c: Ctx, hop: Hop, entity: Any) -> list[Any]:
    """``_run_single_hop`` for one input: one lookup, de-duplicated only when it has a repeated key."""
    out: list[Any] = []
    lookup = _lookup(c)
    saved_s, saved_h = c.S, c.h
    c.S = entity
    c.h = dict(saved_h) if saved_h else {}
    try:
        values = flat_values(hop.source(c))
    finally:
        c.S, c.h = saved_s, saved_h
    if not values:
        return out
    found = lookup.lookup(hop.dataset, hop.index, values)
    if len(found) < 2 or len({e.get("_id") if type(e) is dict else id(e) for e in found}) == len(found):
        out.extend(found)
        return out
    return _unique(hop.alias, found)


def _unique(alias: str, found: list[Any]) -> list[Any]:
    """The first of each ``(alias, _entity_key)`` among ``found``, in order."""
    out: list[Any] = []
    seen: set[Any] = set()
    for candidate in found:
        key = (alias, _entity_key(candidate))
        if key not in seen:
            seen.add(key)
            out.append(candidate)
    return out


def _one_hop_evaluator(hop: Hop) -> Evaluator:
    """``_run_one_hop`` on ``_S`` as one function (the hops expression of a plain single join)."""
    source = hop.source
    dataset = hop.dataset
    index = hop.index

    def evaluate_one_hop(c: Ctx) -> list[Any]:
        lookup = c.env.lookup
        if lookup is None:
            _lookup(c)  # raises
        saved_h = c.h
        c.h = dict(saved_h) if saved_h else {}
        try:
            value = source(c)  # _S is already the input entity
        finally:
            c.h = saved_h
        if type(value) is list:
            values = [v for v in value if v is not None]
            if not values:
                return []
        elif value is None:
            return []
        else:
            values = [value]
        found = lookup.lookup(dataset, index, values)
        if len(found) < 2 or len({e.get("_id") if type(e) is dict else id(e) for e in found}) == len(found):
            return list(found)
        return _unique(hop.alias, found)

    return evaluate_one_hop


def _run_spec(c: Ctx, spec: Spec, inputs: list[Any], hop: Hop | None = None) -> list[Any]:
    if hop is not None:
        return _run_single_hop(c, hop, inputs)
    out: list[Any] = []
    seen: set[Any] = set()
    if not spec.recurse:
        for entity in inputs:
            _project(c, spec, _rows(c, spec, entity), out, seen)
        return out
    alias = spec.returns[0]  # type: ignore[index]
    for entity in inputs:
        if not spec.exclude_root and (alias, _entity_key(entity)) not in seen:
            seen.add((alias, _entity_key(entity)))
            out.append(entity)
        frontier = [entity]
        depth = 0
        while frontier and (spec.max_depth is None or depth < spec.max_depth):
            found: list[Any] = []
            for item in frontier:
                _project(c, spec, _rows(c, spec, item), found, seen)
            out.extend(found)
            frontier = found
            depth += 1
    return out


def _evaluator(specs: list[Spec]) -> Evaluator:
    plan = [(spec, _single_hop(spec)) for spec in specs]
    if len(plan) == 1 and plan[0][1] is not None:
        return _one_hop_evaluator(plan[0][1])

    def evaluate(c: Ctx) -> list[Any]:
        values = [c.S]
        for spec, hop in plan:
            values = _run_spec(c, spec, values, hop)
            if not values:
                break
        return values

    return evaluate


def _compile_site(call: Call, first: int, applies: str | None = None) -> tuple[HopsSite, Evaluator]:
    count = len(call.args)
    specs = [_compile_spec(call, call.args[i], call.arg_where(i), i == count - 1) for i in range(first, count)]
    compiler = call.compiler
    compiler.datasets_read.update(d for spec in specs for d in spec.aliases.values())
    site = HopsSite(call.where, compiler.current_rule, specs, applies)
    compiler.hops_sites.append(site)
    if compiler.current_rule is not None:
        compiler.info(compiler.current_rule).has_hops = True
    return site, _evaluator(specs)


@expression("hops", args=(1, None))
def _hops(call: Call) -> Evaluator:
    return _compile_site(call, 0)[1]


@expression("apply-hops", args=(2, None))
def _apply_hops(call: Call) -> Evaluator:
    rule = call.string(0)
    slot = call.compiler.rule_slot(rule, call.arg_where(0))
    _, hops = _compile_site(call, 1, applies=rule)

    def evaluate(c: Ctx) -> list[Any]:
        out: list[Any] = []
        values = hops(c)
        if not values:
            return out
        step = slot[0]
        child = Ctx(None, None, c.env, c, c.root, c.h)  # one context, reset per element
        for value in values:
            child.S = value
            child.T = {}
            child.u = None
            if step(child) is None:
                out.append(child.T)
        return out

    return evaluate


@expression("lookup-entity", args=2)
def _lookup_entity(call: Call) -> Evaluator:
    dataset = call.string(0)
    entity_id = call.compile(1)
    call.compiler.datasets_read.add(dataset)

    def evaluate(c: Ctx) -> Any:
        value = entity_id(c)
        lookup = _lookup(c)
        if type(value) is list:
            return [e for e in (lookup.get(dataset, v) for v in value if type(v) is str) if e is not None]
        return lookup.get(dataset, value) if type(value) is str else None

    return evaluate


# ---------------------------------------------------------------------------------------------------
# the join plan (dependency tracking)
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JoinEdge:
    """Entities of ``dataset`` are reached from ``parent`` entities where the index values overlap.

    ``parent`` is None for the pipe's source entity, else a dataset id. ``index`` is evaluated on
    ``dataset`` entities and ``parent_index`` on parent entities (both with the entity as ``_S``).
    ``invertible`` is False when ``parent_index`` needs more than the parent entity (``_T``, ``_B``...),
    so a change cannot be traced back through this edge. ``where`` locates the hops in the config.
    """

    dataset: str
    index: IndexExpression
    parent: str | None
    parent_index: IndexExpression
    invertible: bool
    where: str


@dataclass(frozen=True)
class JoinPlan:
    """Every tracked join of a transform: which datasets it hops to and how they join back to the source."""

    edges: tuple[JoinEdge, ...] = ()
    subsets: tuple[tuple[str, IndexExpression], ...] = ()

    @property
    def datasets(self) -> frozenset[str]:
        """The hopped-to datasets whose changes must reprocess source entities."""
        return frozenset(e.dataset for e in self.edges)

    def indexes(self) -> dict[str | None, frozenset[IndexExpression]]:
        """The index expressions needed per dataset (key None: the source dataset), both directions."""
        found: dict[str | None, set[IndexExpression]] = {}
        for edge in self.edges:
            found.setdefault(edge.dataset, set()).add(edge.index)
            if edge.invertible:
                found.setdefault(edge.parent, set()).add(edge.parent_index)
        for dataset, index in self.subsets:
            found.setdefault(dataset, set()).add(index)
        return {k: frozenset(v) for k, v in found.items()}

    def dependents(self, dataset_id: str, entity: dict[str, Any], lookup: Lookup,
                   source_dataset: str) -> list[str]:
        """The ``_id``s of source entities that reach ``entity`` (of ``dataset_id``) through the joins.

        Call it for the new and the previous version of a changed entity; ``lookup`` must also cover the
        source dataset (with the source-side index expressions of ``indexes()[None]``).
        """
        sources: dict[str, None] = {}
        frontier = [(dataset_id, entity)]
        visited = {(dataset_id, entity.get("_id"))}
        while frontier:
            dataset, item = frontier.pop()
            for edge in self.edges:
                if edge.dataset != dataset or not edge.invertible:
                    continue
                values = edge.index.values(item)
                if not values:
                    continue
                parent = source_dataset if edge.parent is None else edge.parent
                for found in lookup.lookup(parent, edge.parent_index, values):
                    if edge.parent is None:
                        sources[found["_id"]] = None
                    if (parent, found.get("_id")) not in visited and edge.parent is not None:
                        visited.add((parent, found.get("_id")))
                        frontier.append((parent, found))
        return list(sources)


def _context_origins(compiler: Compiler) -> dict[str, set[str | None]]:
    """For each rule, the possible origins of its ``_S``: None (the source entity) or a dataset id."""
    origins: dict[str, set[str | None]] = {"default": {None}}
    changed = True
    while changed:
        changed = False
        for site in compiler.hops_sites:
            if site.applies is None or not origins.get(site.rule or ""):
                continue
            output = site.specs[-1].output_dataset
            target = origins.setdefault(site.applies, set())
            if output is not None and output not in target:
                target.add(output)
                changed = True
    return origins


def build_join_plan(compiler: Compiler) -> JoinPlan:
    """Collect the tracked joins of every hops site reachable from the ``default`` rule."""
    origins = _context_origins(compiler)
    pipe = _pipe(compiler)
    edges: dict[tuple[Any, ...], JoinEdge] = {}
    subsets: dict[tuple[str, str], tuple[str, IndexExpression]] = {}
    for site in compiler.hops_sites:
        for origin in origins.get(site.rule or "", set()):
            context: str | None = origin
            for spec in site.specs:
                if spec.tracked:
                    for hop in spec.hops:
                        parents = [context] if hop.source_node == CONTEXT else [spec.aliases[hop.source_node]]
                        if spec.recurse and hop.source_node == CONTEXT:
                            parents.append(spec.output_dataset)
                        invertible = hop.source_node != CONTEXT or _refs(hop.source_json, ()) <= {"_S"}
                        for parent in parents:
                            edge = JoinEdge(hop.dataset, hop.index, parent,
                                            IndexExpression(hop.source_json, pipe=pipe), invertible, site.where)
                            edges.setdefault((edge.dataset, edge.index, edge.parent, edge.parent_index.key), edge)
                        if hop.subset is not None:
                            subsets[(hop.dataset, hop.subset[0].key)] = (hop.dataset, hop.subset[0])
                context = spec.output_dataset
                if context is None:
                    break
    return JoinPlan(tuple(edges.values()), tuple(subsets.values()))

