"""``POST /admin/backup``: an online backup of the node, written on the node's machine (see ``sesamd._backup``)."""

from __future__ import annotations

import trio
from quart import Response

from .._auth import Permission
from .._backup import BackupError, backup_node
from ._context import api
from ._errors import ApiError
from ._params import json_body
from ._routes import Resource
from ._views import json_response

resource = Resource("backup")

_running = trio.Lock()  # one backup at a time


@resource.route("/admin/backup", "POST", permission=Permission.ADMIN, body="application/json",
                summary="Back up the node store and every dataset to a directory on the node's machine "
                        "(JSON body: {\"destination\": \"/absolute/path\"}); answers the backup's manifest")
async def backup() -> Response:
    body = await json_body("the backup request")
    destination = body.get("destination") if isinstance(body, dict) else None
    if not isinstance(destination, str) or not destination:
        raise ApiError(400, "POST /admin/backup: the JSON body must be an object with a 'destination' path "
                            "(an absolute path on the node's machine)")
    node = api().node
    if _running.locked():
        raise ApiError(409, "POST /admin/backup: a backup is already being taken")
    async with _running:
        try:
            manifest = await trio.to_thread.run_sync(backup_node, node, destination)
        except BackupError as exc:
            raise ApiError(400, f"POST /admin/backup: {exc}") from None
    return json_response(manifest)
