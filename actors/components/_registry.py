"""The component registry: each source, transform, sink and system type registers itself by name with a spec.

A spec is a JSON Schema for the component's config. The same schema validates uploaded config (errors
name the path inside the pipe) and documents the component. Modules named ``source_*``, ``transform_*``,
``sink_*`` and ``system_*`` in this package are imported automatically. System types register under their
full entity type (``system:url``).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsonschema

__all__ = ["ComponentSpec", "ConfigError", "component", "lookup", "registered", "validate_component"]

KINDS = ("source", "transform", "sink", "system")


class ConfigError(ValueError):
    """Invalid config, with where it is (``pipe <id>: source.dataset: ...``)."""

    def __init__(self, message: str, *, where: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.detail = message


@dataclass(frozen=True)
class ComponentSpec:
    kind: str
    type: str
    factory: Callable[..., Any]
    schema: dict[str, Any]
    description: str


_SPECS: dict[tuple[str, str], ComponentSpec] = {}
_loaded = False


def component(kind: str, type_name: str, schema: dict[str, Any]) -> Callable[[type], type]:
    """Class decorator: register a component type with the JSON Schema of its config. A class with a
    ``schema_properties()`` class method (sources: the continuation flags) contributes those properties;
    the ones ``schema`` names win."""
    if kind not in KINDS:
        raise ValueError(f"unknown component kind {kind!r}")

    def register(cls: type) -> type:
        key = (kind, type_name)
        if key in _SPECS:
            raise RuntimeError(f"{kind} type {type_name!r} registered twice")
        full_schema = {"type": "object", "required": ["type"], **schema}
        full_schema.setdefault("properties", {})
        common = getattr(cls, "schema_properties", None)
        full_schema["properties"] = {"type": {"const": type_name}, "comment": {},
                                     **(common() if common is not None else {}), **full_schema["properties"]}
        jsonschema.Draft202012Validator.check_schema(full_schema)
        _SPECS[key] = ComponentSpec(kind, type_name, cls, full_schema, (cls.__doc__ or "").strip())
        return cls

    return register


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    package = importlib.import_module(__package__ or "actors.components")
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.split("_", 1)[0] in KINDS:
            importlib.import_module(f"{package.__name__}.{info.name}")


def registered(kind: str | None = None) -> list[ComponentSpec]:
    _load()
    return [spec for spec in _SPECS.values() if kind is None or spec.kind == kind]


def lookup(kind: str, config: Any, where: str) -> ComponentSpec:
    """The spec of a component config, validated; raises :class:`ConfigError` naming the path."""
    _load()
    if not isinstance(config, dict):
        raise ConfigError(f"a {kind} must be an object", where=where)
    type_name = config.get("type")
    if not isinstance(type_name, str):
        raise ConfigError(f"the {kind} has no 'type'", where=where)
    spec = _SPECS.get((kind, type_name))
    if spec is None:
        known = ", ".join(sorted(t for k, t in _SPECS if k == kind))
        raise ConfigError(f"unknown {kind} type {type_name!r} (known: {known})", where=where + ".type")
    validate_component(spec, config, where)
    return spec


def validate_component(spec: ComponentSpec, config: dict[str, Any], where: str) -> None:
    validator = jsonschema.Draft202012Validator(spec.schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        raise ConfigError(error.message, where=where + path)
