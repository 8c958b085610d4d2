"""``POST /admin``: node operations (restart, reset, load_config) as the clients call them."""

from __future__ import annotations

from quart import Response

from .._auth import Permission
from ._context import api
from ._errors import ApiError
from ._params import form_and_query
from ._routes import Resource
from ._views import json_response

resource = Resource("admin")

OPERATIONS = ("restart", "reset", "load_config")


@resource.route("/admin", "POST", permission=Permission.ADMIN, body="application/x-www-form-urlencoded",
                summary="Node operations (form field 'operation': restart, reset, load_config)")
async def admin() -> Response:
    operation = (await form_and_query()).get("operation")
    node = api().node
    if operation not in OPERATIONS:
        raise ApiError(400, f"POST /admin: the form field 'operation' must be one of {', '.join(OPERATIONS)}, "
                            f"not {operation!r}")
    if operation == "restart":
        await node.restart()
    elif operation == "reset":
        if not node.developer_mode:
            raise ApiError(403, "POST /admin reset wipes the node: only allowed in developer mode "
                                "(metadata developer_mode is false)")
        await node.reset()
    else:
        await node.apply_config(node.config(), force=True)
    return json_response({"message": "OK"})
