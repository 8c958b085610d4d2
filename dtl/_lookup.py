"""The dataset lookup protocol that ``hops``, ``apply-hops`` and ``lookup-entity`` use.

The storage layer implements ``Lookup`` with secondary indexes; ``dtl.testing.InMemoryLookup`` is the
in-memory reference implementation. An index is identified by an ``IndexExpression``: a DTL expression
evaluated on one entity of the indexed dataset (the entity is ``_S``), e.g. ``"_S.cust_id"`` or
``["lower", "_S.code"]``. Its index values are the expression's result flattened one level, with nulls
dropped; ``index_key`` turns a value into a hashable key that matches exactly when DTL ``eq`` holds
(so ``1``, ``1.0`` and ``~f1`` share a key, ``true`` and ``1`` do not). Deleted entities are never indexed.

Two optional methods are used when present: ``previous(entity) -> dict | None`` (the previous version of a
source entity, for ``is-changed``) and ``completeness(via_dataset, dataset) -> Datetime | None``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ._values import encode_value

__all__ = ["IndexExpression", "Lookup", "index_key"]


class IndexExpression:
    """A compiled index expression; equal (and hashed) by its canonical JSON text ``key``."""

    __slots__ = ("_evaluate", "expression", "key")

    def __init__(self, expression: Any, *, pipe: Mapping[str, Any] | None = None) -> None:
        from ._transform import compile_expression

        self.expression = expression
        self.key = json.dumps(expression, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        self._evaluate = compile_expression(expression, pipe=pipe).evaluate

    def evaluate(self, entity: Any) -> Any:
        """The expression's value with ``_S`` = ``entity``."""
        return self._evaluate(entity)

    def values(self, entity: Any) -> list[Any]:
        """The index values of ``entity``: the result flattened one level, nulls dropped."""
        return flat_values(self._evaluate(entity))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IndexExpression) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"IndexExpression({self.key})"


def flat_values(value: Any) -> list[Any]:
    """A value as index values: a list is flattened one level; nulls are dropped."""
    if type(value) is list:
        return [v for v in value if v is not None]
    return [] if value is None else [value]


def index_key(value: Any) -> Any:
    """A hashable key for an index value, equal exactly when the values are DTL-equal."""
    kind = type(value)
    if kind is bool:
        return ("~bool", value)
    if kind is list or kind is dict:
        return ("~json", json.dumps(encode_value(value), sort_keys=True))
    return value


@runtime_checkable
class Lookup(Protocol):
    """Read access to other datasets (latest versions, deleted entities excluded)."""

    def lookup(self, dataset_id: str, index: IndexExpression, values: Sequence[Any]) -> list[dict[str, Any]]:
        """The entities of ``dataset_id`` having an index value (per ``index``) equal to any of ``values``.

        ``values`` holds non-null typed values (compare them by ``index_key``). The result is ordered by
        ``_id`` without duplicates; an unknown dataset gives ``[]``. The entities must not be mutated.
        """
        ...

    def get(self, dataset_id: str, entity_id: str) -> dict[str, Any] | None:
        """The entity with ``_id == entity_id`` in ``dataset_id``, or None (also when deleted)."""
        ...
