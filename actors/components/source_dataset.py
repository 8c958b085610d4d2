"""The ``dataset`` source: reads a dataset's log after the pipe's offset (node-spec 6.1)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import storage

from ._base import Source
from ._registry import component


@component("source", "dataset", {
    "required": ["dataset"],
    "properties": {
        "dataset": {"type": "string", "minLength": 1, "pattern": "^[^/]+$"},
        "include_previous_versions": {"type": "boolean", "default": False},
        "include_replaced": {"type": "boolean", "default": True},
        "supports_signalling": {"type": "boolean"},
        "require_populated_input": {"type": "boolean"},
        "if_source_empty": {"enum": ["accept", "fail"]},
    },
})
class DatasetSource(Source):
    """Emits the dataset's versions after the offset in log order: the latest of each id by default,
    every version with ``include_previous_versions``; deletes included so they propagate."""

    supports_since = True
    is_chronological = True  # all three flags fixed (node-spec 6.0)

    def __init__(self, config: dict[str, Any], context: Any) -> None:
        super().__init__(config, context)
        self.name: str = config["dataset"]
        self.datasets = (self.name,)
        self.history = bool(config.get("include_previous_versions", False))
        self.include_replaced = bool(config.get("include_replaced", True))

    @property
    def dataset_source(self) -> str | None:
        return self.name

    def read(self, since: Any | None, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        dataset = self.context.datasets.get(self.name)
        if dataset is None:
            return
        start = since if isinstance(since, int) else None
        batch: list[dict[str, Any]] = []
        loads = storage.loads
        for _seq, stored in dataset.iter_stored(start, history=self.history, deleted=True):
            entity = loads(stored)
            if not self.include_replaced and entity.get("$replaced") is True:
                continue
            batch.append(entity)
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def end_offset(self) -> Any | None:
        dataset = self.context.datasets.get(self.name)
        return None if dataset is None or dataset.next_offset == 0 else dataset.next_offset - 1

    def unpopulated(self) -> list[str]:
        dataset = self.context.datasets.get(self.name)
        return [] if dataset is not None and dataset.populated else [self.name]
