"""The ``conditional`` sink: one of several sink configs, chosen by a condition (node-spec 8.5)."""

from __future__ import annotations

from typing import Any

from .._datasets import DatasetWrite
from ._base import BuildContext, Sink
from ._registry import component
from .source_conditional import CONDITIONAL_SCHEMA, build_alternative


@component("sink", "conditional", CONDITIONAL_SCHEMA)
class ConditionalSink(Sink):
    """Builds the alternative selected by ``condition`` and behaves exactly like it (state included)."""

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        super().__init__(config, context)
        self.chosen: Sink = build_alternative("sink", config, context)
        self.dataset = self.chosen.dataset
        self.blocking = self.chosen.blocking

    def write(self, batch: list[dict[str, Any]], *, state: dict[str, Any], full_run: Any | None) -> DatasetWrite:
        return self.chosen.write(batch, state=state, full_run=full_run)

    def begin_full_run(self) -> DatasetWrite | None:
        return self.chosen.begin_full_run()

    def end_full_run(self, run: Any, *, state: dict[str, Any], if_empty: str) -> DatasetWrite:
        return self.chosen.end_full_run(run, state=state, if_empty=if_empty)

    def load_state(self) -> dict[str, Any]:
        return self.chosen.load_state()

    def save_state(self, state: dict[str, Any]) -> DatasetWrite:
        return self.chosen.save_state(state)

    def on_load(self) -> DatasetWrite | None:
        return self.chosen.on_load()

    def begin_run(self) -> DatasetWrite | None:
        return self.chosen.begin_run()

    def finish(self, *, populated: bool) -> DatasetWrite | None:
        return self.chosen.finish(populated=populated)

    def __getattr__(self, name: str) -> Any:  # anything else a particular sink type offers
        if name == "chosen":
            raise AttributeError(name)
        return getattr(self.chosen, name)
