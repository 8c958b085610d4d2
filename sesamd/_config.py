"""Config entities: parsing, structural validation, ``$ENV``/``$SECRET`` substitution, hashing, rendering.

Config is a JSON array of entities ``{"_id", "type", ...}`` (node-spec 3.1). It is parsed into wire form
(``25.00`` becomes ``"~f25.00"`` so decimals keep their digits) and rendered back with plain numbers.
Validation errors use Sesam's ``PipeConfigError`` shape: ``{"elements", "level", "msg"}`` where
``elements`` is a JSONPath into the upload (``$[2]['source']['type']``) and ``msg`` names the entity.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import xxhash

import storage

__all__ = [
    "RESERVED_PIPE_IDS",
    "ConfigDiff",
    "ConfigValidationError",
    "SubstitutionError",
    "config_error",
    "diff",
    "entity_hash",
    "entity_kind",
    "group_of",
    "parse_config",
    "parse_upload",
    "render_json",
    "secret_names",
    "substitute",
    "unresolved",
    "validate_structure",
]

RESERVED_PIPE_IDS = frozenset({"run-all-pipes", "stop-run-all-pipes", "get-run-all-pipes-log",
                               "get-pipe-runner-status", "delete-all-sink-datasets"})
SYSTEM_KINDS = frozenset({"url", "rest", "microservice", "postgresql", "mysql", "sqlserver", "mssql", "oracle",
                          "oracle_tns", "ldap", "elasticsearch", "kafka", "smtp", "solr", "twilio", "sqlite"})

_REFERENCE = re.compile(r"\$(ENV|SECRET)\(([^()$]*)\)")


class ConfigValidationError(ValueError):
    """An upload with errors: ``errors`` is a list of ``{"elements", "level", "msg"}``."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        shown = "; ".join(e["msg"] for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"invalid config: {shown}{more}")


