"""The ``empty`` source: emits nothing (node-spec 6.3)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._base import Source
from ._registry import component


@component("source", "empty", {"properties": {"if_source_empty": {"enum": ["accept", "fail"]}}})
class EmptySource(Source):
    """Yields no entities (a full run with a dataset sink then deletes everything, unless told to fail)."""

    is_chronological = True  # all three flags fixed (node-spec 6.0)

    def read(self, since: Any | None, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        return iter(())
