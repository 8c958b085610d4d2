"""The ``emit_children`` transform: emits the entities in each entity's ``$children`` (node-spec 7.2)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._base import Transform
from ._registry import component


@component("transform", "emit_children", {
    "properties": {"side_effects": {"type": "boolean"}},
    "additionalProperties": False,
})
class EmitChildrenTransform(Transform):
    """Emits every object with an ``_id`` in each entity's ``$children``, in order; the parent is not emitted.

    Deleted children (the dataset sink's ``track_children`` adds them back with ``_deleted: true``) pass as
    they are; the children of a deleted (or filtered) parent are emitted as deletes, so they go with it.
    """

    def transform(self, batch: list[dict[str, Any]], *,
                  bound: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for parent in batch:
            children = parent.get("$children")
            if not isinstance(children, list):
                continue
            gone = parent.get("_deleted") is True or parent.get("_filtered") is True
            for child in children:
                if isinstance(child, dict) and child.get("_id") is not None:
                    child = dict(child)
                    if gone:
                        child["_deleted"] = True
                    out.append(child)
        return out
