"""A pipe's namespace switches (node-spec 1.6) on wire-form entities: ``add_namespaces`` before the first
transform, ``remove_namespaces`` after the last.

``namespaced_identifiers`` comes from the pipe, else the node metadata (default false). When it is on, the
external sources (their class sets ``adds_namespaces``) default to adding namespaces and the external sinks
(``removes_namespaces``) to removing them; the source's (sink's) own ``add_namespaces``
(``remove_namespaces``), else the pipe's, overrides the default. Adding prefixes ``_id`` with the identity
namespace and every key but ``_``/``$`` ones, recursively, with the property namespace (both default to the
pipe id). Removing strips the namespace from ``_id`` and every key but ``$`` ones, and NIs go to the global
namespace (``~:crm:7`` -> ``~:7``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dtl._namespaces import apply_namespaces

__all__ = ["Namespacing", "namespaced_identifiers", "strip_wire_namespaces"]


def namespaced_identifiers(pipe: Mapping[str, Any], metadata: Mapping[str, Any]) -> bool:
    """Whether the pipe has namespaced identifiers: its own setting, else the node metadata's."""
    value = pipe.get("namespaced_identifiers")
    if value is None:
        value = metadata.get("namespaced_identifiers", False)
    return value is True


@dataclass(frozen=True)
class Namespacing:
    """What the pipe does to entities before its first transform (``add``: the property and identity
    namespaces) and after its last (``remove``)."""

    add: tuple[str, str] | None = None
    remove: bool = False

    @classmethod
    def of(cls, pipe: Mapping[str, Any], metadata: Mapping[str, Any], *, source: Any, sink: Any) -> Namespacing:
        enabled = namespaced_identifiers(pipe, metadata)
        add = _switch("add_namespaces", source.config, pipe, enabled and source.adds_namespaces)
        remove = _switch("remove_namespaces", sink.config, pipe, enabled and sink.removes_namespaces)
        pipe_id = str(pipe.get("_id"))
        names = pipe.get("namespaces") if isinstance(pipe.get("namespaces"), Mapping) else {}
        spaces = (str(names.get("property", pipe_id)), str(names.get("identity", pipe_id)))
        return cls(spaces if add else None, remove)

    def before(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.add is None:
            return batch
        prop, ident = self.add
        return [apply_namespaces(e, prop, ident) for e in batch]

    def after(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [strip_wire_namespaces(e) for e in batch] if self.remove else batch


def _switch(name: str, component: Mapping[str, Any], pipe: Mapping[str, Any], default: bool) -> bool:
    for config in (component, pipe):
        if config.get(name) is not None:
            return config[name] is True
    return default


def strip_wire_namespaces(entity: dict[str, Any]) -> dict[str, Any]:
    """``remove_namespaces`` of one wire-form entity (see the module docstring)."""
    out: dict[str, Any] = {}
    for key, value in entity.items():
        if key == "_id":
            out[key] = value.partition(":")[2] or value if type(value) is str else value
        elif key.startswith("$"):
            out[key] = value
        else:
            out[key.rpartition(":")[2]] = _strip(value)
    return out


def _strip(value: Any) -> Any:
    kind = type(value)
    if kind is str:
        if value.startswith("~:"):
            _, colon, identifier = value[2:].partition(":")
            return "~:" + identifier if colon else value
        return value
    if kind is list:
        return [_strip(v) for v in value]
    if kind is dict:
        return {k if k.startswith("$") else k.rpartition(":")[2]: _strip(v) for k, v in value.items()}
    return value
