"""The System extension point: a configured connection to the outside (HTTP client, SQL pool, ...).

A system type is one module ``system_<kind>.py`` that registers its class with :func:`system_type` under its
entity type (``system:url``) together with a JSON Schema of its config; the common properties of node-spec
10.0 are added to every schema. Building a system (:func:`build_system`) validates its config and never
touches the network; :meth:`System.open` creates its resources and :meth:`System.close` releases them (the
:class:`actors.SystemActor` does both). Config errors carry ``where``: a JSONPath relative to the entity
(``$['headers']['X-Key']``).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import jsonschema

from ._registry import ConfigError, component, registered

__all__ = ["COMMON_PROPERTIES", "SECONDS", "System", "build_system", "entity_path", "seconds", "system_type"]

DESCRIPTION = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
COMMON_PROPERTIES: dict[str, Any] = {
    "_id": {"type": "string", "minLength": 1, "pattern": "^[^/]+$"},
    "name": {"type": "string"},
    "description": DESCRIPTION,
    "comment": DESCRIPTION,
    "worker_threads": {"type": "integer", "minimum": 1},
    "permissions": {"type": "array", "items": {"type": "array"}},
    "metadata": {"type": "object"},
}
SECONDS: dict[str, Any] = {"anyOf": [  # config keeps fractions as transit decimals ("~f1.5")
    {"type": "number", "minimum": 0},
    {"type": "string", "pattern": r"^~f[0-9]+(\.[0-9]+)?$"},
]}


def system_type(type_name: str, schema: dict[str, Any]) -> Callable[[type], type]:
    """Class decorator: register a system type (``system:<kind>``) with the JSON Schema of its config."""
    full = dict(schema)
    full["properties"] = {**COMMON_PROPERTIES, **schema.get("properties", {})}
    full["required"] = ["_id", "type", *schema.get("required", [])]
    register = component("system", type_name, full)

    def named(cls: type) -> type:
        cls.type_name = type_name  # type: ignore[attr-defined]
        return register(cls)

    return named


def seconds(value: Any) -> float:
    """A duration from config: a number or a ``~f`` decimal."""
    if isinstance(value, str) and value.startswith("~f"):
        try:
            return float(Decimal(value[2:]))
        except InvalidOperation:
            raise ValueError("not a number of seconds") from None
    return float(value)


def entity_path(*keys: str | int) -> str:
    """A JSONPath inside a config entity: ``entity_path("headers", "X")`` is ``$['headers']['X']``."""
    return "$" + "".join(f"[{k}]" if isinstance(k, int) else f"['{k}']" for k in keys)


class System:
    """A configured system. Subclasses check their config in ``__init__`` (raising :class:`ConfigError`),
    make their resources in :meth:`open` and release them in :meth:`close`.
    """

    type_name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {"worker_threads": 10}  # filled into the effective config

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.id: str = config["_id"]
        self.worker_threads: int = int(config.get("worker_threads", 10))
        self.is_open = False

    def setting(self, name: str) -> Any:
        """A config value, or its default."""
        return self.config.get(name, type(self).defaults.get(name))

    async def open(self) -> None:
        """Create the resources (clients, pools); must not need the remote end to be up."""
        self.is_open = True

    async def close(self) -> None:
        """Release the resources; safe to call when not open."""
        self.is_open = False

    def status(self) -> dict[str, Any]:
        """JSON for the API (never a config value that could be a secret)."""
        return {"type": self.config.get("type"), "is-open": self.is_open, "worker-threads": self.worker_threads}


def build_system(config: dict[str, Any]) -> System:
    """Validate a (substituted) system config against its type's spec and build the system (not opened).

    A short type (``"url"``) is taken as ``system:url``. Raises :class:`ConfigError` whose ``where`` is the
    JSONPath of the problem inside the entity.
    """
    type_name = config.get("type")
    if not isinstance(type_name, str):
        raise ConfigError("the system has no 'type'", where=entity_path("type"))
    if not type_name.startswith("system:"):
        type_name = f"system:{type_name}"
        config = {**config, "type": type_name}
    specs = {spec.type: spec for spec in registered("system")}
    spec = specs.get(type_name)
    if spec is None:
        known = ", ".join(sorted(specs))
        raise ConfigError(f"unknown or unsupported system type '{type_name}' (supported: {known})",
                          where=entity_path("type"))
    validator = jsonschema.Draft202012Validator(spec.schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        error = errors[0]
        raise ConfigError(error.message, where=entity_path(*error.absolute_path))
    system: System = spec.factory(config)
    return system
