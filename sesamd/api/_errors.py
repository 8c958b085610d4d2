"""Errors as JSON: ``{"detail": "...", "status": code}`` naming what went wrong and where.

One table maps exception **types** to statuses; a handler raises the domain's own exception (an unknown
pipe, a pump conflict, an invalid config) or :class:`ApiError`, and the app answers it here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from quart import Quart, Response, has_websocket_context, request, websocket
from werkzeug.exceptions import HTTPException
from werkzeug.routing.exceptions import WebsocketMismatch

import storage
from actors import PumpConflict, PumpOperationError

from .._auth import AuthError
from .._config import ConfigValidationError
from .._config_breaker import ConfigCircuitBreakerTripped
from .._node import UnknownPipe
from .._systems import UnknownSystem
from ._views import json_response

__all__ = ["ApiError", "STATUS_OF", "install_error_handlers"]

log = logging.getLogger("sesamd.api")


class ApiError(Exception):
    """An error response: ``{"detail": message, "status": status}`` plus ``extra`` fields."""

    def __init__(self, status: int, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.extra = extra


def _config_invalid(exc: ConfigValidationError) -> dict[str, Any]:
    return {"validation_errors": exc.errors}


def _pump_conflict(exc: PumpConflict) -> dict[str, Any]:
    return dict(exc.pump)


Extra = Callable[[Any], dict[str, Any]] | None

# exception type -> (status, detail, extra fields of the body); the first matching type in the MRO wins
STATUS_OF: dict[type[BaseException], tuple[int, Callable[[Any], str], Extra]] = {
    UnknownPipe: (404, lambda exc: f"no pipe '{exc.args[0]}'", None),
    UnknownSystem: (404, lambda exc: f"no system '{exc.args[0]}'", None),
    PumpConflict: (409, str, _pump_conflict),
    PumpOperationError: (400, str, None),
    ConfigValidationError: (400, str, _config_invalid),
    ConfigCircuitBreakerTripped: (409, str, lambda exc: {"deleted": exc.deleted, "components": exc.components}),
    storage.DatasetDamaged: (503, str, lambda exc: {"dataset": exc.name, "damaged": exc.detail}),
    storage.StorageWriteError: (507, str, None),  # a full disk: the write may be sent again once there is room
    storage.StorageError: (503, str, None),
}


def _lookup(exc: BaseException) -> tuple[int, Callable[[Any], str], Extra] | None:
    for kind in type(exc).__mro__:
        if kind in STATUS_OF:
            return STATUS_OF[kind]
    return None


def _where() -> str:
    """``METHOD /path`` of the request or websocket being handled."""
    if has_websocket_context():
        return f"websocket {websocket.path}"
    return f"{request.method} {request.path}"


def install_error_handlers(app: Quart) -> None:
    @app.errorhandler(ApiError)
    async def api_error(exc: ApiError) -> Response:
        # config=True: extras such as validation_errors echo the upload in its display form (any number)
        return json_response({"detail": exc.detail, "status": exc.status, **exc.extra}, exc.status, config=True)

    @app.errorhandler(AuthError)
    async def auth_error(exc: AuthError) -> Response:
        response = json_response({"detail": str(exc), "status": exc.status}, exc.status)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="sesamd"'
        return response

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        detail = exc.description or exc.name
        if status == 404:
            detail = f"no such resource: {_where()}"
        elif status == 405:
            detail = f"method {_where()} is not allowed"
        elif isinstance(exc, WebsocketMismatch):
            detail = (f"{_where()}: this path takes a websocket, connect with one" if not has_websocket_context()
                      else f"{_where()}: this path takes no websocket, only plain HTTP requests")
        elif status == 413:
            detail = f"the request body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes"
        return json_response({"detail": detail, "status": status}, status)

    @app.errorhandler(Exception)
    async def other_error(exc: Exception) -> Response:
        known = _lookup(exc)
        if known is not None:
            status, detail, extra = known
            body = {"detail": detail(exc), "status": status, **(extra(exc) if extra else {})}
            return json_response(body, status)
        log.exception("internal error on %s", _where())
        return json_response({"detail": f"internal error: {type(exc).__name__}: {exc}", "status": 500}, 500)
