"""Database values to wire form and back, for the ``sql`` source (node-spec 1.4, 6.10).

The drivers already type most values (psycopg 3 for PostgreSQL, PyMySQL for MySQL/MariaDB, sqlite3); this
module turns each into its wire form (:func:`wire`):

* integers, booleans and strings stay themselves (a string that starts with a transit tag is escaped
  ``~~``, as :func:`storage.encode` does); floats stay floats, but NaN and the infinities (which JSON lacks)
  become the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``;
* NUMERIC/DECIMAL → ``~f`` with the database's digits (``1.50`` stays ``~f1.50``, never ``1.5`` or ``1E+1``);
  a numeric NaN becomes the string ``"NaN"``;
* timestamps → ``~t`` in UTC: an aware value (``timestamp with time zone``) is converted, a naive one
  (``timestamp``, MySQL ``DATETIME``) is read in the system's ``timezone`` first; a MySQL ``TIMESTAMP`` (an
  instant, shown in the session's UTC: :class:`~actors.components.system_mysql.MysqlSystem`) is UTC;
* DATE → the transit date ``~t2015-12-31`` (a date has no time zone, so it is not shifted);
* TIME → the string ``"HH:MM:SS[.ffffff]"`` (with ``+HH:MM`` for PostgreSQL ``timetz``); an interval (and
  MySQL ``TIME``, which PyMySQL reads as a duration) → ``"[-]H:MM:SS[.ffffff]"``, hours unbounded;
* binary (``bytea``, ``BLOB``, ``VARBINARY``) → ``~b`` base64; ``uuid`` → ``~u``;
* ``json``/``jsonb`` → the parsed JSON in wire form, fractions as ``~f`` keeping their digits (as the node
  parses JSON from outside); arrays → lists of converted values; ``inet``/``cidr`` → strings.

Any other value (a PostgreSQL range, say) fails the run, naming the column: blacklist it or cast it in a
``query`` (node-spec 6.10).

Some columns need their declared type, because the driver returns a plain value (:func:`column_hints`,
:func:`description_hints`): MySQL ``TINYINT(1)``/``BOOLEAN`` and ``BIT(1)`` → booleans (``BIT(n)`` → an
integer), ``JSON`` (MySQL's type, or a MariaDB column with a ``json_valid`` check when read with ``table``)
→ parsed, MariaDB ``UUID`` → ``~u``; SQLite columns declared ``DATETIME``/``TIMESTAMP``, ``DATE``,
``BOOLEAN``, ``NUMERIC``/``DECIMAL`` or ``JSON`` → those types. SQLite knows declared types only for a
``table``: what a ``query`` returns stays as stored (text, integer, real, blob).
"""

from __future__ import annotations

import base64
import datetime as _dt
import ipaddress
import json
import math
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

import sqlalchemy
from sqlalchemy.dialects import mysql

import storage

__all__ = ["Hint", "UnsupportedValue", "Wire", "bind_since", "column_hints", "description_hints",
           "is_instant_column", "json_checked_columns", "key_text", "pg_json_loads", "updated_value", "wire"]

UTC = _dt.UTC
_JSON_VALID = re.compile(r"json_valid\(\s*`?([^`)\s]+)`?\s*\)", re.IGNORECASE)
_MYSQL_TINY, _MYSQL_TIMESTAMP, _MYSQL_BIT, _MYSQL_JSON = 1, 7, 16, 245  # PyMySQL FIELD_TYPE codes


class UnsupportedValue(TypeError):
    """A database value with no wire form."""


class Wire:
    """A value already in wire form (JSON parsed by :func:`pg_json_loads`): passed through as it is."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def pg_json_loads(data: bytes | str) -> Wire:
    """psycopg's loader for ``json``/``jsonb``: the node's external-JSON parse, fractions kept as ``~f``."""
    return Wire(storage.parse_json(data))


# -- values -> wire form -------------------------------------------------------------------------------------


def _float(value: float) -> Any:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _decimal(value: Decimal) -> Any:
    if not value.is_finite():
        return "NaN" if value.is_nan() else ("Infinity" if value > 0 else "-Infinity")
    return "~f" + format(value, "f")


def _instant(value: _dt.datetime, tz: _dt.tzinfo) -> _dt.datetime:
    """The UTC instant of a database timestamp (a naive one is in ``tz``)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)


