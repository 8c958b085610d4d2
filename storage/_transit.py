"""Transit encoding: typed Python values <-> the JSON "wire form" of entities.

On the wire a typed value is a string ``~`` + tag + text: ``~f`` Decimal, ``~t`` datetime or date, ``~r``
URI, ``~u`` UUID, ``~b`` bytes (base64), ``~:`` namespaced identifier, ``~d`` float (written by the
official client). Strings with any other tag are plain strings.

Literal strings that start with ``~`` have two readings. With ``tilde_escape`` (the default, the
client's reading) ``~~x`` decodes to ``~x`` and such strings are escaped on encoding, so every string
round-trips. Without it (the documentation's reading) ``~~x`` is just the plain string ``~~x``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import math
import re
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from ._types import NI, URI, UTC, Datetime

__all__ = ["decode", "encode", "format_datetime", "parse_datetime", "KNOWN_TAGS"]

KNOWN_TAGS = frozenset("tfrub:~d")

_DATETIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z)?\Z", re.ASCII
)
# What ``~f`` and ``~d`` accept: a plain number literal (``Decimal``/``float`` alone would also take
# whitespace, ``_`` separators, non-ASCII digits and NaN/Infinity).
_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\Z", re.ASCII)
_fromisoformat = _dt.datetime.fromisoformat
_new_datetime = _dt.datetime.__new__  # Datetime without its checks, for values parsed here
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")


def parse_datetime(text: str) -> Datetime | _dt.date:
    """Parse the text of a ``~t`` value: ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z``."""
    if len(text) == 20 and text[19] == "Z" and text[10] == "T" and text[4] == "-" and text[7] == "-" \
            and text[13] == ":" and text[16] == ":" and text.isascii():
        # The commonest form, whole seconds: datetime's own parser (C) takes exactly digits between these
        # separators, so it accepts what the pattern below accepts, three times faster.
        parsed = _fromisoformat(text[:19])
        value = _new_datetime(Datetime, parsed.year, parsed.month, parsed.day, parsed.hour, parsed.minute,
                              parsed.second, 0, UTC)
        value.nanosecond = 0
        return value  # type: ignore[no-any-return]
    match = _DATETIME_RE.match(text)
    if match is None:
        raise ValueError(f"not a transit datetime: {text!r}")
    year, month, day, hour, minute, second, fraction = match.groups()
    if hour is None:
        return _dt.date(int(year), int(month), int(day))
    nanos = int(fraction.ljust(9, "0")) if fraction else 0
    micro, nano = divmod(nanos, 1000)
    return Datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro,
                    nanosecond=nano)


def format_datetime(value: _dt.datetime) -> str:
    """The text of a ``~t`` value, in UTC, with trailing zeros of the fraction dropped."""
    nanos = getattr(value, "nanosecond", 0)
    if value.tzinfo is not None and value.utcoffset():
        value = value.astimezone(UTC)
    text = (f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
            f"T{value.hour:02d}:{value.minute:02d}:{value.second:02d}")
    fraction = value.microsecond * 1000 + nanos
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"


def _decode_string(value: str, tilde_escape: bool) -> Any:
    tag = value[1]
    text = value[2:]
    try:
        if tag == "f":
            return Decimal(text) if _NUMBER_RE.match(text) else value
        if tag == "t":
            return parse_datetime(text)
        if tag == ":":
            return NI(text)
        if tag == "r":
            return URI(text)
        if tag == "u":
            return uuid.UUID(text) if _UUID_RE.match(text) else value
        if tag == "b":
            return base64.b64decode(text, validate=True)
        if tag == "~":
            return value[1:] if tilde_escape else value
        if tag == "d":
            number = float(text) if _NUMBER_RE.match(text) else None
            return number if number is not None and math.isfinite(number) else value
    except (ValueError, InvalidOperation, binascii.Error):
        return value
    return value


def decode(value: Any, *, tilde_escape: bool = True) -> Any:
    """Turn a wire-form value (and everything inside it) into typed Python values."""
    kind = type(value)
    if kind is dict:
        return _decode_dict(value, tilde_escape)
    if kind is list:
        return _decode_list(value, tilde_escape)
    if kind is str and len(value) > 1 and value[0] == "~":
        return _decode_string(value, tilde_escape)
    return value


# The hot path of every pipe (decode before DTL, encode after). The walkers below test each value's type
# inline, so that plain values (most of them) cost no call; they are alike on purpose: one walker over
# dict.values() rebuilt with zip, measured, was a third slower.

def _decode_dict(value: dict[str, Any], tilde_escape: bool) -> dict[str, Any]:
    out = {}
    for key, item in value.items():
        kind = type(item)
        if kind is str:
            if item[:1] == "~" and len(item) > 1:
                item = _decode_string(item, tilde_escape)
        elif kind is dict:
            item = _decode_dict(item, tilde_escape)
        elif kind is list:
            item = _decode_list(item, tilde_escape)
        out[key] = item
    return out


def _decode_list(value: list[Any], tilde_escape: bool) -> list[Any]:
    out = []
    append = out.append
    for item in value:
        kind = type(item)
        if kind is str:
            if item[:1] == "~" and len(item) > 1:
                item = _decode_string(item, tilde_escape)
        elif kind is dict:
            item = _decode_dict(item, tilde_escape)
        elif kind is list:
            item = _decode_list(item, tilde_escape)
        append(item)
    return out


def _encode_bytes(value: bytes | bytearray | memoryview) -> str:
    return "~b" + base64.b64encode(bytes(value)).decode("ascii")


def _encode_datetime(value: _dt.datetime) -> str:
    return "~t" + format_datetime(value)


_ENCODERS: dict[type, Any] = {
    Decimal: lambda v: "~f" + str(v),
    Datetime: _encode_datetime,
    _dt.datetime: _encode_datetime,
    _dt.date: lambda v: "~t" + v.isoformat(),
    NI: lambda v: "~:" + v.value,
    URI: lambda v: "~r" + v.value,
    uuid.UUID: lambda v: "~u" + str(v),
    bytes: _encode_bytes,
    bytearray: _encode_bytes,
    memoryview: _encode_bytes,
}

_PLAIN = frozenset({int, float, bool, type(None)})


def encode(value: Any, *, tilde_escape: bool = True) -> Any:
    """Turn typed Python values into their wire form (JSON types only)."""
    kind = type(value)
    if kind is str:
        if tilde_escape and len(value) > 1 and value[0] == "~" and value[1] in KNOWN_TAGS:
            return "~" + value
        return value
    if kind in _PLAIN:
        return value
    if kind is dict:
        return _encode_dict(value, tilde_escape)
    if kind is list or kind is tuple:
        return _encode_list(value, tilde_escape)
    encoder = _ENCODERS.get(kind)
    if encoder is None:
        for base, candidate in _ENCODERS.items():
            if isinstance(value, base):
                encoder = candidate
                break
        else:
            if isinstance(value, str):
                return encode(str(value), tilde_escape=tilde_escape)
            if isinstance(value, int):
                return int(value)
            raise TypeError(f"cannot transit-encode a value of type {kind.__name__}")
    return encoder(value)


# As for decoding (above): the commonest values (plain strings, numbers, nesting) inline, the rest through
# encode().

def _encode_dict(value: dict[Any, Any], tilde_escape: bool) -> dict[Any, Any]:
    out = {}
    plain = _PLAIN
    for key, item in value.items():
        kind = type(item)
        if kind is str:
            if item[:1] == "~":
                item = encode(item, tilde_escape=tilde_escape)
        elif kind is dict:
            item = _encode_dict(item, tilde_escape)
        elif kind is list:
            item = _encode_list(item, tilde_escape)
        elif kind not in plain:
            item = encode(item, tilde_escape=tilde_escape)
        out[key] = item
    return out


def _encode_list(value: list[Any] | tuple[Any, ...], tilde_escape: bool) -> list[Any]:
    out = []
    append = out.append
    plain = _PLAIN
    for item in value:
        kind = type(item)
        if kind is str:
            if item[:1] == "~":
                item = encode(item, tilde_escape=tilde_escape)
        elif kind is dict:
            item = _encode_dict(item, tilde_escape)
        elif kind is list:
            item = _encode_list(item, tilde_escape)
        elif kind not in plain:
            item = encode(item, tilde_escape=tilde_escape)
        append(item)
    return out
