"""Wire values to bind parameters of SQL columns, for the ``sql`` sink (the inverse of :mod:`._sql_types`).

:func:`binder` makes, from a column's reflected type, the function that turns an entity property (wire form)
into what the driver binds. Transit strings are decoded first (``~f`` → Decimal, ``~t`` → datetime or date,
``~b`` → bytes, ``~u`` → UUID, ``~:``/``~r`` → their text, ``~~x`` → ``~x``), then fitted to the column:

* timestamps: a ``timestamp with time zone`` column gets the aware UTC instant, a naive one (``timestamp``,
  MySQL ``DATETIME``, SQLite) the wall-clock time in the system's ``timezone`` (what the ``sql`` source reads
  back), a MySQL ``TIMESTAMP`` the UTC time its UTC session expects; a date into a timestamp column is its
  midnight in that zone, a timestamp into a ``DATE`` column its date there;
* numbers: integer columns take integral values (a ``~f2`` or ``2.0`` is 2; ``2.5`` is an error), numeric
  columns Decimals (exact digits), float columns floats; booleans go to integer columns as 0/1;
* JSON columns, and text columns given a list or object, get JSON text (decimals as numbers with their
  digits, typed values as their text); a PostgreSQL array column gets a list of fitted items;
* text columns get typed values as their text (a decimal's digits, a timestamp's ISO form, bytes base64);
  binary columns bytes; ``uuid`` columns UUIDs.

A value that cannot be fitted raises :class:`UnfitValue` (the sink names the column and the entity).
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import math
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import sqlalchemy
from sqlalchemy.dialects import mysql

import storage

__all__ = ["Binder", "UnfitValue", "binder", "plain_json"]

UTC = _dt.UTC
Binder = Callable[[Any], Any]


class UnfitValue(ValueError):
    """A value that the column's type cannot hold."""


def _typed(value: Any) -> Any:
    """A wire value with its transit string decoded (containers stay wire form)."""
    if type(value) is str and value[:1] == "~":
        try:
            decoded = storage.decode(value)
        except ValueError:
            return value
        if isinstance(decoded, storage.NI | storage.URI):
            return decoded.value
        return decoded
    return value


def _text(value: Any) -> str:
    """A typed value as column text."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, _dt.datetime):
        return storage.format_datetime(value)
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict | list):
        return plain_json(value)
    return str(value)


def plain_json(value: Any) -> str:
    """Wire-form JSON as plain JSON text (``", "`` and ``": "`` between items, as ``json.dumps`` writes):
    decimals as numbers with their digits, typed values as their text."""
    kind = type(value)
    if kind is dict:
        return "{" + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)}: {plain_json(v)}"
                               for k, v in value.items()) + "}"
    if kind is list:
        return "[" + ", ".join(plain_json(v) for v in value) + "]"
    typed = _typed(value)
    if isinstance(typed, Decimal):
        return format(typed, "f") if typed.is_finite() else json.dumps(str(typed))
    if isinstance(typed, float) and not math.isfinite(typed):
        return json.dumps(str(typed))
    if typed is None or isinstance(typed, bool | int | float | str):
        return json.dumps(typed, ensure_ascii=False)
    return json.dumps(_text(typed), ensure_ascii=False)


def _integer(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal | float) and math.isfinite(value) and value == int(value):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise UnfitValue(f"{_show(value)} is not an integer")


def _numeric(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            return Decimal(value)
        except ArithmeticError:
            pass
    raise UnfitValue(f"{_show(value)} is not a number")


def _float(value: Any) -> Any:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float | Decimal):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise UnfitValue(f"{_show(value)} is not a number")


def _boolean(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise UnfitValue(f"{_show(value)} is not a boolean")


def _binary(value: Any) -> Any:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise UnfitValue(f"{_show(value)} is not binary")


def _uuid(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise UnfitValue(f"{_show(value)} is not a UUID")


def _timestamp(zone: _dt.tzinfo | None, tz: _dt.tzinfo) -> Binder:
    """A timestamp column's binder: aware UTC (``zone`` None) or naive wall-clock time in ``zone``."""

    def bind(value: Any) -> Any:
        if isinstance(value, _dt.datetime):
            moment = value if value.tzinfo is not None else value.replace(tzinfo=tz)
        elif isinstance(value, _dt.date):
            moment = _dt.datetime(value.year, value.month, value.day, tzinfo=tz)
        elif isinstance(value, str):
            try:
                moment = _dt.datetime.fromisoformat(value)
            except ValueError:
                raise UnfitValue(f"{_show(value)} is not a timestamp") from None
            moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)
        else:
            raise UnfitValue(f"{_show(value)} is not a timestamp")
        moment = moment.astimezone(UTC if zone is None else zone)
        plain = _dt.datetime(moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second,
                             moment.microsecond, tzinfo=moment.tzinfo)  # a storage.Datetime's nanoseconds go
        return plain if zone is None else plain.replace(tzinfo=None)

    return bind


