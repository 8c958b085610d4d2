"""The ``conditional`` source: one of several source configs, chosen by a condition (node-spec 6.4).

The node substitutes ``$ENV(...)`` before the engine sees the config (in the condition and the chosen
alternative only), so ``condition`` is a plain value here. The chosen alternative is built when the pipe is
built; the wrapper delegates everything to it, and the pipe's effective config shows it in its place.
The transform and sink variants (node-spec 7.6, 8.5) reuse :func:`build_alternative`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from ._base import CONTINUATION_FLAGS, BuildContext, Source
from ._registry import ConfigError, component, lookup

__all__ = ["CONDITIONAL_SCHEMA", "ConditionalSource", "build_alternative"]

CONDITIONAL_SCHEMA: dict[str, Any] = {
    "required": ["condition", "alternatives"],
    "properties": {
        "condition": {"type": ["string", "number", "boolean"]},
        "alternatives": {"type": "object", "minProperties": 1, "additionalProperties": {"type": "object"}},
    },
}


def condition_key(value: Any) -> str:
    """The ``alternatives`` key a condition value selects (non-strings as their JSON text)."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def build_alternative(kind: str, config: dict[str, Any], context: BuildContext) -> Any:
    """Validate and build the alternative that ``config["condition"]`` selects."""
    key = condition_key(config["condition"])
    alternatives: dict[str, Any] = config["alternatives"]
    if key not in alternatives:
        known = ", ".join(repr(k) for k in sorted(alternatives))
        raise ConfigError(f"the condition value {key!r} is not one of the alternatives ({known})",
                          where=f"pipe {context.pipe_id}: {context.where}.condition")
    where = f"{context.where}.alternatives.{key}"
    chosen = alternatives[key]
    spec = lookup(kind, chosen, f"pipe {context.pipe_id}: {where}")
    return spec.factory(chosen, dataclasses.replace(context, where=where))


@component("source", "conditional", CONDITIONAL_SCHEMA)
class ConditionalSource(Source):
    """Builds the alternative selected by ``condition`` and behaves exactly like it (its continuation flags
    are the chosen alternative's)."""

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        super().__init__(config, context)
        self.chosen: Source = build_alternative("source", config, context)
        self.supports_since = self.chosen.supports_since
        self.is_chronological = self.chosen.is_chronological
        self.is_since_comparable = self.chosen.is_since_comparable
        self.datasets = self.chosen.datasets

    @classmethod
    def schema_properties(cls) -> dict[str, Any]:
        return {}  # the flags belong to the alternatives

    def configure_flags(self, config: Mapping[str, Any]) -> None:
        for flag in CONTINUATION_FLAGS:
            if flag in config:
                raise ConfigError("set it on the alternatives: a conditional source takes the chosen one's flags",
                                  where=f"{self.where}.{flag}")

    def read(self, since: Any | None, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        return self.chosen.read(since, batch_size)

    def end_offset(self) -> Any | None:
        return self.chosen.end_offset()

    def is_populated(self) -> bool:
        return self.chosen.is_populated()

    def unpopulated(self) -> list[str]:
        return self.chosen.unpopulated()

    @property
    def require_populated_input(self) -> bool:
        return self.chosen.require_populated_input

    @property
    def dataset_source(self) -> str | None:
        return self.chosen.dataset_source

    def __getattr__(self, name: str) -> Any:  # anything else a particular source type offers
        if name == "chosen":
            raise AttributeError(name)
        return getattr(self.chosen, name)
