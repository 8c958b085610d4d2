"""Test helpers: an in-memory ``Lookup`` over typed entities, and wire-form shortcuts for tests.

``ev``, ``run`` and ``steps`` take and return values in wire form (transit strings such as ``"~f1.5"``),
so tests can be written as plain JSON: ``assert ev(["upper", "_S.name"], {"name": "a"}) == "A"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._lookup import IndexExpression, index_key
from ._values import decode_literal, encode_value

__all__ = ["InMemoryLookup", "ev", "run", "steps", "typed", "wire"]


class InMemoryLookup:
    """Datasets held in memory: the latest version of each ``_id``; deleted entities are not indexed."""

    def __init__(self, datasets: Mapping[str, Iterable[dict[str, Any]]] | None = None) -> None:
        self._datasets: dict[str, dict[str, dict[str, Any]]] = {}
        self._indexes: dict[tuple[str, str], dict[Any, list[dict[str, Any]]]] = {}
        self.calls = 0
        for dataset_id, entities in (datasets or {}).items():
            for entity in entities:
                self.put(dataset_id, entity)

    def put(self, dataset_id: str, entity: dict[str, Any]) -> None:
        """Store ``entity`` as the latest version of its ``_id``."""
        self._datasets.setdefault(dataset_id, {})[entity["_id"]] = entity
        for key in [k for k in self._indexes if k[0] == dataset_id]:
            del self._indexes[key]

    def entities(self, dataset_id: str) -> list[dict[str, Any]]:
        """The live (non-deleted) entities of a dataset, ordered by ``_id``."""
        stored = self._datasets.get(dataset_id, {})
        return [stored[k] for k in sorted(stored) if stored[k].get("_deleted") is not True]

    def _index(self, dataset_id: str, index: IndexExpression) -> dict[Any, list[dict[str, Any]]]:
        cache_key = (dataset_id, index.key)
        table = self._indexes.get(cache_key)
        if table is None:
            table = {}
            for entity in self.entities(dataset_id):
                for value in index.values(entity):
                    bucket = table.setdefault(index_key(value), [])
                    if not bucket or bucket[-1] is not entity:
                        bucket.append(entity)
            self._indexes[cache_key] = table
        return table

    def lookup(self, dataset_id: str, index: IndexExpression, values: Sequence[Any]) -> list[dict[str, Any]]:
        self.calls += 1
        table = self._indexes.get((dataset_id, index.key))
        if table is None:
            table = self._index(dataset_id, index)
        if len(values) == 1:  # a bucket is ordered by _id without duplicates already
            return list(table.get(index_key(values[0]), ()))
        found: dict[str, dict[str, Any]] = {}
        for value in values:
            for entity in table.get(index_key(value), ()):
                found.setdefault(entity["_id"], entity)
        return [found[k] for k in sorted(found)]

    def get(self, dataset_id: str, entity_id: str) -> dict[str, Any] | None:
        self.calls += 1
        entity = self._datasets.get(dataset_id, {}).get(entity_id)
        if entity is None or entity.get("_deleted") is True:
            return None
        return entity


def typed(value: Any) -> Any:
    """Wire form (``"~f1.5"``...) to typed values (no ``~~`` escape)."""
    return decode_literal(value)


def wire(value: Any) -> Any:
    """Typed values to wire form."""
    return encode_value(value)


def _lookup(datasets: Mapping[str, list[Any]] | None) -> InMemoryLookup:
    return InMemoryLookup({k: typed(v) for k, v in (datasets or {}).items()})


def ev(expr: Any, source: Any = None, *, target: Any = None, bound: Any = None, pipe: Any = None,
       datasets: Mapping[str, list[Any]] | None = None) -> Any:
    """Evaluate an expression with ``_S = source``; values in and out in wire form."""
    from ._transform import compile_expression

    expression = compile_expression(expr, pipe=pipe, lookup=_lookup(datasets))
    result = expression.evaluate(typed({} if source is None else source), target=typed(target or {}),
                                 bound=typed(bound or {}))
    return wire(result)


def run(rules: Mapping[str, Any], entities: list[Any], *, datasets: Mapping[str, list[Any]] | None = None,
        pipe: Any = None, emit_filtered: bool = False, **transform: Any) -> list[Any]:
    """Run a DTL transform (``rules`` plus extra transform properties) over wire-form entities."""
    from ._transform import compile_transform

    compiled = compile_transform({"type": "dtl", "rules": rules, **transform}, pipe=pipe,
                                 lookup=_lookup(datasets), emit_filtered=emit_filtered)
    return wire(compiled.run(typed(entities)))  # type: ignore[no-any-return]


def steps(body: list[Any], source: Any, *, target: Any = None, pipe: Any = None,
          datasets: Mapping[str, list[Any]] | None = None) -> Any:
    """Apply transform functions once to ``source`` (no ``_id`` checks); return the target in wire form."""
    from ._transform import compile_transform

    compiled = compile_transform({"type": "dtl", "rules": {"default": body}}, pipe=pipe, lookup=_lookup(datasets))
    return wire(compiled.apply_rule("default", typed(source), target=typed(target) if target else None))
