"""The ``embedded`` source: entities written in the config (node-spec 6.2); every run is a full run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._base import Source
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
    """Serves the configured entities in list order, all of them on every run."""

    def read(self, since: Any | None, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        entities = self.config["entities"]
        for start in range(0, len(entities), batch_size):
            yield [dict(e) for e in entities[start:start + batch_size]]
