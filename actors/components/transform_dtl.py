"""The ``dtl`` transform: a compiled DTL transform over batches (node-spec 7.1)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import storage
from dtl import DTLCompileError, compile_transform

from ._base import BuildContext, Transform
from ._clock import frozen_clock
from ._registry import ConfigError, component

_PIPE_KEYS = ("namespaced_identifiers", "namespaces", "add_namespaces", "remove_namespaces")


@component("transform", "dtl", {
    "required": ["rules"],
    "properties": {
        "rules": {"type": "object", "required": ["default"],
                  "additionalProperties": {"type": "array"}},
        "id_required": {"type": "boolean"},
        "trigger_on": {"type": "object"},
    },
})
class DTLTransform(Transform):
    """Runs the DTL rules on each entity; a deleted source entity gives deleted output."""

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        super().__init__(config, context)
        pipe = {"_id": context.pipe_id, **{k: context.pipe[k] for k in _PIPE_KEYS if k in context.pipe}}
        clock = frozen_clock(context.metadata, where=f"pipe {context.pipe_id}: {context.where}")
        try:
            self.compiled = compile_transform(config, pipe=pipe, lookup=context.datasets.lookup,
                                              emit_filtered=True, secrets=context.secrets, clock=clock)
        except DTLCompileError as exc:
            raise ConfigError(str(exc), where=f"pipe {context.pipe_id}: {context.where}") from None

    @property
    def join_plan(self) -> Any:
        return self.compiled.join_plan

    @property
    def datasets_read(self) -> frozenset[str]:
        return self.compiled.datasets_read

    def transform(self, batch: list[dict[str, Any]], *,
                  bound: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        decode, encode = storage.decode, storage.encode
        bound = dict(bound) if bound else None
        live = [decode(e) for e in batch if e.get("_deleted") is not True]
        out = [encode(e) for e in self.compiled.run(live, bound=bound)] if live else []
        for entity in batch:
            if entity.get("_deleted") is True:
                for result in self.compiled.run([decode(entity)], bound=bound):
                    result = encode(result)
                    result["_deleted"] = True
                    out.append(result)
        return out
