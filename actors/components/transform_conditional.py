"""The ``conditional`` transform: one of several transform configs, chosen by a condition (node-spec 7.6)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._base import BuildContext, Transform
from ._registry import component
from .source_conditional import CONDITIONAL_SCHEMA, build_alternative


@component("transform", "conditional", CONDITIONAL_SCHEMA)
class ConditionalTransform(Transform):
    """Builds the alternative selected by ``condition`` and behaves exactly like it."""

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        super().__init__(config, context)
        self.chosen: Transform = build_alternative("transform", config, context)

    def transform(self, batch: list[dict[str, Any]], *,
                  bound: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.chosen.transform(batch, bound=bound)

    @property
    def join_plan(self) -> Any | None:
        return self.chosen.join_plan

    @property
    def datasets_read(self) -> frozenset[str]:
        return self.chosen.datasets_read

    def __getattr__(self, name: str) -> Any:  # anything else a particular transform type offers
        if name == "chosen":
            raise AttributeError(name)
        return getattr(self.chosen, name)