class SubstitutionError(ValueError):
    """An undefined or misplaced ``$ENV``/``$SECRET`` reference; ``path`` is where it is."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


def config_error(elements: str, msg: str, level: str = "error") -> dict[str, Any]:
    return {"elements": elements, "level": level, "msg": msg}


def json_path(base: str, *keys: str | int) -> str:
    """Extend a JSONPath: ``json_path("$[0]", "source", "type")`` is ``$[0]['source']['type']``."""
    return base + "".join(f"[{k}]" if isinstance(k, int) else f"['{k}']" for k in keys)


def parse_config(data: bytes | str) -> Any:
    """Parse an uploaded config (JSON) into wire form; raises ConfigValidationError for bad JSON."""
    try:
        return storage.parse_json(data)
    except storage.JSONError as exc:
        raise ConfigValidationError([config_error("$", f"the config is not valid JSON: {exc}")]) from None


class _Literal(str):
    """A JSON number with a fraction or exponent, as written."""


def parse_upload(data: bytes | str) -> tuple[Any, Any]:
    """An upload in wire form (to run) and in display form (to give back exactly as uploaded).

    The display form escapes strings that start with ``~`` (``"~f22.1"`` becomes ``"~~f22.1"``) and writes
    fractions as ``~f`` literals with their digits, so :func:`render_json` gives back the upload's values.
    """
    wire = parse_config(data)
    return wire, _display(json.loads(data, parse_float=_Literal))


def _display(value: Any) -> Any:
    if isinstance(value, str):
        if isinstance(value, _Literal):
            return "~f" + value
        return "~" + value if value.startswith("~") else value
    if isinstance(value, list):
        return [_display(v) for v in value]
    if isinstance(value, dict):
        return {k: _display(v) for k, v in value.items()}
    return value


def entity_kind(entity: Mapping[str, Any]) -> str:
    """``pipe``, ``system`` or ``metadata`` (for a structurally valid entity)."""
    kind = entity["type"]
    if kind in ("pipe", "metadata"):
        return kind
    return "system"


def group_of(entity: Any) -> str | None:
    """The config group of an entity, named by its ``metadata.$config-group`` (None: the default group)."""
    metadata = entity.get("metadata") if isinstance(entity, Mapping) else None
    group = metadata.get("$config-group") if isinstance(metadata, Mapping) else None
    return group if isinstance(group, str) and group else None


def validate_structure(entities: Any) -> list[dict[str, Any]]:
    """Check the shape of a config upload: an array of objects with unique, valid ``_id`` and ``type``."""
    if not isinstance(entities, list):
        return [config_error("$", "the config must be a JSON array of config entities")]
    errors: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for position, entity in enumerate(entities):
        where = f"$[{position}]"
        if not isinstance(entity, dict):
            errors.append(config_error(where, f"config entity #{position} must be a JSON object"))
            continue
        entity_id = entity.get("_id")
        if not isinstance(entity_id, str) or not entity_id:
            errors.append(config_error(json_path(where, "_id"),
                                       f"config entity #{position}: '_id' must be a non-empty string"))
            continue
        name = f"'{entity_id}'"
        if entity_id in seen:
            errors.append(config_error(json_path(where, "_id"),
                                       f"{name}: duplicate _id (also config entity #{seen[entity_id]})"))
        seen.setdefault(entity_id, position)
        kind = entity.get("type")
        if not isinstance(kind, str):
            errors.append(config_error(json_path(where, "type"), f"{name}: 'type' must be a string"))
            continue
        if kind == "metadata":
            if entity_id != "node":
                errors.append(config_error(json_path(where, "_id"),
                                           f"{name}: the metadata entity must have _id 'node'"))
        elif kind == "pipe" or kind.startswith("system:") or kind in SYSTEM_KINDS:
            if "/" in entity_id:
                errors.append(config_error(json_path(where, "_id"), f"{name}: ids may not contain '/'"))
            if kind == "pipe" and entity_id in RESERVED_PIPE_IDS:
                errors.append(config_error(json_path(where, "_id"), f"{name}: this pipe id is reserved"))
            if kind.startswith("system:") and kind[7:] not in SYSTEM_KINDS:
                errors.append(config_error(json_path(where, "type"), f"{name}: unknown system type '{kind}'"))
        else:
            errors.append(config_error(json_path(where, "type"),
                                       f"{name}: unknown type '{kind}' (expected pipe, metadata or system:<kind>)"))
    return errors


def substitute(value: Any, env: Mapping[str, Any], secrets: Mapping[str, Any] | None = None,
               path: str = "$") -> Any:
    """Replace ``$ENV(name)`` (and ``$SECRET(name)`` when ``secrets`` is given) in every string.

    A string that is exactly one reference takes the variable's JSON value as it is; a composite string
    always yields a string. ``secrets=None`` leaves ``$SECRET`` references in place (for showing config).
    In a ``conditional`` component only the alternative its condition chooses is substituted; the others
    are left as they are, so their variables need not be defined. Raises SubstitutionError naming the
    variable and the path.
    """
    if isinstance(value, str):
        if "$" not in value:
            return value
        return _substitute_string(value, env, secrets, path)
    if isinstance(value, list):
        return [substitute(v, env, secrets, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        if _is_conditional(value):
            return _substitute_conditional(value, env, secrets, path)
        return {k: substitute(v, env, secrets, f"{path}['{k}']") for k, v in value.items()}
    return value


def _is_conditional(value: Mapping[str, Any]) -> bool:
    return value.get("type") == "conditional" and "condition" in value and isinstance(value.get("alternatives"), dict)


def _substitute_conditional(component: dict[str, Any], env: Mapping[str, Any], secrets: Mapping[str, Any] | None,
                            path: str) -> dict[str, Any]:
    """A conditional source, transform or sink (node-spec 6.4) with its condition and its chosen alternative
    substituted (the engine picks the alternative the same way: a non-string condition by its JSON text)."""
    result = {k: substitute(v, env, secrets, f"{path}['{k}']") for k, v in component.items() if k != "alternatives"}
    condition = result["condition"]
    chosen = condition if isinstance(condition, str) else orjson.dumps(condition).decode()
    alternatives = component["alternatives"]
    result["alternatives"] = {
        key: substitute(alternative, env, secrets, f"{path}['alternatives']['{key}']") if key == chosen
        else alternative for key, alternative in alternatives.items()}
    return result


def _substitute_string(text: str, env: Mapping[str, Any], secrets: Mapping[str, Any] | None, path: str) -> Any:
    def resolve(kind: str, name: str) -> Any:
        if kind == "ENV":
            if name not in env:
                raise SubstitutionError(f"undefined environment variable '{name}' ($ENV({name}))", path)
            return env[name]
        if secrets is None:
            return f"$SECRET({name})"
        if name not in secrets:
            raise SubstitutionError(f"undefined secret '{name}' ($SECRET({name}))", path)
        return secrets[name]

    whole = _REFERENCE.fullmatch(text)
    if whole:
        return resolve(whole.group(1), whole.group(2))

    def replace(match: re.Match[str]) -> str:
        value = resolve(match.group(1), match.group(2))
        return value if isinstance(value, str) else orjson.dumps(value).decode()

    return _REFERENCE.sub(replace, text)


def unresolved(text: str) -> bool:
    """Whether a string still holds a ``$ENV``/``$SECRET`` reference (as in an alternative not chosen)."""
    return _REFERENCE.search(text) is not None


def secret_names(value: Any) -> set[str]:
    """The secret names an entity refers to."""
    names: set[str] = set()
    _walk_strings(value, lambda s: names.update(m.group(2) for m in _REFERENCE.finditer(s) if m.group(1) == "SECRET"))
    return names


def _walk_strings(value: Any, visit: Any) -> None:
    if isinstance(value, str):
        if "$" in value:
            visit(value)
    elif isinstance(value, list):
        for item in value:
            _walk_strings(item, visit)
    elif isinstance(value, dict):
        for item in value.values():
            _walk_strings(item, visit)


def entity_hash(*parts: Any) -> str:
    """A content hash of one or more wire-form values (key order never matters)."""
    digest = xxhash.xxh3_128()
    for part in parts:
        digest.update(storage.canonical(part))
        digest.update(b"\x1e")
    return digest.hexdigest()


@dataclass(frozen=True)
class ConfigDiff:
    """What applying a new config does to the running components, by id."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    unchanged: tuple[str, ...]


