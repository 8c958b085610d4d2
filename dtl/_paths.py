"""Property paths (dtl-spec 3.4): parsing ``"_S.a.'b.c'.d"``, traversal, and compiled path evaluators."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._context import Evaluator
from ._namespaces import Namespaces
from ._values import NI

__all__ = ["VARIABLES", "AnyNamespace", "compile_path", "parse_path", "split_elements", "walk"]

VARIABLES = ("_S", "_T", "_P", "_R", "_B", "_")
_MISSING: Any = object()


class AnyNamespace:
    """A path step matching an identifier in every namespace (``a`` matches ``a``, ``x:a``, ``y:a``)."""

    __slots__ = ("ident", "suffix")

    def __init__(self, ident: str) -> None:
        self.ident = ident
        self.suffix = ":" + ident

    def keys(self, value: dict[str, Any]) -> list[str]:
        ident = self.ident
        suffix = self.suffix
        return [k for k in value if k == ident or k.endswith(suffix)]


Step = str | AnyNamespace


def split_elements(text: str) -> list[str]:
    """Split a dotted path; ``'...'`` quotes an element (``''`` inside is a quote). Empty parts are dropped."""
    elements: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        if text[i] == "'":
            j = i + 1
            buf: list[str] = []
            while j < n:
                if text[j] == "'":
                    if j + 1 < n and text[j + 1] == "'":
                        buf.append("'")
                        j += 2
                        continue
                    break
                buf.append(text[j])
                j += 1
            elements.append("".join(buf))
            i = j + 1
            if i < n and text[i] == ".":
                i += 1
        else:
            j = text.find(".", i)
            if j < 0:
                j = n
            if j > i:
                elements.append(text[i:j])
            i = j + 1
    return elements


def parse_path(text: str, aliases: Sequence[str] = ()) -> tuple[str, list[str]] | None:
    """``(variable, elements)`` when ``text`` is a path string (``_S.``, ``_.``, ``alias.``), else None."""
    head, dot, rest = text.partition(".")
    if not dot:
        return None
    if head in VARIABLES or head in aliases:
        return head, split_elements(rest)
    return None


def _collect(value: Any, step: Step, out: list[Any]) -> bool:
    """Add the values ``step`` reaches from ``value`` to ``out``; True if that made the result a list."""
    kind = type(value)
    multi = False
    if kind is dict:
        if type(step) is str:
            found = value.get(step, _MISSING)
            if found is _MISSING:
                return False
            if type(found) is list:
                out.extend(found)
                return True
            out.append(found)
            return False
        keys = step.keys(value)  # type: ignore[union-attr]
        if len(keys) > 1:
            multi = True
        for key in keys:
            found = value[key]
            if type(found) is list:
                out.extend(found)
                multi = True
            else:
                out.append(found)
        return multi
    if kind is list:
        for item in value:
            _collect(item, step, out)
        return True
    return False


def walk(value: Any, steps: Sequence[Step]) -> Any:
    """Traverse ``steps`` from ``value``, flattening lists one level per step (dtl-spec 3.4)."""
    if not steps:
        return value
    multi = type(value) is list
    current = value if multi else [value]
    for step in steps:
        out: list[Any] = []
        if type(step) is str:
            for item in current:
                if type(item) is dict:
                    found = item.get(step, _MISSING)
                    if found is _MISSING:
                        continue
                    if type(found) is list:
                        out.extend(found)
                        multi = True
                    else:
                        out.append(found)
                elif type(item) is list:
                    _collect(item, step, out)
                    multi = True
        else:
            for item in current:
                if _collect(item, step, out):
                    multi = True
        current = out
    if multi:
        return current
    return current[0] if current else None


def resolve_steps(elements: Sequence[str], ns: Namespaces) -> list[Step]:
    """Path elements as traversal steps: exact names, or namespace unions when NIs are enabled."""
    if not ns.enabled:
        return list(elements)
    steps: list[Step] = []
    for element in elements:
        if element.startswith("::"):
            steps.append(element[2:])
        elif element.startswith(":"):
            steps.append(ns.target_name(element))
        elif ":" in element or element.startswith(("_", "$")):
            steps.append(element)
        else:
            steps.append(AnyNamespace(element))
    return steps


# ---------------------------------------------------------------------------------------------------
# compiled path evaluators
# ---------------------------------------------------------------------------------------------------


def _root(variable: str, elements: list[str]) -> tuple[list[str], str, list[str]]:
    """Prelude lines, the root expression and the remaining elements for a path's variable."""
    if variable == "_S":
        return [], "c.S", elements
    if variable == "_T":
        return [], "c.T", elements
    if variable == "_":
        return [], "c.u", elements
    if variable == "_B":
        return [], "c.env.B", elements
    if variable == "_R":
        if elements and elements[0] in ("_S", "_T"):
            return [], f"c.root.{elements[0][1]}", elements[1:]
        return [], "c.root.as_dict(root=True)", elements
    if variable == "_P":
        prelude = ["p = c.parent", "if p is None: return None"]
        rest = elements
        while rest and rest[0] == "_P":
            prelude += ["p = p.parent", "if p is None: return None"]
            rest = rest[1:]
        if rest and rest[0] in ("_S", "_T"):
            return prelude, f"p.{rest[0][1]}", rest[1:]
        return prelude, "p.as_dict()", rest
    return [], "c.h.get(ALIAS)", elements


