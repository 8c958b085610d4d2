"""Receivers: JSON Push into ``http_endpoint`` pipes (node-spec 9.1, 12.6)."""

from __future__ import annotations

from quart import Response, request

from .._auth import Permission
from .._entities_upload import EntityUploadError
from .._node import PipeUnavailable
from .._receiver import NotAReceiver, SequenceConflict
from ._auth import grants_anonymous
from ._context import api
from ._errors import ApiError
from ._params import body_bytes
from ._routes import Param, Resource
from ._views import json_response

resource = Resource("receivers")

PUSH_QUERY = (
    Param("sequence_id", "string", "the sync's token, the same on every request of it"),
    Param("is_full", "boolean", "a full sync: ids not seen by its last request are deleted"),
    Param("request_id", "string", "this request's token within the sequence"),
    Param("previous_request_id", "string", "the previous request's token (all but the first request)"),
    Param("is_first", "boolean", "the first request of a full sync"),
    Param("is_last", "boolean", "the last request of a full sync"),
)


@resource.route("/receivers/<pipe_id>/entities", "POST", permission=Permission.WRITE_DATA, query=PUSH_QUERY,
                body="application/json", status=(409, 503), anonymous=grants_anonymous(Permission.WRITE_DATA),
                summary="Push a JSON array of entities (or one entity) into an http_endpoint pipe")
async def receive(pipe_id: str) -> Response:
    data = await body_bytes()
    try:
        await api().node.receivers.receive(pipe_id, data, request.args)
    except PipeUnavailable as exc:
        raise ApiError(503, str(exc)) from None
    except NotAReceiver as exc:
        raise ApiError(404, str(exc)) from None
    except SequenceConflict as exc:
        raise ApiError(409, f"pipe '{pipe_id}': {exc}") from None
    except EntityUploadError as exc:
        where = {"line": exc.line, "column": exc.column, "valid_entities": exc.position} if exc.bad_json else {
            "entity": exc.position, "entity_id": exc.entity_id, "line": exc.line}
        raise ApiError(400, f"pipe '{pipe_id}': nothing was written: {exc}", **where) from None
    except ValueError as exc:
        raise ApiError(400, f"pipe '{pipe_id}': {exc}") from None
    return json_response({})
