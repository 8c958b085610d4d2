"""The ``embedded`` source: entities written in the config (node-spec 6.2).

By default every run is a full run. With ``supports_since: true`` it honours since: it emits only the
entities whose ``_updated`` is greater than the since value (an entity without one, or with one that does
not compare, is always emitted); the engine then keeps the largest ``_updated`` as the offset (the ``max``
strategy, or ``chronological`` with ``is_chronological: true``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._base import CONTINUATION_FLAGS, Source
from ._registry import component


@component("source", "embedded", {
    "required": ["entities"],
    "properties": {
        "entities": {"type": "array", "items": {"type": "object"}},
        "system": {"type": "string"},
        "if_source_empty": {"enum": ["accept", "fail"]},
    },
})
class EmbeddedSource(Source):
    """Serves the configured entities in list order (those after the since value when it supports since)."""

    adds_namespaces = True

    settable_flags = frozenset(CONTINUATION_FLAGS)  # all three "default" (node-spec 6.0)

    def read(self, since: Any | None, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        entities = self.config["entities"]
        if self.supports_since and since is not None:
            entities = [e for e in entities if _after(e.get("_updated"), since)]
        for start in range(0, len(entities), batch_size):
            yield [dict(e) for e in entities[start:start + batch_size]]


def _after(updated: Any, since: Any) -> bool:
    """Whether an entity with ``_updated`` comes after ``since`` (values that don't compare do)."""
    if updated is None:
        return True
    try:
        return bool(updated > since)
    except TypeError:
        return True
