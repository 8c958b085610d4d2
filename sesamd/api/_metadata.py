"""The service metadata entity (``{"_id": "node", "type": "metadata", ...}``) on its own."""

from __future__ import annotations

from quart import Response

from .._auth import Permission
from ._configs import apply, uploaded_entities
from ._context import api
from ._errors import ApiError
from ._routes import Resource
from ._views import json_response

resource = Resource("metadata")

NODE = "node"


@resource.route("/metadata", permission=Permission.READ_CONFIG, summary="The service metadata entity")
async def get_metadata() -> Response:
    return json_response(api().node.uploaded_entity(NODE) or {"_id": NODE, "type": "metadata"}, config=True)


@resource.route("/metadata", "PUT", permission=Permission.WRITE_CONFIG, body="application/json",
                summary="Replace the service metadata entity")
async def put_metadata() -> Response:
    wire, display = await uploaded_entities("PUT /metadata")
    if len(wire) != 1:
        raise ApiError(400, "PUT /metadata: the body must be one metadata entity (a JSON object)")
    entity, shown = wire[0], display[0]
    for key, wanted in (("_id", NODE), ("type", "metadata")):
        if entity.get(key, wanted) != wanted:
            raise ApiError(400, f"PUT /metadata: '{key}' must be '{wanted}', not {entity[key]!r}")
    entity = {**entity, "_id": NODE, "type": "metadata"}
    shown = {**shown, "_id": NODE, "type": "metadata"}
    node = api().node
    entities = node.config()
    at = next((i for i, e in enumerate(entities) if e.get("_id") == NODE), None)
    if at is None:
        entities.insert(0, entity)
    else:
        entities[at] = entity
    await apply(entities, displays={NODE: shown}, check={NODE})
    return json_response(node.uploaded_entity(NODE), config=True)


@resource.route("/metadata", "DELETE", permission=Permission.WRITE_CONFIG,
                summary="Delete the service metadata (every setting back to its default)")
async def delete_metadata() -> Response:
    node = api().node
    await apply([e for e in node.config() if e.get("_id") != NODE], check=())
    return json_response({"_id": NODE, "type": "metadata"})