def diff(old: Mapping[str, str], new: Mapping[str, str]) -> ConfigDiff:
    """Compare ``id -> hash`` maps of the running and the new config."""
    return ConfigDiff(
        added=tuple(k for k in new if k not in old),
        removed=tuple(k for k in old if k not in new),
        changed=tuple(k for k in new if k in old and old[k] != new[k]),
        unchanged=tuple(k for k in new if k in old and old[k] == new[k]),
    )


def render_json(value: Any, *, indent: int | None = 2) -> bytes:
    """JSON of a wire-form config value with ``~f`` decimals written back as plain numbers."""
    out: list[str] = []
    _render(value, out, indent, 0)
    return "".join(out).encode()


def _render(value: Any, out: list[str], indent: int | None, depth: int) -> None:
    if isinstance(value, str):
        if value.startswith("~f") and _is_number(value[2:]):
            out.append(value[2:])
        elif value.startswith("~~"):  # an escaped string that starts with "~"
            out.append(orjson.dumps(value[1:]).decode())
        else:
            out.append(orjson.dumps(value).decode())
        return
    if isinstance(value, dict | list) and value:
        pad = "" if indent is None else "\n" + " " * (indent * (depth + 1))
        end = "" if indent is None else "\n" + " " * (indent * depth)
        sep = ": " if indent is not None else ":"
        items: Iterable[Any] = value.items() if isinstance(value, dict) else value
        out.append("{" if isinstance(value, dict) else "[")
        for i, item in enumerate(items):
            if i:
                out.append(",")
            out.append(pad)
            if isinstance(value, dict):
                out.append(orjson.dumps(item[0]).decode() + sep)
                item = item[1]
            _render(item, out, indent, depth + 1)
        out.append(end + ("}" if isinstance(value, dict) else "]"))
        return
    if isinstance(value, int) and not isinstance(value, bool):
        out.append(str(value))  # any size (JSON has no limit; orjson stops at 64 bits)
        return
    out.append(storage.dumps(value).decode())


_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def _is_number(text: str) -> bool:
    return _NUMBER.fullmatch(text) is not None
