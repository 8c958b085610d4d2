"""The ``json_schema`` transform: marks each entity valid or invalid against a JSON Schema (node-spec 7.5).

Every entity comes out (none is dropped): ``key_valid`` (``"valid"``) is set to true or false, and an
invalid entity also gets ``key_errors`` (``"errors"``), the list of the ``jsonschema`` messages; an error
below the root starts with its JSON path in the entity (``"$.address.zip: 'x' is not of type 'integer'"``).

The validator sees each entity as plain JSON: decimals (``~f``) and floats (``~d``) are numbers (an integral
decimal is also an ``integer``), datetimes and dates (``~t``), URIs, UUIDs and bytes (base64) are the strings
after their tag (so ``format: date-time`` works), ``~~x`` is ``~x``, and a namespaced identifier keeps its
``~:`` form. The configured schema (in wire form, like all config) is read the same way. The validator class
follows the schema's ``$schema`` (Draft 7 without one), formats are checked, and the schema is compiled when
the pipe is built. Deleted entities, and those ``trigger_on`` does not select, pass through untouched.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Any

import jsonschema

import storage

from ._base import BuildContext, Transform
from ._errors import TerminalError
from ._registry import ConfigError, component

__all__ = ["JSONSchemaTransform"]


class _Number(Decimal):
    """A decimal that shows as its JSON literal in messages (``1.5``, not ``Decimal('1.5')``)."""

    def __repr__(self) -> str:
        return str(self)


def _plain(value: Any) -> Any:
    """The JSON value the schema sees for a wire-form value (see the module docstring)."""
    kind = type(value)
    if kind is dict:
        return {key: _plain(item) for key, item in value.items()}
    if kind is list:
        return [_plain(item) for item in value]
    if kind is not str or len(value) < 2 or value[0] != "~":
        return value
    typed = storage.decode(value)
    if isinstance(typed, str | float):
        return typed  # a plain string (also an escaped "~~x") or a ~d float
    if isinstance(typed, Decimal):
        return _Number(typed)
    if isinstance(typed, storage.NI):
        return value
    return value[2:]  # datetime, date, URI, UUID, bytes: their text


def _numbers(cls: Any) -> Any:
    """``cls`` where an integral decimal is an ``integer`` and ``multipleOf`` mixes decimals and floats
    (Python's ``Decimal`` and ``float`` don't)."""
    base_checker = cls.TYPE_CHECKER

    def is_integer(checker: Any, instance: Any) -> bool:
        if isinstance(instance, Decimal):
            return instance.is_finite() and instance == instance.to_integral_value()
        return bool(base_checker.is_type(instance, "integer"))

    def multiple_of(base: Any) -> Any:
        def check(validator: Any, divisor: Any, instance: Any, schema: Any) -> Any:
            if not isinstance(instance, Decimal) and not isinstance(divisor, Decimal):
                yield from base(validator, divisor, instance, schema)
            elif validator.is_type(instance, "number"):
                exact = [Fraction(Decimal(repr(v)) if isinstance(v, float) else v) for v in (instance, divisor)]
                if (exact[0] / exact[1]).denominator != 1:
                    yield jsonschema.ValidationError(f"{instance!r} is not a multiple of {divisor!r}")
        return check

    numbers = {k: multiple_of(cls.VALIDATORS[k]) for k in ("multipleOf", "divisibleBy") if k in cls.VALIDATORS}
    return jsonschema.validators.extend(cls, numbers, type_checker=base_checker.redefine("integer", is_integer))


def _path(path: Any) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def compile_schema(schema: Any, where: str) -> Any:
    """A validator for ``schema`` (plain JSON); a bad schema is a :class:`ConfigError` at ``where``."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        try:
            cls = jsonschema.validators.validator_for(schema) if "$schema" in schema else jsonschema.Draft7Validator
        except (DeprecationWarning, TypeError):  # TypeError: a $schema that is not a string
            raise ConfigError(f"unknown $schema {schema.get('$schema')!r}", where=where + ".$schema") from None
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ConfigError(f"not a valid JSON Schema: {exc.message}", where=where + _path(exc.path)) from None
    return _numbers(cls)(schema, format_checker=cls.FORMAT_CHECKER)


def _trigger(spec: Mapping[str, Any] | None) -> Callable[[dict[str, Any]], bool] | None:
    """The ``trigger_on`` predicate (as DTL's: the dotted ``key``'s string value matches ``value``)."""
    if spec is None:
        return None
    steps = [s for s in spec.get("key", "_trigger").split(".") if s]
    pattern = re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                                 for c in spec["value"]) + r"\Z", re.DOTALL)

    def triggered(entity: dict[str, Any]) -> bool:
        value: Any = entity
        for step in steps:
            if not isinstance(value, dict) or step not in value:
                return False
            value = value[step]
        value = storage.decode(value)
        return isinstance(value, str) and pattern.match(value) is not None

    return triggered


@component("transform", "json_schema", {
    "properties": {
        "schema": {"type": "object"},
        "schema_url": {"type": "string"},
        "system": {"type": "string"},
        "key_valid": {"type": "string", "minLength": 1},
        "key_errors": {"type": "string", "minLength": 1},
        "trigger_on": {"type": "object", "required": ["value"],
                       "properties": {"key": {"type": "string"}, "value": {"type": "string"}}},
        "side_effects": {"type": "boolean"},
    },
})
class JSONSchemaTransform(Transform):
    """Sets ``valid`` (``key_valid``) on each entity, and on invalid ones ``errors`` (``key_errors``)."""

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        super().__init__(config, context)
        where = f"pipe {context.pipe_id}: {context.where}"
        if "schema" not in config:
            message = ("schema_url is not supported: put the schema in 'schema'" if "schema_url" in config
                       else "'schema' is a required property")
            raise ConfigError(message, where=where + ".schema")
        self.validator = compile_schema(_plain(config["schema"]), where + ".schema")
        self.key_valid: str = config.get("key_valid", "valid")
        self.key_errors: str = config.get("key_errors", "errors")
        self.trigger = _trigger(config.get("trigger_on"))

    def errors(self, entity: dict[str, Any]) -> list[str]:
        """The validation messages for a wire-form entity (empty when it is valid)."""
        try:
            found = list(self.validator.iter_errors(_plain(entity)))
        except Exception as exc:  # e.g. a $ref that cannot be resolved: the schema, not the entity
            raise TerminalError(f"entity {entity.get('_id')!r}: the JSON Schema could not be applied: "
                                f"{type(exc).__name__}: {exc}") from exc
        return [f"{e.json_path}: {e.message}" if e.absolute_path else e.message for e in found]

    def transform(self, batch: list[dict[str, Any]], *,
                  bound: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        out = []
        for entity in batch:
            if entity.get("_deleted") is True or (self.trigger is not None and not self.trigger(entity)):
                out.append(entity)
                continue
            errors = self.errors(entity)
            entity = {**entity, self.key_valid: not errors}
            if errors:
                entity[self.key_errors] = errors
            out.append(entity)
        return out

