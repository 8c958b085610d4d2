"""Query and body parsing: each helper names the parameter and the bad value in its 400."""

from __future__ import annotations

from typing import Any

from quart import request

import storage

__all__ = ["body_bytes", "drain_body", "flag", "form_and_query", "integer", "json_body", "text"]

MAX_OFFSET = (1 << 63) - 1  # offsets are 8-byte keys: anything larger is no offset at all


def _bad(message: str) -> Exception:
    from ._errors import ApiError

    return ApiError(400, message)


def flag(name: str, default: bool) -> bool:
    value = request.args.get(name)
    if value is None or value == "":
        return default
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise _bad(f"query parameter '{name}' must be true or false, not {value!r}")


def integer(name: str, minimum: int | None = None, maximum: int = MAX_OFFSET) -> int | None:
    value = request.args.get(name)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise _bad(f"query parameter '{name}' must be an integer, not {value!r}") from None
    if minimum is not None and number < minimum:
        raise _bad(f"query parameter '{name}' must be at least {minimum}, not {number}")
    if number > maximum:
        raise _bad(f"query parameter '{name}' must be at most {maximum}, not {number}")
    return number


def text(name: str, default: str | None = None) -> str | None:
    value = request.args.get(name)
    return default if value is None or value == "" else value


async def body_bytes() -> bytes:
    """The raw body; the server has already bounded its size and the time it may take to arrive."""
    data: bytes = await request.get_data(cache=True, as_text=False, parse_form_data=False)
    return data


async def drain_body(response: Any) -> Any:
    """An ``after_request`` hook: receive what is left of the request body before the response goes out.

    A response that is complete while the client is still sending its body (a 401 for an upload, a 404, a
    handler that reads no body) leaves hypercorn's HTTP/1.1 connection half-recycled: its close runs in the
    app task that quart-trio cancels on ``http.disconnect``, so the connection stays open, never answering
    the next keep-alive request. Discarding the rest of the body first (chunk by chunk, bounded by the
    body timeout and size of the app) lets the connection recycle normally.
    """
    if request.content_length or "transfer-encoding" in request.headers:
        try:
            async for _chunk in request.body:
                pass
        except Exception:  # too large or timed out: the response (and the connection's close) stand
            pass
    return response


async def json_body(what: str) -> Any:
    """The body parsed as JSON in wire form (``22.10`` keeps its digits); a 400 names ``what`` it is."""
    data = await body_bytes()
    try:
        return storage.parse_json(data)
    except storage.JSONError as exc:
        raise _bad(f"{what}: the body is not valid JSON: {exc}") from None


async def form_and_query() -> dict[str, str]:
    """Form fields, then query parameters not already given in the form."""
    form = await request.form
    params = {k: v for k, v in form.items()}
    for key, value in request.args.items():
        params.setdefault(key, value)
    return params
