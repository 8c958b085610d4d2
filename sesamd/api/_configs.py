"""The node's config: the whole default group as JSON (or a multipart upload)."""

from __future__ import annotations

from typing import Any

from quart import Response, request

from .._auth import Permission
from .._config import ConfigValidationError, parse_config
from ._context import api
from ._errors import ApiError
from ._params import body_bytes, flag
from ._routes import Param, Resource
from ._views import json_response

resource = Resource("config")

FORCE = Param("force", "boolean", "apply what is valid and keep invalid entities, marked invalid")


@resource.route("/config", permission=Permission.READ_CONFIG, summary="The config entities as uploaded")
async def get_config() -> Response:
    return json_response(api().node.config(), config=True)


@resource.route("/config", "PUT", permission=Permission.WRITE_CONFIG, query=(FORCE,), body="application/json",
                summary="Replace the whole config (a JSON array, or a multipart field 'file')")
async def put_config() -> Response:
    return await apply(await uploaded_config())


async def apply(entities: Any, check: Any = None) -> Response:
    try:
        errors = await api().node.apply_config(entities, force=flag("force", False))
    except ConfigValidationError as exc:
        raise ApiError(400, str(exc), validation_errors=exc.errors) from None
    return json_response({"validation_errors": errors})


async def uploaded_config() -> Any:
    content_type = (request.mimetype or "").lower()
    if content_type == "application/zip":
        raise ApiError(415, "zip config uploads are not supported yet: send a JSON array")
    if content_type == "multipart/form-data":
        files = await request.files
        upload = files.get("file")
        if upload is None:
            raise ApiError(400, "the multipart upload has no 'file' field")
        data = upload.read()
    else:
        data = await body_bytes()
    try:
        return parse_config(data)
    except ConfigValidationError as exc:
        raise ApiError(400, str(exc), validation_errors=exc.errors) from None
