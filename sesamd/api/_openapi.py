"""``GET /api/openapi.json``: an OpenAPI 3.1 document made from the route table, so it cannot drift.

Every declared :class:`~sesamd.api._routes.Route` becomes one operation per method: its path with Quart's
converters as ``{name}`` path parameters, ``operationId`` (the endpoint), ``summary``, ``x-permission`` and,
unless public, a ``bearerAuth`` security requirement; the query :class:`~sesamd.api._routes.Param`\\ s; a
request body for its media type; its success statuses with the media type it produces and ``4XX`` with the
JSON error body. Websocket routes are GET operations marked ``x-websocket: true``. Like Sesam's swagger
document it only documents: it is public and grants nothing.
"""

from __future__ import annotations

import re
from typing import Any

from quart import Response, current_app

from ._context import api
from ._routes import PUBLIC, Resource, Route
from ._views import json_response

__all__ = ["document", "resource"]

resource = Resource("openapi")

OPENAPI_VERSION = "3.1.0"
CACHE_KEY = "sesamd.openapi"

# a rule's converters: <name>, <path:name>, <int:name>, <int(min=1):name>
_CONVERTER = re.compile(r"<(?:(?P<converter>[a-zA-Z_][a-zA-Z0-9_]*)(?:\([^)]*\))?:)?(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)>")
_CONVERTER_SCHEMA: dict[str, dict[str, Any]] = {
    "default": {"type": "string", "minLength": 1},
    "string": {"type": "string", "minLength": 1},
    "path": {"type": "string", "minLength": 1},
    "any": {"type": "string", "minLength": 1},
    "int": {"type": "integer", "minimum": 0},
    "float": {"type": "number", "minimum": 0},
    "uuid": {"type": "string", "format": "uuid"},
}
_PARAM_SCHEMA: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "boolean": {"type": "boolean"},
}

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An error: what went wrong and where (some errors add fields, e.g. validation_errors)",
    "required": ["detail", "status"],
    "properties": {"detail": {"type": "string"}, "status": {"type": "integer"}},
}
FORM_SCHEMA: dict[str, Any] = {"type": "object", "additionalProperties": {"type": "string"}}
MULTIPART_CONFIG: dict[str, Any] = {
    "type": "object",
    "required": ["file"],
    "properties": {"file": {"type": "string", "contentMediaType": "application/json",
                            "description": "the config: a JSON array of config entities"}},
}
# request bodies a route accepts besides its declared one, by (path, method)
EXTRA_BODIES: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("/api/config", "PUT"): {"multipart/form-data": {"schema": MULTIPART_CONFIG}},
}
STATUS_TEXT = {200: "OK", 201: "Created", 202: "Accepted", 204: "No content", 101: "Switching protocols",
               502: "Bad gateway", 503: "Not ready", 504: "Gateway timeout"}


def openapi_path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    """A Quart rule as an OpenAPI path and its path parameters: ``/a/<path:b>`` -> ``/a/{b}``."""
    parameters: list[dict[str, Any]] = []

    def replace(match: re.Match[str]) -> str:
        converter = match.group("converter") or "default"
        schema = dict(_CONVERTER_SCHEMA.get(converter, _CONVERTER_SCHEMA["default"]))
        parameters.append({"name": match.group("name"), "in": "path", "required": True, "schema": schema})
        return "{" + match.group("name") + "}"

    return _CONVERTER.sub(replace, rule), parameters


def _media_schema(media_type: str) -> dict[str, Any]:
    if media_type.startswith("text/"):
        return {"type": "string"}
    return {}  # any JSON (or any body) : the document does not model response shapes


def _request_body(route: Route, method: str) -> dict[str, Any] | None:
    if route.body is None:
        return None
    if route.body == "application/x-www-form-urlencoded":
        content = {route.body: {"schema": FORM_SCHEMA}}
    elif route.body == "multipart/form-data":
        content = {route.body: {"schema": {"type": "object"}}}
    else:
        content = {route.body: {"schema": _media_schema(route.body)}}
    content.update(EXTRA_BODIES.get((route.path, method), {}))
    return {"required": True, "content": content}


def _responses(route: Route) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    if route.websocket:
        responses["101"] = {"description": "Switching protocols: the websocket is open"}
    else:
        for status in route.status:
            answer: dict[str, Any] = {"description": STATUS_TEXT.get(status, "Success")}
            if status != 204:
                answer["content"] = {route.produces: {"schema": _media_schema(route.produces)}}
            responses[str(status)] = answer
    responses["4XX"] = {"description": "The request was refused",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return responses


def _operation(route: Route, method: str, path_parameters: list[dict[str, Any]]) -> dict[str, Any]:
    operation_id = route.endpoint if len(route.methods) == 1 else f"{route.endpoint}.{method.lower()}"
    parameters = [dict(p, schema=dict(p["schema"])) for p in path_parameters]
    for param in route.query:
        entry: dict[str, Any] = {"name": param.name, "in": "query", "required": param.required,
                                 "schema": dict(_PARAM_SCHEMA.get(param.type, {"type": "string"}))}
        if param.description:
            entry["description"] = param.description
        parameters.append(entry)
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": route.summary,
        "tags": [route.resource],
        "x-permission": str(route.permission),
        "security": [] if route.permission == PUBLIC else [{"bearerAuth": []}],
    }
    if parameters:
        operation["parameters"] = parameters
    body = _request_body(route, method)
    if body is not None:
        operation["requestBody"] = body
    operation["responses"] = _responses(route)
    if route.websocket:
        operation["x-websocket"] = True
    return operation


def document(routes: list[Route], version: str = "") -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes`` (the app's :func:`~sesamd.api.routes_of`)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        path, path_parameters = openapi_path(route.path)
        item = paths.setdefault(path, {})
        for method in route.methods:
            key = method.lower()
            if key in item:
                raise ValueError(f"{method} {route.path} is declared twice")
            item[key] = _operation(route, method, path_parameters)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "sesamd", "version": version or "0",
                 "description": "The REST API of a sesamd node (a self-hosted, Sesam-compatible node)."},
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR_SCHEMA},
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                               "description": "a token from `sesamd token` or POST /api/jwt"}},
        },
    }


@resource.route("/openapi.json", permission=PUBLIC, summary="This API as an OpenAPI 3.1 document")
async def openapi() -> Response:
    cached: dict[str, Any] | None = current_app.extensions.get(CACHE_KEY)
    if cached is None:  # the routes are fixed when the app is made: build it once per app
        from ._app import routes_of

        cached = document(routes_of(current_app), str(api().node.version))
        current_app.extensions[CACHE_KEY] = cached
    return json_response(cached)
