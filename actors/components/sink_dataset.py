"""The ``dataset`` sink: change-tracked writes with the pipe's state in the same batch (node-spec 8.1).

``set_initial_offset`` (node-spec 2.5) decides when the sink dataset is marked populated:
``if-source-populated`` (default) after a successful run whose source is populated, ``always`` after every
successful run, ``initially`` at the start of every run, ``onload`` when the pipe is loaded or configured
(the node applies :meth:`DatasetSink.on_load`), ``never`` not at all.

``circuit_breaker_threshold_factor`` / ``circuit_breaker_threshold_count`` (node-spec 2.8): see
:mod:`actors.components._breaker`.
"""

from __future__ import annotations

from typing import Any

import storage

from .._datasets import DatasetWrite
from . import _breaker
from ._base import BuildContext, Sink, load_state
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
        "circuit_breaker_threshold_factor": {"type": ["number", "null"], "minimum": 0},
        "circuit_breaker_threshold_count": {"type": ["integer", "null"], "minimum": 0},
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
        self.breaker = _breaker.BreakerConfig(config.get("circuit_breaker_threshold_factor"),
                                              config.get("circuit_breaker_threshold_count"))

    def write(self, batch: list[dict[str, Any]], *, state: dict[str, Any], full_run: Any | None) -> DatasetWrite:
        key = self.state_key
        return DatasetWrite(self.dataset, lambda dataset: _breaker.write(dataset, batch, key, state, full_run))

    def begin_full_run(self) -> DatasetWrite:
        return DatasetWrite(self.dataset, _begin_full_run)

    def end_full_run(self, run: Any, *, state: dict[str, Any], if_empty: str) -> DatasetWrite:
        if not self.deletion_tracking:
            return self.save_state(state)
        key, mark = self.state_key, self.mark
        return DatasetWrite(self.dataset, lambda dataset: _breaker.end_full_run(dataset, run, key, state, if_empty,
                                                                                mark))

    def load_state(self) -> dict[str, Any]:
        return load_state(self.context.datasets, self.dataset, self.state_key)

    def save_state(self, state: dict[str, Any]) -> DatasetWrite:
        key = self.state_key

        def save(dataset: storage.Dataset) -> int:
            _breaker.save_state(dataset, key, state)
            return 0

        return DatasetWrite(self.dataset, save)

    def on_load(self) -> DatasetWrite | None:
        return self._populate() if self.initial_offset == "onload" else None

    def begin_run(self) -> DatasetWrite | None:
        """Arm the circuit breaker (or settle what an unfinished run left), then ``initially``'s populated flag."""
        breaker, key, populate = self.breaker, self.state_key, self.initial_offset == "initially"
        if not breaker.configured and not self._breaker_state():
            return self._populate() if populate else None

        def begin(dataset: storage.Dataset) -> None:
            breaker.begin(dataset, key)
            if populate:
                _set_populated(dataset)

        return DatasetWrite(self.dataset, begin)

    def finish(self, *, populated: bool) -> DatasetWrite | None:
        policy, key = self.initial_offset, self.state_key
        populate = policy == "always" or (policy == "if-source-populated" and populated)
        if not self.breaker.configured and not self._breaker_state():
            return self._populate() if populate else None

        def finish(dataset: storage.Dataset) -> None:
            _breaker.finish(dataset, key)
            if populate:
                _set_populated(dataset)

        return DatasetWrite(self.dataset, finish)

    def _breaker_state(self) -> bool:
        """Whether the sink dataset has a circuit breaker's state (of a run that never ended, or tripped)."""
        dataset = self.context.datasets.get(self.dataset)
        return dataset is not None and dataset.breaker is not None

    def _populate(self) -> DatasetWrite:
        """The write that marks the sink dataset populated."""
        return DatasetWrite(self.dataset, _set_populated)


def _begin_full_run(dataset: storage.Dataset) -> storage.FullRun:
    _breaker.refuse_if_tripped(dataset)
    return dataset.begin_full_run()


def _set_populated(dataset: storage.Dataset) -> None:
    if not dataset.populated:
        dataset.set_populated(True)