def _duration(value: _dt.timedelta) -> str:
    micros = (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
    sign = "-" if micros < 0 else ""
    seconds, fraction = divmod(abs(micros), 1_000_000)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    return f"{sign}{hours}:{minute:02d}:{second:02d}" + (f".{fraction:06d}" if fraction else "")


def wire(value: Any, tz: _dt.tzinfo) -> Any:
    """The wire form of a database value (see the module docstring); raises :class:`UnsupportedValue`."""
    kind = type(value)
    if kind is str:
        return value if value[:1] != "~" else storage.encode(value)  # escapes "~t..." as "~~t..."
    if kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return _float(value)
    if kind is Decimal:
        return _decimal(value)
    if isinstance(value, _dt.datetime):
        return "~t" + storage.format_datetime(_instant(value, tz))
    if isinstance(value, _dt.date):
        return "~t" + value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return "~b" + base64.b64encode(bytes(value)).decode("ascii")
    if kind is Wire:
        return value.value
    if isinstance(value, uuid.UUID):
        return "~u" + str(value)
    if isinstance(value, list | tuple):
        return [wire(item, tz) for item in value]
    if isinstance(value, dict):
        return {str(key): wire(item, tz) for key, item in value.items()}
    if isinstance(value, _dt.time):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return _duration(value)
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address | ipaddress.IPv4Network
                  | ipaddress.IPv6Network | ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        return str(value)
    if isinstance(value, str):  # a str subclass
        return wire(str(value), tz)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _float(float(value))
    raise UnsupportedValue(f"a {kind.__module__}.{kind.__qualname__} value has no wire form")


def updated_value(value: Any, tz: _dt.tzinfo) -> Any:
    """The ``_updated`` of a row: the wire form of the updated column, made to compare as its values do.

    Timestamps get all nine fraction digits (``~t2024-01-02T03:04:05.500000000Z``, still valid transit), so
    that two of them compare as strings in time order (the ``max`` strategy compares ``_updated`` values as
    they are); integral decimals become integers. A non-integral decimal stays ``~f`` (which does not
    compare as its numbers do: prefer integer or timestamp columns)."""
    if isinstance(value, _dt.datetime):
        moment = _instant(value, tz)
        return (f"~t{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}:"
                f"{moment.second:02d}.{moment.microsecond * 1000 + getattr(moment, 'nanosecond', 0):09d}Z")
    if type(value) is Decimal and value.is_finite() and value == value.to_integral_value():
        return int(value)
    return wire(value, tz)


def key_text(value: Any, tz: _dt.tzinfo) -> str:
    """A primary key column's value as text for ``_id`` (typed values without their transit tag)."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    converted = wire(value, tz)
    if isinstance(converted, str):
        return converted[2:] if converted[:1] == "~" else converted  # "~f1.50" -> "1.50", "~u..." -> the uuid
    if isinstance(converted, int | float):
        return str(converted)
    return json.dumps(converted, separators=(",", ":"), sort_keys=True)


# -- since -> bind value -----------------------------------------------------------------------------------


def bind_since(since: Any, dialect: str, tz: _dt.tzinfo, *, utc: bool = False) -> Any:
    """The bind value of a since (wire form, as the pipe's offset keeps it) for ``:since``/``>=``.

    A ``~t`` timestamp becomes a naive datetime in the system's time zone (PostgreSQL sessions are in that
    zone too, so ``timestamp with time zone`` columns compare right), or in UTC when ``utc`` (a MySQL
    ``TIMESTAMP`` column, which its UTC sessions show in UTC); a transit date
    a date; a ``~f`` decimal a Decimal. SQLite has no date types: it gets the text ``YYYY-MM-DD
    HH:MM:SS[.ffffff]`` (as ``datetime('now')`` writes), and a decimal as text. Any other value is bound as
    it is (a plain ``initial_since_value`` string is left to the database to cast)."""
    value = storage.decode(since) if isinstance(since, str) else since
    if isinstance(value, _dt.datetime):
        local = value.astimezone(UTC if utc else tz) if value.tzinfo is not None else value
        value = _dt.datetime(local.year, local.month, local.day, local.hour, local.minute, local.second,
                             local.microsecond)
        return value.isoformat(" ") if dialect == "sqlite" else value
    if isinstance(value, _dt.date):
        return value.isoformat() if dialect == "sqlite" else value
    if isinstance(value, Decimal):
        return format(value, "f") if dialect == "sqlite" else value
    if isinstance(value, uuid.UUID):
        return str(value) if dialect != "postgresql" else value
    if isinstance(value, bytes):
        return value
    if isinstance(value, storage.NI | storage.URI):
        return value.value
    return value


# -- declared types ----------------------------------------------------------------------------------------

Hint = Callable[[Any], Any]


def _as_bool(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return any(value)
    return bool(value) if isinstance(value, int | float | Decimal) else value


def _bits(value: Any) -> Any:
    return int.from_bytes(value, "big") if isinstance(value, bytes | bytearray) else value


def _json_text(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | str):
        try:
            return Wire(storage.parse_json(value))
        except storage.JSONError:
            return value
    return value


def _utc(value: Any) -> Any:
    return value.replace(tzinfo=UTC) if isinstance(value, _dt.datetime) and value.tzinfo is None else value


def _uuid_text(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            return value
    return value


def _sqlite_datetime(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return _dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def _sqlite_date(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return _dt.date.fromisoformat(value)
        except ValueError:
            return value
    return value


def _sqlite_decimal(scale: int | None) -> Hint:
    """SQLite keeps NUMERIC values as integers or reals: a Decimal of their shortest repr, at the declared
    scale (``NUMERIC(10,2)`` gives ``1.50``)."""
    quantum = Decimal(1).scaleb(-scale) if scale is not None and 0 <= scale <= 100 else None

    def convert(value: Any) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            number = Decimal(value)
        elif isinstance(value, float) and math.isfinite(value):
            number = Decimal(repr(value))
        elif isinstance(value, str):
            try:
                number = Decimal(value)
            except ArithmeticError:
                return value
        else:
            return value
        if quantum is not None and number.is_finite():
            try:
                return number.quantize(quantum)
            except ArithmeticError:
                return number
        return number

    return convert


def column_hints(dialect: str, columns: Iterable[Mapping[str, Any]], json_columns: Iterable[str] = ()
                 ) -> dict[str, Hint]:
    """Per-column pre-conversions from reflected column types (``table`` reads). ``json_columns`` are
    columns known to hold JSON (MariaDB: a ``json_valid`` check)."""
    hints: dict[str, Hint] = {}
    jsons = set(json_columns)
    for column in columns:
        name, kind = column["name"], column["type"]
        hint: Hint | None = None
        if name in jsons or isinstance(kind, sqlalchemy.JSON):
            hint = _json_text
        elif dialect == "mysql":
            if (isinstance(kind, mysql.TINYINT) and getattr(kind, "display_width", None) == 1) \
                    or isinstance(kind, sqlalchemy.Boolean):
                hint = _as_bool
            elif isinstance(kind, mysql.BIT):
                hint = _as_bool if (kind.length or 1) == 1 else _bits
            elif isinstance(kind, sqlalchemy.Uuid):
                hint = _uuid_text
            elif isinstance(kind, mysql.TIMESTAMP):
                hint = _utc
        elif dialect == "sqlite":
            if isinstance(kind, sqlalchemy.DateTime):
                hint = _sqlite_datetime
            elif isinstance(kind, sqlalchemy.Date):
                hint = _sqlite_date
            elif isinstance(kind, sqlalchemy.Boolean):
                hint = _as_bool
            elif isinstance(kind, sqlalchemy.Numeric) and not isinstance(kind, sqlalchemy.Float):
                hint = _sqlite_decimal(getattr(kind, "scale", None))
        if hint is not None:
            hints[name] = hint
    return hints


def is_instant_column(dialect: str, column: Mapping[str, Any]) -> bool:
    """Whether a reflected column holds instants its session shows in UTC (MySQL ``TIMESTAMP``)."""
    return dialect == "mysql" and isinstance(column["type"], mysql.TIMESTAMP)


def json_checked_columns(checks: Iterable[Mapping[str, Any]]) -> list[str]:
    """The columns a MariaDB ``CHECK (json_valid(col))`` constraint marks as JSON."""
    found = []
    for check in checks:
        found += _JSON_VALID.findall(str(check.get("sqltext", "")))
    return found


def description_hints(dialect: str, description: Any) -> dict[int, Hint]:
    """Per-position pre-conversions from the cursor description (``query`` reads; MySQL only: the other
    drivers type their values themselves and SQLite's query results have no types)."""
    hints: dict[int, Hint] = {}
    if dialect != "mysql" or not description:
        return hints
    for index, column in enumerate(description):
        code, size = column[1], column[3]
        if code == _MYSQL_TINY and size == 1:
            hints[index] = _as_bool
        elif code == _MYSQL_BIT:
            hints[index] = _as_bool if size == 1 else _bits
        elif code == _MYSQL_JSON:
            hints[index] = _json_text
        elif code == _MYSQL_TIMESTAMP:
            hints[index] = _utc
    return hints
