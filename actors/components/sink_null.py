"""The ``null`` sink: discards what it gets (node-spec 8.4); the pipe state lives in ``system:pump:<pipe>``."""

from __future__ import annotations

from typing import Any

from .._datasets import DatasetWrite
from ._base import BuildContext, Sink, load_state, state_write
from ._registry import component


@component("sink", "null", {"properties": {"batch_size": {"type": "integer", "minimum": 1}}})
class NullSink(Sink):
    """Drops every entity; counts nothing as a change."""

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        super().__init__(config, context)
        self.state_dataset = f"system:pump:{context.pipe_id}"
        self.state_key = f"pipe:{context.pipe_id}"

    def write(self, batch: list[dict[str, Any]], *, state: dict[str, Any], full_run: Any | None) -> DatasetWrite:
        return self.save_state(state)

    def load_state(self) -> dict[str, Any]:
        return load_state(self.context.datasets, self.state_dataset, self.state_key)

    def save_state(self, state: dict[str, Any]) -> DatasetWrite:
        return state_write(self.state_dataset, self.state_key, state)
