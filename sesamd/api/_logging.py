"""``GET|PUT /logging``: the levels of the node's loggers, changed while it runs (see :mod:`sesamd._logging`)."""

from __future__ import annotations

from quart import Response

from .. import _logging
from .._auth import Permission
from ._errors import ApiError
from ._params import json_body
from ._routes import Resource
from ._views import json_response

resource = Resource("logging")


@resource.route("/logging", permission=Permission.ADMIN,
                summary="The level of the root logger and of every logger with a level of its own")
async def get_levels() -> Response:
    return json_response(_logging.levels())


@resource.route("/logging", "PUT", permission=Permission.ADMIN, body="application/json",
                summary='Set logger levels: {"actors.pump": "debug", "root": "info"} (null: inherit again)')
async def put_levels() -> Response:
    changes = await json_body("PUT /logging")
    try:
        return json_response(_logging.set_levels(changes))
    except _logging.LoggingError as exc:
        raise ApiError(400, f"PUT /logging: {exc}", field=exc.field) from None
