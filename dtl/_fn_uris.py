"""URIs and UUIDs (dtl-spec 6.15): ``uri``, ``url-quote``, ``url-unquote``, ``uuid``, ``is-uri``, ``is-uuid``."""

from __future__ import annotations

import urllib.parse
import uuid
from typing import Any

from ._context import Evaluator
from ._fn_casts import type_predicate
from ._registry import IGNORE, Call, _elementwise_evaluator, elementwise, expression
from ._values import URI

type_predicate("is-uri", lambda v: type(v) is URI)
type_predicate("is-uuid", lambda v: type(v) is uuid.UUID)


# -- URIs and UUIDs --------------------------------------------------------------------------------


@elementwise("uri")
def to_uri(value: Any) -> Any:
    if type(value) is str:
        return URI(value)
    return value if type(value) is URI else IGNORE


@elementwise("url-quote", params=(0, 1))
def url_quote(safe: Any = "") -> Any:
    if type(safe) is not str:
        return None
    return lambda value: urllib.parse.quote(value, safe=safe) if type(value) is str else IGNORE


@elementwise("url-unquote")
def url_unquote(value: Any) -> Any:
    return urllib.parse.unquote(value) if type(value) is str else IGNORE


def _to_uuid(value: Any) -> Any:
    if type(value) is uuid.UUID:
        return value
    if type(value) is str:
        try:
            return uuid.UUID(value)
        except ValueError:
            return IGNORE
    return IGNORE


@expression("uuid", args=(0, 1))
def _uuid(call: Call) -> Evaluator:
    if not call.args:
        return lambda c: uuid.uuid4()
    return _elementwise_evaluator(_to_uuid, call.compile(0))
