"""The ``dataset`` sink: change-tracked writes with the pipe's state in the same batch (node-spec 8.1).

``set_initial_offset`` (node-spec 2.5) decides when the sink dataset is marked populated:
``if-source-populated`` (default) after a successful run whose source is populated, ``always`` after every
successful run, ``initially`` at the start of every run, ``onload`` when the pipe is loaded or configured
(the node applies :meth:`DatasetSink.on_load`), ``never`` not at all.
"""

from __future__ import annotations

from typing import Any

import storage

from .._datasets import DatasetWrite
from ._base import BuildContext, Sink, load_state, state_write
from ._registry import ConfigError, component

SET_INITIAL_OFFSET = ["if-source-populated", "never", "always", "initially", "onload"]


@component("sink", "dataset", {
    "properties": {
        "dataset": {"type": "string", "minLength": 1, "pattern": "^[^/]+$"},
        "set_initial_offset": {"enum": SET_INITIAL_OFFSET},
        "deletion_tracking": {"type": "boolean"},
        "mark_deletion_tracked": {"type": "boolean"},
        "indexes": {"anyOf": [{"const": "$ids"}, {"type": "array"}]},
        "track_children": {"type": "boolean"},
        "max_entity_bytes_size": {"type": "integer", "minimum": 1},
        "batch_size": {"type": "integer", "minimum": 1},
    },
})
class DatasetSink(Sink):
    """Appends new and changed versions; deletion tracking at the end of full runs; ``_filtered`` deletes."""

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        super().__init__(config, context)
        self.dataset = config.get("dataset") or context.pipe_id
        if self.dataset.startswith("system:"):
            raise ConfigError("a sink cannot write to an internal 'system:' dataset",
                              where=f"pipe {context.pipe_id}: {context.where}.dataset")
        self.state_key = f"pipe:{context.pipe_id}"
        self.deletion_tracking = config.get("deletion_tracking", True)
        self.mark = config.get("mark_deletion_tracked", False)
        self.initial_offset = config.get("set_initial_offset", "if-source-populated")

    def write(self, batch: list[dict[str, Any]], *, state: dict[str, Any], full_run: Any | None) -> DatasetWrite:
        key = self.state_key
        return DatasetWrite(self.dataset, lambda dataset: dataset.write(
            batch, offset_key=key, offset=state, full_run=full_run).appended)

    def begin_full_run(self) -> DatasetWrite:
        return DatasetWrite(self.dataset, storage.Dataset.begin_full_run)

    def end_full_run(self, run: Any, *, state: dict[str, Any], if_empty: str) -> DatasetWrite:
        if not self.deletion_tracking:
            return self.save_state(state)
        key, mark = self.state_key, self.mark
        return DatasetWrite(self.dataset, lambda dataset: dataset.end_full_run(
            run, if_empty=if_empty, mark_deletion_tracked=mark, offset_key=key, offset=state))

    def load_state(self) -> dict[str, Any]:
        return load_state(self.context.datasets, self.dataset, self.state_key)

    def save_state(self, state: dict[str, Any]) -> DatasetWrite:
        return state_write(self.dataset, self.state_key, state)

    def on_load(self) -> DatasetWrite | None:
        return self._populate() if self.initial_offset == "onload" else None

    def begin_run(self) -> DatasetWrite | None:
        return self._populate() if self.initial_offset == "initially" else None

    def finish(self, *, populated: bool) -> DatasetWrite | None:
        policy = self.initial_offset
        if policy == "always" or (policy == "if-source-populated" and populated):
            return self._populate()
        return None

    def _populate(self) -> DatasetWrite:
        """The write that marks the sink dataset populated."""
        return DatasetWrite(self.dataset, _set_populated)


def _set_populated(dataset: storage.Dataset) -> None:
    if not dataset.populated:
        dataset.set_populated(True)
