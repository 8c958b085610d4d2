"""Bytes functions (dtl-spec 6.5): ``bytes``, ``base64-encode``, ``base64-decode``.

``is-bytes`` lives with the type predicates in ``_fn_casts``; ``string`` of bytes in ``_fn_strings``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from ._registry import IGNORE, elementwise

# -- bytes -----------------------------------------------------------------------------------------


@elementwise("bytes")
def to_bytes(value: Any) -> Any:
    if type(value) is str:
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    return IGNORE


@elementwise("base64-encode")
def base64_encode(value: Any) -> Any:
    return base64.b64encode(value).decode("ascii") if isinstance(value, bytes) else IGNORE


@elementwise("base64-decode")
def base64_decode(value: Any) -> Any:
    if type(value) is not str:
        return IGNORE
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return IGNORE
