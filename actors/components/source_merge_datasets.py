"""The ``merge_datasets`` source: the latest version of each id across several datasets (node-spec 6.9).

The datasets' changes after their offsets are merged by ``_ts``. An id is emitted when the version read is
its newest across all the datasets (by ``_ts``, a later dataset in the list winning ties), so a full run
emits each id once and an incremental run emits only ids whose output can have changed. The offset is
``{dataset: last offset read}``, as for ``union_datasets``.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any

import storage

from ._base import BuildContext
from ._registry import component
from .source_union_datasets import MULTI_DATASET_PROPERTIES, MultiDatasetSource

_Item = tuple[int, int, int, dict[str, Any]]  # (_ts, dataset index, offset, entity)


@component("source", "merge_datasets", {
    "required": ["datasets"],
    "properties": {**MULTI_DATASET_PROPERTIES, "strategy": {"enum": ["latest", "all"], "default": "latest"}},
})
class MergeDatasetsSource(MultiDatasetSource):
    """Emits in ``_ts`` order, ids unchanged: with ``strategy: latest`` the newest version of an id from
    whichever dataset holds it; with ``all`` one entity holding each dataset's latest live version under
    the dataset's id (deleted when no dataset has a live version)."""

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        super().__init__(config, context)
        self.strategy: str = config.get("strategy", "latest")

    def read(self, since: Any | None, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        offsets = self.offsets(since)
        return self.batches(self._entities(offsets), offsets, batch_size)

    def _entities(self, offsets: dict[str, int]) -> Iterator[dict[str, Any] | None]:
        opened = list(self.open_datasets())
        logs = [self._log(index, dataset, offsets.get(name)) for index, name, dataset in opened]
        for _ts, index, seq, entity in heapq.merge(*logs):
            offsets[self.names[index]] = seq
            entity_id = entity["_id"]
            current = {i: v for i, _name, dataset in opened if (v := dataset.get(entity_id)) is not None}
            newest = max(current, key=lambda i: (current[i].get("_ts", 0), i), default=None)
            if newest != index or current[index].get("_updated") != seq:
                yield None  # not the deciding version: a newer one is (or will be) read
            elif self.strategy == "latest":
                yield entity
            else:
                yield self._combined(entity_id, current)

    @staticmethod
    def _log(index: int, dataset: storage.Dataset, since: int | None) -> Iterator[_Item]:
        loads = storage.loads
        for seq, stored in dataset.iter_stored(since, history=False, deleted=True):
            entity = loads(stored)
            yield entity.get("_ts", 0), index, seq, entity

    def _combined(self, entity_id: str, current: dict[int, dict[str, Any]]) -> dict[str, Any]:
        combined: dict[str, Any] = {"_id": entity_id}
        for index in sorted(current):
            version = current[index]
            if version.get("_deleted") is not True:
                combined[self.names[index]] = {k: v for k, v in version.items()
                                               if k[:1] != "_" or k == "_id"}
        if len(combined) == 1:
            combined["_deleted"] = True
        return combined
