"""``GET|PUT /logging``: the levels of the node's loggers, changed while it runs (see :mod:`sesamd._logging`)."""

from __future__ import annotations

from quart import Response

from .. import _logging
from .._auth import Permission
from ._errors import ApiError
from ._params import json_body
from ._routes import Resource
from ._views import json_response

__all__ = ["change_levels", "resource"]

resource = Resource("logging")


def change_levels(changes: object, where: str) -> dict[str, str]:
    """:func:`sesamd._logging.set_levels`, a bad logger or level a 400 of ``where`` naming it (``PUT /logging``
    and ``POST /logs`` both change levels through here)."""
    try:
        return _logging.set_levels(changes)
    except _logging.LoggingError as exc:
        raise ApiError(400, f"{where}: {exc}", field=exc.field) from None


@resource.route("/logging", permission=Permission.ADMIN,
                summary="The level of the root logger and of every logger with a level of its own")
async def get_levels() -> Response:
    return json_response(_logging.levels())


@resource.route("/logging", "PUT", permission=Permission.ADMIN, body="application/json",
                summary='Set logger levels: {"actors.pump": "debug", "root": "info"} (null: inherit again)')
async def put_levels() -> Response:
    changes = await json_body("PUT /logging")
    return json_response(change_levels(changes, "PUT /logging"))
