"""JSON functions (dtl-spec 6.10): ``json``, ``json-transit``, ``json-parse`` and ``json-transit-parse``.

``json`` writes typed values as their plain text (no transit), ``json-transit`` as transit strings; both sort
dict keys and use Python-style separators. The parse functions are casts (optional leading DEFAULT) that
accept strict JSON only (``NaN`` and ``Infinity`` are invalid); ``"null"`` is valid and gives null.
"""

from __future__ import annotations

import json
from typing import Any

from ._registry import IGNORE, cast, elementwise
from ._values import decode_literal, json_text

__all__ = ["parse_json_text", "to_json", "to_json_transit"]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


@elementwise("json")
def to_json(value: Any) -> Any:
    """One value as JSON text, typed values written as their plain text."""
    return json_text(value)


@elementwise("json-transit")
def to_json_transit(value: Any) -> Any:
    """One value as JSON text, typed values written in transit form (``"~rhttp://..."``)."""
    return json_text(value, transit=True)


@cast("json-parse")
def parse_json_text(value: Any) -> Any:
    """Parse a JSON string without transit decoding; IGNORE for non-strings and invalid JSON."""
    if type(value) is not str:
        return IGNORE
    try:
        return _DECODER.decode(value)
    except (ValueError, RecursionError):
        return IGNORE


@cast("json-transit-parse")
def parse_transit(value: Any) -> Any:
    """Parse a JSON string and transit-decode the result (``"\\"~rhttp://x/\\""`` gives a URI)."""
    parsed = parse_json_text(value)
    return parsed if parsed is IGNORE else decode_literal(parsed)
