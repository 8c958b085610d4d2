"""The ``union_datasets`` source: several datasets read one after the other (node-spec 6.8).

The offset is a JSON object ``{dataset: last offset read}`` (a dataset that is absent is read from the
start). Every emitted entity carries in ``_updated`` the combined offset after it, so the engine's
chronological checkpointing works unchanged. A comma-separated string of offsets in ``datasets`` order
(as the UI writes for multi-input pipes) is accepted as a since value too.
:class:`MultiDatasetSource` is shared with ``merge_datasets``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import storage

from ._base import BuildContext, Source
from ._registry import ConfigError, component

__all__ = ["MULTI_DATASET_PROPERTIES", "MultiDatasetSource", "UnionDatasetsSource"]

_DATASET_ID = {"type": "string", "minLength": 1, "pattern": "^[^/]+$"}

MULTI_DATASET_PROPERTIES: dict[str, Any] = {
    "datasets": {"type": "array", "minItems": 1, "uniqueItems": True, "items": _DATASET_ID},
    "initial_datasets": {"type": "array", "uniqueItems": True, "items": _DATASET_ID},
    "ignore_non_existent_datasets": {"type": "boolean", "default": True},
    "require_populated_input": {"type": "boolean"},
    "supports_signalling": {"type": "boolean"},
    "if_source_empty": {"enum": ["accept", "fail"]},
}


class MultiDatasetSource(Source):
    """A chronological source over several datasets with a per-dataset offset (continuation flags fixed)."""

    supports_since = True
    is_chronological = True

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        super().__init__(config, context)
        self.names: list[str] = list(config["datasets"])
        self.datasets = tuple(self.names)
        self.initial: list[str] = list(config.get("initial_datasets", self.names))
        unknown = [name for name in self.initial if name not in self.names]
        if unknown:
            raise ConfigError(f"{unknown[0]!r} is not one of the source's datasets",
                              where=f"pipe {context.pipe_id}: {context.where}.initial_datasets")
        self.ignore_missing = bool(config.get("ignore_non_existent_datasets", True))

    def offsets(self, since: Any) -> dict[str, int]:
        """The per-dataset offsets of a since value (a dict, or a comma-separated string in ``datasets`` order)."""
        if isinstance(since, str):
            parts = [p.strip() for p in since.split(",")] if since.strip() else []
            since = {name: int(p) for name, p in zip(self.names, parts, strict=False) if p.lstrip("-").isdigit()}
        if not isinstance(since, dict):
            return {}
        return {name: value for name, value in since.items()
                if name in self.names and type(value) is int and value >= 0}

    def open_datasets(self) -> Iterator[tuple[int, str, storage.Dataset]]:
        for index, name in enumerate(self.names):
            dataset = self.context.datasets.get(name)
            if dataset is not None:
                yield index, name, dataset

    def end_offset(self) -> Any | None:
        return {name: dataset.next_offset - 1 for _i, name, dataset in self.open_datasets() if dataset.next_offset}

    def unpopulated(self) -> list[str]:
        """The ``initial_datasets`` (all ``datasets`` by default) not populated; a missing one counts only
        without ``ignore_non_existent_datasets``."""
        found = []
        for name in self.initial:
            dataset = self.context.datasets.get(name)
            if (dataset is None and not self.ignore_missing) or (dataset is not None and not dataset.populated):
                found.append(name)
        return found

    @staticmethod
    def batches(entities: Iterable[dict[str, Any] | None], offsets: dict[str, int],
                batch_size: int) -> Iterator[list[dict[str, Any]]]:
        """Batch the entities (``None``: one read but not emitted), stamping each with the combined offset
        after it; the last entity of the run gets the final offset, past any skipped entities."""
        batch: list[dict[str, Any]] = []
        full: list[dict[str, Any]] | None = None
        for entity in entities:
            if entity is None:
                continue
            if full is not None:
                yield full
                full = None
            entity["_updated"] = dict(offsets)
            batch.append(entity)
            if len(batch) >= batch_size:
                full, batch = batch, []
        last = full or batch
        if last:
            last[-1]["_updated"] = dict(offsets)
            yield last


@component("source", "union_datasets", {
    "required": ["datasets"],
    "properties": {
        **MULTI_DATASET_PROPERTIES,
        "include_previous_versions": {"type": "boolean", "default": False},
        "prefix_ids": {"type": "boolean", "default": True},
    },
})
class UnionDatasetsSource(MultiDatasetSource):
    """Emits each dataset's versions after its offset, dataset by dataset in list order; ids become
    ``<dataset>:<_id>`` unless ``prefix_ids`` is false. Deletes are emitted so that they propagate."""

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        super().__init__(config, context)
        self.history = bool(config.get("include_previous_versions", False))
        self.prefix = bool(config.get("prefix_ids", True))

    def read(self, since: Any | None, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        offsets = self.offsets(since)
        return self.batches(self._entities(offsets), offsets, batch_size)

    def _entities(self, offsets: dict[str, int]) -> Iterator[dict[str, Any]]:
        loads = storage.loads
        for _index, name, dataset in self.open_datasets():
            for seq, stored in dataset.iter_stored(offsets.get(name), history=self.history, deleted=True):
                entity = loads(stored)
                offsets[name] = seq
                if self.prefix:
                    entity["_id"] = f"{name}:{entity['_id']}"
                yield entity