def _date(tz: _dt.tzinfo) -> Binder:
    def bind(value: Any) -> Any:
        if isinstance(value, _dt.datetime):
            return (value if value.tzinfo is not None else value.replace(tzinfo=tz)).astimezone(tz).date()
        if isinstance(value, _dt.date):
            return value
        if isinstance(value, str):
            try:
                return _dt.date.fromisoformat(value)
            except ValueError:
                pass
        raise UnfitValue(f"{_show(value)} is not a date")

    return bind


def _time(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return _dt.time.fromisoformat(value)
        except ValueError:
            pass
    if isinstance(value, _dt.datetime):
        return value.timetz()
    raise UnfitValue(f"{_show(value)} is not a time of day")


def _json(value: Any) -> Any:
    return plain_json(value)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fit(kind: sqlalchemy.types.TypeEngine[Any], dialect: str, tz: _dt.tzinfo) -> Binder | None:
    """The binder of typed (decoded) values for a column type; None: values pass as they are."""
    if isinstance(kind, sqlalchemy.JSON):
        return _json
    if isinstance(kind, sqlalchemy.ARRAY):
        item = _fit(kind.item_type, dialect, tz)
        if item is None:
            return lambda value: [_typed(v) for v in value] if isinstance(value, list) else _typed(value)
        return lambda value: [None if v is None else item(_typed(v)) for v in value] if isinstance(value, list) \
            else item(_typed(value))
    if dialect == "mysql" and isinstance(kind, mysql.TIMESTAMP):
        return _timestamp(UTC, tz)  # the session's zone is UTC (system_mysql)
    if isinstance(kind, sqlalchemy.DateTime):
        return _timestamp(None if kind.timezone else tz, tz)
    if isinstance(kind, sqlalchemy.Date):
        return _date(tz)
    if isinstance(kind, sqlalchemy.Time):
        return _time
    if isinstance(kind, sqlalchemy.Boolean):
        return _boolean
    if dialect == "mysql" and isinstance(kind, mysql.TINYINT) and getattr(kind, "display_width", None) == 1:
        return lambda value: int(_boolean(value))
    if dialect == "mysql" and isinstance(kind, mysql.BIT):
        return lambda value: int(_boolean(value)) if isinstance(value, bool) else _integer(value)
    if isinstance(kind, sqlalchemy.Integer):
        return _integer
    if isinstance(kind, sqlalchemy.Float):
        return _float
    if isinstance(kind, sqlalchemy.Numeric):
        return _numeric
    if isinstance(kind, sqlalchemy.Uuid):
        return _uuid if dialect == "postgresql" else lambda value: str(_uuid(value))
    if isinstance(kind, sqlalchemy.LargeBinary | sqlalchemy.BINARY | sqlalchemy.VARBINARY):
        return _binary
    if isinstance(kind, sqlalchemy.String):
        return _text
    return None


def _sqlite(value: Any) -> Any:
    """SQLite's storage classes: decimals as their digits (NUMERIC affinity stores the number), times as
    ISO text (what ``datetime('now')`` writes and the ``sql`` source reads), UUIDs as text."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, _dt.datetime):
        return value.isoformat(" ")
    if isinstance(value, _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def binder(column: Mapping[str, Any], dialect: str, tz: _dt.tzinfo) -> Binder:
    """The function from a wire value to the bind value of a reflected ``column`` (``name``, ``type``)."""
    bind = _binder(column, dialect, tz)
    if dialect == "sqlite":
        return lambda value: _sqlite(bind(value))
    return bind


def _binder(column: Mapping[str, Any], dialect: str, tz: _dt.tzinfo) -> Binder:
    fit = _fit(column["type"], dialect, tz)
    if fit is None:  # a type we do not know (an enum, a geometry...): the value as text, the database casts
        fit = _text
    if fit is _json:
        return lambda value: None if value is None else plain_json(value)

    def bind(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, dict | list) and fit is not _text and not isinstance(column["type"], sqlalchemy.ARRAY):
            raise UnfitValue(f"a {'list' if isinstance(value, list) else 'object'} does not fit a "
                             f"{column['type']} column")
        return fit(value if isinstance(value, dict | list) else _typed(value))

    return bind