def compile_path(variable: str, elements: list[str], ns: Namespaces) -> Evaluator:
    """A path evaluator; plain ``dict.get`` chains for the common case, generic traversal otherwise."""
    prelude, root, rest = _root(variable, elements)
    steps = resolve_steps(rest, ns)
    env: dict[str, Any] = {"walk": walk, "ALIAS": variable}
    lines = ["def evaluate(c):"] + ["    " + line for line in prelude]
    if steps and steps[0] == "$ids" and root in ("c.S", "c.root.S"):
        env["ids"] = _dynamic_ids(ns)
        env["REST"] = steps[1:]
        lines.append(f"    return walk(ids({root}), REST)")
    elif not all(type(step) is str for step in steps):
        env["STEPS"] = steps
        lines.append(f"    return walk({root}, STEPS)")
    else:
        lines.append(f"    v = {root}")
        for i, step in enumerate(steps):
            env[f"K{i}"] = step
            env[f"R{i}"] = steps[i:]
            lines.append(f"    if type(v) is not dict: return None if v is None else walk(v, R{i})")
            lines.append(f"    v = v.get(K{i})")
        lines.append("    return v")
    exec("\n".join(lines), env)
    evaluator: Evaluator = env["evaluate"]
    if variable == "_" and not prelude and len(steps) == 1 and type(steps[0]) is str:
        evaluator.dtl_u_key = steps[0]  # type: ignore[attr-defined]  # ``_.KEY``: item.get(KEY) on a dict item
    if variable in ("_S", "_T") and len(steps) == 1 and type(steps[0]) is str and steps[0] != "$ids":
        # ``_S.KEY``/``_T.KEY``: ``(is _S, KEY)``; callers may read ``root.get(KEY)`` when root is a dict
        evaluator.dtl_key = (variable == "_S", steps[0])  # type: ignore[attr-defined]
    return evaluator


def _dynamic_ids(ns: Namespaces) -> Any:
    """``_S.$ids``: the entity's ``$ids``, or its ``_id`` as an NI (with the identity namespace)."""
    prefix = f"{ns.identity}:" if ns.enabled and ns.identity else ""

    def ids(entity: Any) -> Any:
        if type(entity) is not dict:
            return None
        found = entity.get("$ids", _MISSING)
        if found is not _MISSING:
            return found
        ident = entity.get("_id")
        if type(ident) is not str:
            return None
        if prefix and not ident.startswith(prefix):
            ident = prefix + ident
        return [NI(ident)]

    return ids

