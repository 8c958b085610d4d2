"""Value helpers shared by the evaluation core and the function families.

Everything here works on *typed* values (see ``storage``): ``None``, ``bool``, ``int``, ``float``,
``Decimal``, ``str``, ``Datetime``/``date``, ``UUID``, ``NI``, ``URI``, ``bytes``, ``list`` and ``dict``.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import json
import uuid
from decimal import Decimal
from typing import Any

from storage import NI, URI, Datetime, decode, encode

__all__ = [
    "DEC",
    "IGNORE",
    "NI",
    "URI",
    "Datetime",
    "Decimal",
    "as_list",
    "decode_literal",
    "equal",
    "first",
    "is_null",
    "is_number",
    "json_text",
    "order_key",
    "to_decimal",
    "truthy",
]

IGNORE: Any = type("Ignore", (), {"__repr__": lambda self: "IGNORE"})()
"""Returned by an element function for a value it does not accept; the value is dropped."""

DEC = decimal.Context(prec=64, rounding=decimal.ROUND_HALF_EVEN, traps=[decimal.InvalidOperation,
                                                                      decimal.DivisionByZero])
"""The decimal context of all DTL decimal arithmetic."""

NUMBER_TYPES = (int, float, Decimal)
_NUMBER_SET = frozenset(NUMBER_TYPES)


def decode_literal(value: Any) -> Any:
    """Transit-decode a configuration literal (no ``~~`` escape, as the DTL docs read it)."""
    return decode(value, tilde_escape=False)


def encode_value(value: Any) -> Any:
    """Transit-encode a typed value to its wire form (no ``~~`` escape)."""
    return encode(value, tilde_escape=False)


def as_list(value: Any) -> list[Any]:
    """Coerce to a list: null is ``[]``, a list is itself, anything else ``[value]``."""
    if type(value) is list:
        return value
    if value is None:
        return []
    return [value]


def truthy(value: Any) -> bool:
    """DTL truth: false for ``false``, ``null`` and ``[]``; true for everything else."""
    return not (value is None or value is False or (type(value) is list and not value))


def is_null(value: Any) -> bool:
    """``is-null``: null, ``[]``, or a list whose first element is null."""
    return value is None or (type(value) is list and (not value or value[0] is None))


def first(value: Any) -> Any:
    """The first element of a list (null for ``[]``), or the value itself."""
    if type(value) is list:
        return value[0] if value else None
    return value


def is_number(value: Any) -> bool:
    """True for int, float and Decimal (never for bool)."""
    return type(value) in _NUMBER_SET


def to_decimal(value: int | float | Decimal) -> Decimal:
    """A number as a Decimal; floats go through their shortest text form (2.2 -> Decimal('2.2'))."""
    kind = type(value)
    if kind is Decimal:
        return value  # type: ignore[return-value]
    if kind is float:
        return Decimal(repr(value))
    return Decimal(value)


def equal(a: Any, b: Any) -> bool:
    """DTL value equality: numbers by value, booleans never equal numbers, lists and dicts deeply."""
    ta = type(a)
    tb = type(b)
    if ta is tb:
        if ta is list:
            return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
        if ta is dict:
            return a.keys() == b.keys() and all(equal(v, b[k]) for k, v in a.items())
        return bool(a == b)
    if ta in _NUMBER_SET and tb in _NUMBER_SET:
        return bool(a == b)
    if isinstance(a, _dt.datetime) and isinstance(b, _dt.datetime):
        return bool(a == b)
    return False


# ---------------------------------------------------------------------------------------------------
# mixed-type ordering (dtl-spec 1.3)
# null < boolean < number < date/datetime < UUID < NI < URI < string < dict < list < bytes
# ---------------------------------------------------------------------------------------------------

_EPOCH_DATE = _dt.date(1970, 1, 1)


def _datetime_ns(value: Any) -> int:
    if isinstance(value, Datetime):
        return value.epoch_ns
    if isinstance(value, _dt.datetime):
        return Datetime.from_datetime(value).epoch_ns
    return (value - _EPOCH_DATE).days * 86_400_000_000_000


def order_key(value: Any) -> tuple[Any, ...]:
    """A sort key implementing the mixed-type ordering of dtl-spec section 1.3."""
    kind = type(value)
    if kind is str:
        return (7, value)
    if kind in _NUMBER_SET:
        return (2, value)
    if value is None:
        return (0,)
    if kind is bool:
        return (1, value)
    if kind is dict:
        keys = sorted(value)
        return (8, tuple(keys), tuple(order_key(value[k]) for k in keys))
    if kind is list:
        return (9, tuple(order_key(v) for v in value))
    if isinstance(value, _dt.date):
        return (3, _datetime_ns(value))
    if kind is uuid.UUID:
        return (4, value)
    if kind is NI:
        return (5, value.value)
    if kind is URI:
        return (6, value.value)
    if isinstance(value, bytes | bytearray):
        return (10, bytes(value))
    return (11, repr(value))


def compare(a: Any, b: Any) -> int:
    """-1, 0 or 1 by mixed-type ordering."""
    ta = type(a)
    if ta is type(b) and (ta is str or ta is int):
        return (a > b) - (a < b)
    ka = order_key(a)
    kb = order_key(b)
    return (ka > kb) - (ka < kb)


# ---------------------------------------------------------------------------------------------------
# JSON text of values (used by ``string``, ``json``, ``json-transit`` and ``group-by``)
# ---------------------------------------------------------------------------------------------------


def _plain_json(value: Any) -> Any:
    """Typed values as plain JSON: decimals as numbers (rendered later), others as their text."""
    kind = type(value)
    if kind is dict:
        return {k: _plain_json(v) for k, v in value.items()}
    if kind is list:
        return [_plain_json(v) for v in value]
    if kind is Decimal:
        return _DecimalText(value)
    if kind in (str, int, float, bool) or value is None:
        return value
    if kind is NI or kind is URI:
        return value.value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, _dt.datetime):
        return encode_value(value)[2:]
    if isinstance(value, _dt.date):
        return value.isoformat()
    return str(value)


class _DecimalText(float):
    """A float subclass whose JSON rendering is the decimal's expanded text."""

    def __new__(cls, value: Decimal) -> _DecimalText:
        self = super().__new__(cls, float(value))
        self.text = decimal_text(value)  # type: ignore[attr-defined]
        return self

    def __repr__(self) -> str:
        return self.text  # type: ignore[attr-defined,no-any-return]


def decimal_text(value: Decimal) -> str:
    """A decimal in plain (non-scientific) notation."""
    return format(value, "f")


def json_text(value: Any, *, transit: bool = False) -> str:
    """JSON text with sorted keys and ``", "``/``": "`` separators.

    Without ``transit`` typed values are written as their plain text (a URI as its URI, a decimal as a
    number); with it they are written as transit strings (``"~rhttp://..."``).
    """
    if transit:
        return json.dumps(encode_value(value), sort_keys=True, ensure_ascii=False, separators=(", ", ": "))
    return _json_dumps_plain(_plain_json(value))


def _json_dumps_plain(data: Any) -> str:
    """Serialise with sorted keys, Python-style separators and decimals in expanded notation."""
    kind = type(data)
    if kind is dict:
        items = sorted(data.items())
        return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)}: {_json_dumps_plain(v)}"
                               for k, v in items) + "}"
    if kind is list:
        return "[" + ", ".join(_json_dumps_plain(v) for v in data) + "]"
    if kind is _DecimalText:
        return repr(data)
    return json.dumps(data, ensure_ascii=False)
