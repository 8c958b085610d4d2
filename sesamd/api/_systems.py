"""Systems and their config."""

from __future__ import annotations

from typing import Any

from quart import Response

from .._auth import Permission
from .._systems import UnknownSystem
from ._context import api
from ._routes import Resource
from ._views import json_response

resource = Resource("systems")


def _system(system_id: str) -> Any:
    state = api().node.systems.systems.get(system_id)
    if state is None:
        raise UnknownSystem(system_id)
    return state


@resource.route("/systems", permission=Permission.READ_CONFIG, summary="Every system")
async def list_systems() -> Response:
    return json_response(api().node.systems.list_json(), config=True)


@resource.route("/systems/<system_id>", permission=Permission.READ_CONFIG, summary="One system")
async def get_system(system_id: str) -> Response:
    return json_response(api().node.systems.system_json(_system(system_id)), config=True)


@resource.route("/systems/<system_id>/config", permission=Permission.READ_CONFIG,
                summary="A system's config entity as uploaded")
async def get_system_config(system_id: str) -> Response:
    return json_response(_system(system_id).original, config=True)
