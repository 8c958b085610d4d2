"""The ``null`` sink: discards what it gets (node-spec 8.4); the pipe state lives in ``system:pump:<pipe>``."""

from __future__ import annotations

from typing import Any

from ._base import BuildContext, Sink
from ._registry import component


@component("sink", "null", {"properties": {"batch_size": {"type": "integer", "minimum": 1}}})
class NullSink(Sink):
    """Drops every entity; counts nothing as a change."""

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        super().__init__(config, context)
        self.state_dataset = f"system:pump:{context.pipe_id}"
        self.state_key = f"pipe:{context.pipe_id}"

    def write(self, batch: list[dict[str, Any]], *, state: dict[str, Any], full_run: Any | None) -> int:
        self.save_state(state)
        return 0

    def end_full_run(self, run: Any, *, state: dict[str, Any], if_empty: str) -> int:
        self.save_state(state)
        return 0

    def load_state(self) -> dict[str, Any]:
        dataset = self.context.datasets.get(self.state_dataset)
        return {} if dataset is None else dataset.get_offset(self.state_key, {}) or {}

    def save_state(self, state: dict[str, Any]) -> None:
        with self.context.datasets.writing(self.state_dataset) as dataset:
            dataset.write([], offset_key=self.state_key, offset=state)
